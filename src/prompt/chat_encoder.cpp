// ref: spec/inputs.md §3.4 (grammar), §3.7 (image-first rule), §4 (image tokens);
// mistral_common 1.13.1 tokens/tokenizers/instruct.py (InstructTokenizerV2/V3.encode_*)
#include "prompt/chat_encoder.h"

#include "base/check.h"
#include "prompt/image_source.h"
#include "prompt/py_json.h"

namespace pixtral::prompt {

struct ChatEncoder::State {
  EncodedChat out;
};

namespace {

// json.loads(text) when it parses, else the text itself as a JSON string (InstructTokenizerV2.
// _parse_json_content).
Json parse_or_string(const std::string& text) {
  std::optional<Json> parsed = py_json_loads(text);
  return parsed ? std::move(*parsed) : Json(text);
}

// Tool.model_dump(exclude strict): {"type": "function", "function": {name, description, parameters}}.
std::string tools_json(const std::vector<ToolDefinition>& tools) {
  Json list = Json::array();
  for (const ToolDefinition& t : tools) {
    Json fn = Json::object();
    fn["name"] = t.name;
    fn["description"] = t.description;
    fn["parameters"] = t.parameters;
    Json tool = Json::object();
    tool["type"] = "function";
    tool["function"] = std::move(fn);
    list.push_back(std::move(tool));
  }
  return py_json_dumps(list);
}

// InstructTokenizerV3._maybe_put_image_first: [text..., image] -> [image, text...].
std::vector<ContentChunk> image_first(const std::vector<ContentChunk>& chunks) {
  if (chunks.size() < 2 || chunks.back().type != ContentChunk::Type::kImage) return chunks;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    if (chunks[i].type != ContentChunk::Type::kText) return chunks;
  }
  std::vector<ContentChunk> out{chunks.back()};
  out.insert(out.end(), chunks.begin(), chunks.end() - 1);
  return out;
}

std::string rstrip_spaces(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

Result<ChatEncoder> ChatEncoder::create(const tokenizer::Tokenizer& tok, ChatEncodeOptions options) {
  if (tok.version() != "v3") {
    return unimplemented("tokenizer version " + tok.version() + ": only the v3 instruct format is implemented");
  }
  std::optional<tokenizer::ImageTokenConfig> image = tok.image_config();
  if (!image) return invalid_argument("tokenizer: no image section; Pixtral needs tekken_240911.json");
  if (image->spatial_merge_size != 1) return unimplemented("tokenizer: spatial_merge_size != 1");
  const char* names[] = {"<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                         "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"};
  TokenId ids[12];
  for (size_t i = 0; i < 12; ++i) {
    std::optional<TokenId> id = tok.special_id(names[i]);
    if (!id) return invalid_argument(std::string("tokenizer: missing special token ") + names[i]);
    ids[i] = *id;
  }
  Specials s{ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8], ids[9], ids[10], ids[11]};
  return ChatEncoder(tok, options, s, image::ImageGeometry{.patch_size = image->patch_size,
                                                           .max_image_size = image->max_image_size});
}

Status ChatEncoder::encode_text(const std::string& text, const std::string& where, State* state) const {
  auto ids = tokenizer_->encode(text, /*bos=*/false, /*eos=*/false);
  if (!ids.is_ok()) return ids.status().with_context(where);
  state->out.tokens.insert(state->out.tokens.end(), ids->begin(), ids->end());
  return Status::ok();
}

Status ChatEncoder::encode_image(const ContentChunk& chunk, State* state) const {
  if (static_cast<int64_t>(state->out.images.size()) >= options_.max_images_per_request) {
    return out_of_range(chunk.where + ": too many images: at most " +
                        std::to_string(options_.max_images_per_request) + " per request");
  }
  PX_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_image_bytes(chunk.image, chunk.where));
  auto rgb = image::decode_image(bytes, options_.decode_limits);
  if (!rgb.is_ok()) return rgb.status().with_context(chunk.where);
  auto grid = image::patch_grid(rgb->width, rgb->height, geometry_);
  if (!grid.is_ok()) return grid.status().with_context(chunk.where);
  std::vector<TokenId>& t = state->out.tokens;
  ImageSlot slot{.first_token = static_cast<int64_t>(t.size()), .rows = grid->rows, .cols = grid->cols};
  // ref: spec/inputs.md §4: rows of `cols` [IMG] + [IMG_BREAK]; the very last token -> [IMG_END].
  for (int64_t r = 0; r < slot.rows; ++r) {
    t.insert(t.end(), static_cast<size_t>(slot.cols), specials_.img);
    t.push_back(r + 1 == slot.rows ? specials_.img_end : specials_.img_break);
  }
  state->out.slots.push_back(slot);
  state->out.images.push_back(std::move(rgb).value());
  return Status::ok();
}

Status ChatEncoder::encode_user(const NormalizedMessage& m, bool is_last_user, const std::string& system_prompt,
                                const std::vector<ToolDefinition>& tools, State* state) const {
  std::vector<TokenId>& t = state->out.tokens;
  if (is_last_user && !tools.empty()) {  // tool definitions sit right before the LAST [INST]
    t.push_back(specials_.tools);
    PX_RETURN_IF_ERROR(encode_text(tools_json(tools), "tools", state));
    t.push_back(specials_.end_tools);
  }
  t.push_back(specials_.inst);
  bool with_system = is_last_user && !system_prompt.empty();
  if (m.content_is_string) {
    // One segment: BPE may merge across the "\n\n" joint. ref: spec/inputs.md §3.4
    const ContentChunk& c = m.content.front();
    PX_RETURN_IF_ERROR(encode_text(with_system ? system_prompt + "\n\n" + c.text : c.text, c.where, state));
  } else {
    if (with_system) PX_RETURN_IF_ERROR(encode_text(system_prompt + "\n\n", "system prompt", state));
    for (const ContentChunk& c : image_first(m.content)) {
      if (c.type == ContentChunk::Type::kImage) {
        PX_RETURN_IF_ERROR(encode_image(c, state));
      } else {
        PX_RETURN_IF_ERROR(encode_text(c.text, c.where, state));
      }
    }
  }
  t.push_back(specials_.end_inst);
  return Status::ok();
}

Status ChatEncoder::encode_assistant(const NormalizedMessage& m, State* state) const {
  const std::string& text = m.content.front().text;
  if (!m.tool_calls.empty() && !text.empty()) {
    return invalid_argument(m.where + ": consecutive assistant messages mix content and tool_calls");
  }
  if (!m.tool_calls.empty()) {
    Json calls = Json::array();
    for (const ToolCall& call : m.tool_calls) {
      Json c = Json::object();
      c["name"] = call.name;
      c["arguments"] = parse_or_string(call.arguments);
      if (!call.id.empty() && call.id != "null") c["id"] = call.id;
      calls.push_back(std::move(c));
    }
    state->out.tokens.push_back(specials_.calls);
    PX_RETURN_IF_ERROR(encode_text(py_json_dumps(calls), m.where + ".tool_calls", state));
  } else if (!text.empty()) {
    PX_RETURN_IF_ERROR(encode_text(rstrip_spaces(text), m.content.front().where, state));
  } else {
    return invalid_argument(m.where + ": an assistant message needs non-empty content or tool_calls");
  }
  if (!m.prefix) state->out.tokens.push_back(specials_.eos);
  state->out.ends_in_prefix = m.prefix;
  return Status::ok();
}

Status ChatEncoder::encode_tool(const NormalizedMessage& m, State* state) const {
  Json result = Json::object();
  result["content"] = parse_or_string(m.content.front().text);
  result["call_id"] = m.tool_call_id;
  state->out.tokens.push_back(specials_.results);
  PX_RETURN_IF_ERROR(encode_text(py_json_dumps(result), m.where + ".content", state));
  state->out.tokens.push_back(specials_.end_results);
  return Status::ok();
}

Result<EncodedChat> ChatEncoder::encode(const ChatRequest& request) const {
  PX_RETURN_IF_ERROR(validate_chat_request(request));
  int64_t num_images = 0;
  for (const Message& m : request.messages) {
    for (const ContentChunk& c : m.content) {
      if (c.type != ContentChunk::Type::kImage) continue;
      if (++num_images > options_.max_images_per_request) {
        return out_of_range(c.where + ": too many images: at most " +
                            std::to_string(options_.max_images_per_request) + " per request");
      }
    }
  }
  NormalizedChat chat = normalize_chat(request);
  size_t last_user = 0;
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    if (chat.messages[i].role == Role::kUser) last_user = i;
  }
  State state;
  state.out.tokens.push_back(specials_.bos);
  const std::string system_prompt = chat.system_prompt.value_or("");
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const NormalizedMessage& m = chat.messages[i];
    state.out.ends_in_prefix = false;
    switch (m.role) {
      case Role::kUser:
        PX_RETURN_IF_ERROR(encode_user(m, i == last_user, system_prompt, request.tools, &state));
        break;
      case Role::kAssistant: PX_RETURN_IF_ERROR(encode_assistant(m, &state)); break;
      case Role::kTool: PX_RETURN_IF_ERROR(encode_tool(m, &state)); break;
      case Role::kSystem: PX_CHECK_MSG(false, "system messages are removed by normalization");
    }
  }
  return std::move(state.out);
}

}  // namespace pixtral::prompt
