// Request validation, as mistral_common 1.13.1 MistralRequestValidatorV3 in "test" mode (the mode
// MistralTokenizer.from_file and .v3() use). Checks run in the library's order: message-list
// structure, then per-message content, then tool definitions. ref: spec/inputs.md §3.3
#include <string>

#include "prompt/chat_encoder.h"

namespace pixtral::prompt {
namespace {

// Python re.match(r"^[...]{lo,hi}$", s): `$` also matches before one final "\n", so mimic that.
bool matches_id_pattern(std::string_view s, bool allow_dash_underscore, size_t min_len, size_t max_len) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (allow_dash_underscore && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

bool valid_function_name(std::string_view s) { return matches_id_pattern(s, true, 1, 64); }
bool valid_tool_call_id(std::string_view s) { return matches_id_pattern(s, false, 9, 9); }

Status validate_order(const std::vector<Message>& messages) {
  for (size_t i = 1; i < messages.size(); ++i) {
    Role prev = messages[i - 1].role, cur = messages[i].role;
    bool ok = true;
    switch (prev) {
      case Role::kSystem: ok = cur != Role::kTool; break;
      case Role::kUser: ok = cur != Role::kTool; break;
      case Role::kAssistant: ok = cur != Role::kSystem; break;
      case Role::kTool: ok = cur != Role::kSystem; break;
    }
    if (!ok) {
      return invalid_argument(messages[i].where + ".role: unexpected role '" + role_name(cur) +
                              "' after role '" + role_name(prev) + "'");
    }
  }
  return Status::ok();
}

// Every assistant turn with N tool calls must be answered by exactly N tool messages before the
// next assistant turn (the first message is skipped, as in mistral_common; a trailing shortfall
// is accepted in test mode).
Status validate_tool_call_counts(const std::vector<Message>& messages) {
  int64_t expected = 0;
  for (size_t i = 1; i < messages.size(); ++i) {
    const Message& m = messages[i];
    if (m.role == Role::kTool) {
      --expected;
    } else if (m.role == Role::kAssistant) {
      if (expected != 0) {
        return invalid_argument(m.where + ": the previous assistant tool calls and the tool results "
                                          "before this message are not the same number");
      }
      expected = static_cast<int64_t>(m.tool_calls.size());
    }
  }
  return Status::ok();
}

Status validate_structure(const std::vector<Message>& messages) {
  if (messages.empty()) return invalid_argument("messages: the conversation must have at least one message");
  if (messages.size() == 1 && messages[0].role != Role::kUser && messages[0].role != Role::kSystem) {
    return invalid_argument("messages[0].role: a conversation must start with a user or system message");
  }
  const Message& last = messages.back();
  if (messages.size() > 1 && last.role == Role::kAssistant && !last.prefix) {
    return invalid_argument(last.where + ": the last message must be user or tool, or an assistant "
                                         "with prefix=true (continue_final_message)");
  }
  PX_RETURN_IF_ERROR(validate_order(messages));
  return validate_tool_call_counts(messages);
}

Status validate_text_only(const Message& m) {
  for (const ContentChunk& c : m.content) {
    if (c.type != ContentChunk::Type::kText) {
      return invalid_argument(c.where + ": " + role_name(m.role) + " messages accept text parts only");
    }
  }
  return Status::ok();
}

Status validate_assistant(const Message& m, bool is_last) {
  PX_RETURN_IF_ERROR(validate_text_only(m));
  if (m.has_content == !m.tool_calls.empty()) {
    return invalid_argument(m.where + ": an assistant message must have either content or tool_calls, "
                                      "but not both");
  }
  for (size_t i = 0; i < m.tool_calls.size(); ++i) {
    const ToolCall& call = m.tool_calls[i];
    std::string where = m.where + ".tool_calls[" + std::to_string(i) + "]";
    if (call.id == "null") {
      return invalid_argument(where + ".id: a tool call id is required");
    }
    if (!valid_tool_call_id(call.id)) {
      return invalid_argument(where + ".id: '" + call.id + "' must be 9 characters a-z, A-Z, 0-9");
    }
    if (!valid_function_name(call.name)) {
      return invalid_argument(where + ".function.name: '" + call.name +
                              "' must be 1-64 characters a-z, A-Z, 0-9, '_' or '-'");
    }
  }
  if (m.prefix && !is_last) return invalid_argument(m.where + ".prefix: only the last message may be a prefix");
  return Status::ok();
}

Status validate_tool_message(const Message& m) {
  PX_RETURN_IF_ERROR(validate_text_only(m));
  if (m.name && !valid_function_name(*m.name)) {
    return invalid_argument(m.where + ".name: '" + *m.name + "' must be 1-64 characters a-z, A-Z, 0-9, '_' or '-'");
  }
  if (!m.tool_call_id) return invalid_argument(m.where + ".tool_call_id: required for tool messages");
  if (!valid_tool_call_id(*m.tool_call_id)) {
    return invalid_argument(m.where + ".tool_call_id: '" + *m.tool_call_id + "' must be 9 characters a-z, A-Z, 0-9");
  }
  return Status::ok();
}

Status validate_message(const Message& m, bool is_last) {
  switch (m.role) {
    case Role::kUser:
      if (m.content_null) return invalid_argument(m.where + ".content: user content must not be null");
      return Status::ok();  // the parser only produces text and image parts
    case Role::kAssistant: return validate_assistant(m, is_last);
    case Role::kTool: return validate_tool_message(m);
    case Role::kSystem:
      if (m.content_null) return invalid_argument(m.where + ".content: a system message must have content");
      return validate_text_only(m);
  }
  return Status::ok();
}

}  // namespace

Status validate_chat_request(const ChatRequest& request) {
  PX_RETURN_IF_ERROR(validate_structure(request.messages));
  for (size_t i = 0; i < request.messages.size(); ++i) {
    PX_RETURN_IF_ERROR(validate_message(request.messages[i], i + 1 == request.messages.size()));
  }
  for (const ToolDefinition& tool : request.tools) {
    if (!valid_function_name(tool.name)) {
      return invalid_argument(tool.where + ".name: '" + tool.name +
                              "' must be 1-64 characters a-z, A-Z, 0-9, '_' or '-'");
    }
  }
  return Status::ok();
}

}  // namespace pixtral::prompt
