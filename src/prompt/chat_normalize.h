// Normalization of a validated request into the instruct request the v3 grammar encodes, as
// mistral_common's InstructRequestNormalizer (v1-v3). ref: spec/inputs.md §3.2
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "prompt/chat_request.h"

namespace pixtral::prompt {

struct NormalizedMessage {
  Role role = Role::kUser;
  // user: text/image chunks; content_is_string when no image (one text chunk, maybe empty).
  // assistant: at most one text chunk. tool: one text chunk (canonical JSON or verbatim text).
  std::vector<ContentChunk> content;
  bool content_is_string = true;
  std::vector<ToolCall> tool_calls;  // arguments canonicalized
  bool prefix = false;
  std::string tool_call_id;
  std::string where;  // the first source message of the merged run
};

struct NormalizedChat {
  std::optional<std::string> system_prompt;  // all non-empty system texts, joined with "\n\n"
  std::vector<NormalizedMessage> messages;   // starts with a user message
};

NormalizedChat normalize_chat(const ChatRequest& request);

}  // namespace pixtral::prompt
