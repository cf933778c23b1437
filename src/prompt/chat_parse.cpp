// Chat-completions JSON -> ChatRequest. Accepts the OpenAI and the Mistral spellings alike:
// content as a string, null or a list of parts; image parts as {"type":"image_url","image_url":
// "<url>" | {"url": ...}} or {"type":"image","image":"<base64 or data URI>"}; tool-call
// arguments as a string or an object. ref: spec/inputs.md §3.1, §6, §7.2; spec/api.md §2.2
#include <string>

#include "prompt/chat_request.h"
#include "prompt/image_source.h"

namespace pixtral::prompt {
namespace {

std::string idx(const std::string& base, const char* field, size_t i) {
  return base + "." + field + "[" + std::to_string(i) + "]";
}

Result<std::string> get_string(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return invalid_argument(where + ": missing '" + key + "'");
  if (!it->is_string()) return invalid_argument(where + "." + key + ": expected a string");
  return it->get<std::string>();
}

Result<ContentChunk> parse_image_part(const Json& part, const std::string& where,
                                      const ParseOptions& options) {
  ContentChunk chunk;
  chunk.type = ContentChunk::Type::kImage;
  chunk.where = where;
  std::string type = part["type"].get<std::string>();
  if (type == "image") {  // mistral_common ImageChunk: base64, with or without a data: prefix
    PX_ASSIGN_OR_RETURN(std::string data, get_string(part, "image", where));
    if (data.rfind("data:", 0) == 0) {
      PX_ASSIGN_OR_RETURN(chunk.image, parse_image_url(data, where + ".image", options));
    } else {
      auto bytes = decode_base64(data);
      if (!bytes.is_ok()) return bytes.status().with_context(where + ".image");
      chunk.image.bytes = std::move(bytes).value();
    }
    return chunk;
  }
  auto it = part.find("image_url");
  if (it == part.end()) return invalid_argument(where + ": missing 'image_url'");
  std::string url_where = where + ".image_url";
  std::string url;
  if (it->is_string()) {
    url = it->get<std::string>();
  } else if (it->is_object()) {
    PX_ASSIGN_OR_RETURN(url, get_string(*it, "url", url_where));
    url_where += ".url";
  } else {
    return invalid_argument(url_where + ": expected a string or an object with 'url'");
  }
  PX_ASSIGN_OR_RETURN(chunk.image, parse_image_url(url, url_where, options));
  return chunk;
}

Result<ContentChunk> parse_part(const Json& part, const std::string& where, const ParseOptions& options) {
  if (!part.is_object()) return invalid_argument(where + ": expected an object");
  auto type_it = part.find("type");
  if (type_it == part.end() || !type_it->is_string()) {
    return invalid_argument(where + ": missing or non-string 'type'");
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "text") {
    ContentChunk chunk;
    chunk.where = where;
    PX_ASSIGN_OR_RETURN(chunk.text, get_string(part, "text", where));
    return chunk;
  }
  if (type == "image_url" || type == "image") return parse_image_part(part, where, options);
  return invalid_argument(where + ".type: unsupported content part type '" + type + "'");
}

Status parse_content(const Json& msg, Message* out, const ParseOptions& options) {
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return Status::ok();
  std::string where = out->where + ".content";
  out->content_null = false;
  if (it->is_string()) {
    out->has_content = !it->get_ref<const std::string&>().empty();
    out->content_is_string = true;
    out->content.push_back(ContentChunk::text_chunk(it->get<std::string>(), where));
    return Status::ok();
  }
  if (!it->is_array()) return invalid_argument(where + ": expected a string, null or a list of parts");
  out->has_content = !it->empty();
  for (size_t i = 0; i < it->size(); ++i) {
    PX_ASSIGN_OR_RETURN(ContentChunk chunk, parse_part((*it)[i], where + "[" + std::to_string(i) + "]", options));
    out->content.push_back(std::move(chunk));
  }
  return Status::ok();
}

Result<ToolCall> parse_tool_call(const Json& call, const std::string& where) {
  if (!call.is_object()) return invalid_argument(where + ": expected an object");
  ToolCall out;
  if (auto id = call.find("id"); id != call.end() && !id->is_null()) {
    if (!id->is_string()) return invalid_argument(where + ".id: expected a string");
    out.id = id->get<std::string>();
  }
  auto fn = call.find("function");
  if (fn == call.end() || !fn->is_object()) return invalid_argument(where + ": missing 'function' object");
  PX_ASSIGN_OR_RETURN(out.name, get_string(*fn, "name", where + ".function"));
  auto args = fn->find("arguments");
  if (args == fn->end() || args->is_null()) {
    out.arguments = "{}";
  } else if (args->is_string()) {
    out.arguments = args->get<std::string>();
  } else if (args->is_object()) {
    out.arguments = py_json_dumps(*args);  // FunctionCall: a dict is json.dumps-ed at parse time
  } else {
    return invalid_argument(where + ".function.arguments: expected a string or an object");
  }
  return out;
}

Result<Role> parse_role(const Json& msg, const std::string& where) {
  PX_ASSIGN_OR_RETURN(std::string role, get_string(msg, "role", where));
  if (role == "system") return Role::kSystem;
  if (role == "user") return Role::kUser;
  if (role == "assistant") return Role::kAssistant;
  if (role == "tool") return Role::kTool;
  return invalid_argument(where + ".role: unknown role '" + role + "' (expected system, user, assistant or tool)");
}

Status parse_optional_string(const Json& msg, const char* key, const std::string& where,
                             std::optional<std::string>* out) {
  auto it = msg.find(key);
  if (it == msg.end() || it->is_null()) return Status::ok();
  if (!it->is_string()) return invalid_argument(where + "." + key + ": expected a string");
  *out = it->get<std::string>();
  return Status::ok();
}

Result<Message> parse_message(const Json& msg, const std::string& where, const ParseOptions& options) {
  if (!msg.is_object()) return invalid_argument(where + ": expected an object");
  Message out;
  out.where = where;
  PX_ASSIGN_OR_RETURN(out.role, parse_role(msg, where));
  PX_RETURN_IF_ERROR(parse_content(msg, &out, options));
  if (out.role == Role::kAssistant) {
    if (auto calls = msg.find("tool_calls"); calls != msg.end() && !calls->is_null()) {
      if (!calls->is_array()) return invalid_argument(where + ".tool_calls: expected a list");
      for (size_t i = 0; i < calls->size(); ++i) {
        PX_ASSIGN_OR_RETURN(ToolCall call, parse_tool_call((*calls)[i], idx(where, "tool_calls", i)));
        out.tool_calls.push_back(std::move(call));
      }
    }
    if (auto prefix = msg.find("prefix"); prefix != msg.end() && !prefix->is_null()) {
      if (!prefix->is_boolean()) return invalid_argument(where + ".prefix: expected a boolean");
      out.prefix = prefix->get<bool>();
    }
  }
  if (out.role == Role::kTool) {
    PX_RETURN_IF_ERROR(parse_optional_string(msg, "tool_call_id", where, &out.tool_call_id));
    PX_RETURN_IF_ERROR(parse_optional_string(msg, "name", where, &out.name));
  }
  return out;
}

Result<ToolDefinition> parse_tool(const Json& tool, const std::string& where) {
  if (!tool.is_object()) return invalid_argument(where + ": expected an object");
  if (auto type = tool.find("type"); type != tool.end() && *type != "function") {
    return invalid_argument(where + ".type: only \"function\" tools are supported");
  }
  auto fn = tool.find("function");
  if (fn == tool.end() || !fn->is_object()) return invalid_argument(where + ": missing 'function' object");
  ToolDefinition out;
  out.where = where + ".function";
  PX_ASSIGN_OR_RETURN(out.name, get_string(*fn, "name", out.where));
  if (auto d = fn->find("description"); d != fn->end() && !d->is_null()) {
    if (!d->is_string()) return invalid_argument(out.where + ".description: expected a string");
    out.description = d->get<std::string>();
  }
  if (auto p = fn->find("parameters"); p != fn->end() && !p->is_null()) {
    if (!p->is_object()) return invalid_argument(out.where + ".parameters: expected a JSON schema object");
    out.parameters = *p;
  }
  return out;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
  }
  return "?";
}

Result<ChatRequest> parse_chat_request_json(const Json& body, const ParseOptions& options) {
  if (!body.is_object()) return invalid_argument("request: expected a JSON object");
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array()) {
    return invalid_argument("messages: missing or not a list");
  }
  ChatRequest request;
  for (size_t i = 0; i < messages->size(); ++i) {
    PX_ASSIGN_OR_RETURN(Message m, parse_message((*messages)[i], "messages[" + std::to_string(i) + "]", options));
    request.messages.push_back(std::move(m));
  }
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return invalid_argument("tools: expected a list");
    for (size_t i = 0; i < tools->size(); ++i) {
      PX_ASSIGN_OR_RETURN(ToolDefinition t, parse_tool((*tools)[i], "tools[" + std::to_string(i) + "]"));
      request.tools.push_back(std::move(t));
    }
  }
  // vLLM's continue_final_message == Mistral's prefix on the last (assistant) message.
  if (auto cont = body.find("continue_final_message"); cont != body.end() && cont->is_boolean() && cont->get<bool>()) {
    if (request.messages.empty() || request.messages.back().role != Role::kAssistant) {
      return invalid_argument("continue_final_message: requires the final message to be an assistant");
    }
    request.messages.back().prefix = true;
  }
  return request;
}

Result<ChatRequest> parse_chat_request(std::string_view json_text, const ParseOptions& options) {
  Json body;
  try {  // nlohmann reports position and reason only through its exception
    body = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::parse_error& e) {
    return invalid_argument(std::string("request: invalid JSON: ") + e.what());
  }
  return parse_chat_request_json(body, options);
}

}  // namespace pixtral::prompt
