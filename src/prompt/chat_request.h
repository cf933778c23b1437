// The chat request as the prompt layer sees it: messages with text and image chunks, tool calls,
// tool results and tool definitions, parsed from a chat-completions JSON body in either dialect
// (OpenAI or Mistral La Plateforme; one lenient parser accepts both spellings).
// ref: spec/inputs.md §3.1, §6, §7.2; spec/api.md §1.2, §1.10, §2.1, §2.2; docs/chat-format.md
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pixtral/status.h"
#include "prompt/py_json.h"

namespace pixtral::prompt {

enum class Role { kSystem, kUser, kAssistant, kTool };
const char* role_name(Role role);

// Where an image comes from. Data URIs are decoded to bytes at parse time.
struct ImageSource {
  enum class Kind { kBytes, kFile, kRemoteUrl };
  Kind kind = Kind::kBytes;
  std::vector<uint8_t> bytes;  // kBytes: the encoded file (PNG, JPEG, ...)
  std::string location;        // kFile: a path; kRemoteUrl: the URL
};

struct ContentChunk {
  enum class Type { kText, kImage };
  // A text chunk. (Built through this rather than designated initialisers: GCC 12 at -O2 reports a
  // false maybe-uninitialized on the nested strings of a braced temporary.)
  static ContentChunk text_chunk(std::string text, std::string where) {
    ContentChunk c;
    c.text = std::move(text);
    c.where = std::move(where);
    return c;
  }
  Type type = Type::kText;
  std::string text;    // kText
  ImageSource image;   // kImage
  std::string where;   // request part, for error messages: "messages[2].content[1]"
};

// One function call of an assistant turn. `arguments` is a JSON text (an object given in the
// request is serialized as Python's json.dumps would) or an arbitrary string.
struct ToolCall {
  std::string id = "null";  // mistral_common's default when the request has no id
  std::string name;
  std::string arguments;
};

struct Message {
  Role role = Role::kUser;
  // Content as chunks. A string content becomes one text chunk with content_is_string = true;
  // has_content is false for a missing/null content.
  std::vector<ContentChunk> content;
  bool content_is_string = false;
  bool has_content = false;
  bool content_null = true;  // "content" absent or null
  std::vector<ToolCall> tool_calls;  // assistant
  bool prefix = false;               // assistant: the prompt ends inside this turn
  std::optional<std::string> tool_call_id;  // tool
  std::optional<std::string> name;          // tool (validated, not encoded in v3)
  std::string where;                        // "messages[3]"
};

struct ToolDefinition {
  std::string name;
  std::string description;  // "" when absent
  Json parameters = Json::object();
  std::string where;        // "tools[0]"
};

struct ChatRequest {
  std::vector<Message> messages;
  std::vector<ToolDefinition> tools;
};

struct ParseOptions {
  // Plain local paths and file:// URLs. A server facing untrusted clients turns this off.
  bool allow_local_files = true;
};

// Parses the body of POST /v1/chat/completions. Fields that do not reach the prompt (sampling,
// model, stream, ...) are ignored here. `continue_final_message: true` (vLLM) marks the last
// message, which must be an assistant, as prefix. Errors name the request part and the reason,
// e.g. "messages[2].content[1].image_url: invalid base64".
Result<ChatRequest> parse_chat_request(std::string_view json_text, const ParseOptions& options = {});
Result<ChatRequest> parse_chat_request_json(const Json& body, const ParseOptions& options = {});

}  // namespace pixtral::prompt
