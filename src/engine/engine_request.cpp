// Request preparation, on the submitting thread: the prompt form (chat messages, a
// chat-completions body, or token ids with pixels) to token ids, preprocessed pixels and image
// content hashes; sampling options validated; the length limits checked.
#include <algorithm>

#include "engine/engine_impl.h"
#include "image/image.h"

namespace pixtral {

namespace {

engine::SamplingParams to_params(const SamplingOptions& o) {
  engine::SamplingParams p;
  p.temperature = o.temperature;
  p.top_p = o.top_p;
  p.top_k = o.top_k;
  p.min_p = o.min_p;
  p.repetition_penalty = o.repetition_penalty;
  p.presence_penalty = o.presence_penalty;
  p.frequency_penalty = o.frequency_penalty;
  p.seed = o.seed;
  p.max_tokens = o.max_tokens;
  p.min_tokens = o.min_tokens;
  p.ignore_eos = o.ignore_eos;
  p.stop_token_ids = o.stop_token_ids;
  p.stop = o.stop;
  p.include_stop_str_in_output = o.include_stop_str_in_output;
  p.logprobs = o.logprobs;
  p.top_logprobs = o.top_logprobs;
  p.n = o.n;
  return p;
}

Result<prompt::Role> parse_role(const std::string& role, const std::string& where) {
  if (role == "system") return prompt::Role::kSystem;
  if (role == "user") return prompt::Role::kUser;
  if (role == "assistant") return prompt::Role::kAssistant;
  return invalid_argument(where + ".role: expected system, user or assistant, got '" + role + "'");
}

Result<prompt::ChatRequest> to_chat_request(std::vector<ChatMessage>& messages) {
  prompt::ChatRequest out;
  for (size_t i = 0; i < messages.size(); ++i) {
    prompt::Message m;
    m.where = "messages[" + std::to_string(i) + "]";
    PX_ASSIGN_OR_RETURN(m.role, parse_role(messages[i].role, m.where));
    for (size_t j = 0; j < messages[i].content.size(); ++j) {
      ContentPart& part = messages[i].content[j];
      const std::string where = m.where + ".content[" + std::to_string(j) + "]";
      if (part.kind == ContentPart::Kind::kText) {
        m.content.push_back(prompt::ContentChunk::text_chunk(std::move(part.text), where));
        continue;
      }
      prompt::ContentChunk chunk;
      chunk.type = prompt::ContentChunk::Type::kImage;
      chunk.where = where;
      if (part.kind == ContentPart::Kind::kImageBytes) {
        chunk.image.kind = prompt::ImageSource::Kind::kBytes;
        chunk.image.bytes = std::move(part.image_bytes);
      } else {
        chunk.image.kind = prompt::ImageSource::Kind::kFile;
        chunk.image.location = part.image_path;
      }
      m.content.push_back(std::move(chunk));
    }
    m.content_is_string = m.content.size() == 1 && m.content[0].type == prompt::ContentChunk::Type::kText;
    m.has_content = true;
    m.content_null = false;
    out.messages.push_back(std::move(m));
  }
  return out;
}

}  // namespace

Status Engine::Impl::prepare(Request& request, PreparedRequest& out) const {
  const int forms = int{!request.messages.empty()} + int{!request.chat_json.empty()} +
                    int{!request.prompt_ids.empty()};
  if (forms != 1) return invalid_argument("a request needs exactly one of messages, chat_json or prompt_ids");
  out.sampling = to_params(request.sampling);
  const int64_t vocab = model_->config().text.vocab_size;
  PX_RETURN_IF_ERROR(engine::validate(out.sampling, vocab));
  if (out.sampling.n > options_.max_num_seqs)
    return invalid_argument("n must be at most max_num_seqs=" + std::to_string(options_.max_num_seqs) +
                            " (each choice is a running sequence), got " + std::to_string(out.sampling.n) + ".");
  if (!out.sampling.stop.empty() && !tokenizer_)
    return invalid_argument("stop strings need a tokenizer; the model directory has none");
  if (request.prompt_ids.empty()) {
    PX_RETURN_IF_ERROR(encode_chat(request, out));
  } else {
    out.prompt = std::move(request.prompt_ids);
    out.images = std::move(request.images);
    for (int32_t id : out.prompt)
      if (id < 0 || id >= vocab)
        return invalid_argument("prompt_ids: token " + std::to_string(id) + " is outside the vocabulary");
  }
  PX_RETURN_IF_ERROR(hash_images(out));
  if (static_cast<int64_t>(out.prompt.size()) + 1 > max_len_)
    return out_of_range("the prompt has " + std::to_string(out.prompt.size()) + " tokens; at most " +
                        std::to_string(max_len_ - 1) + " fit this engine's context and KV pool");
  PX_ASSIGN_OR_RETURN(out.max_tokens,
                      engine::effective_max_tokens(out.sampling, static_cast<int64_t>(out.prompt.size()), max_len_));
  // The choices share the prompt's blocks; each needs a block of its own from its first token on.
  const int64_t bs = options_.block_size;
  const int64_t blocks = (static_cast<int64_t>(out.prompt.size()) + bs) / bs + out.sampling.n - 1;
  if (blocks > num_kv_blocks_)
    return out_of_range("n = " + std::to_string(out.sampling.n) + " choices of a " + std::to_string(out.prompt.size()) +
                        "-token prompt need " + std::to_string(blocks) + " KV blocks at once; the pool has " +
                        std::to_string(num_kv_blocks_) + ". Reduce n or the prompt.");
  return Status::ok();
}

Status Engine::Impl::encode_chat(Request& request, PreparedRequest& out) const {
  if (!encoder_) return invalid_argument("chat requests need a v3 tokenizer with images (tekken.json) in the model directory");
  prompt::ChatRequest chat;
  if (!request.chat_json.empty()) {
    PX_ASSIGN_OR_RETURN(chat, prompt::parse_chat_request(request.chat_json));
  } else {
    PX_ASSIGN_OR_RETURN(chat, to_chat_request(request.messages));
  }
  PX_ASSIGN_OR_RETURN(prompt::EncodedChat encoded, encoder_->encode(chat));
  if (!encoded.images.empty() && !model_->config().has_vision)
    return invalid_argument("the request has images but the model has no vision encoder");
  out.prompt.assign(encoded.tokens.begin(), encoded.tokens.end());
  for (const auto& rgb : encoded.images) {
    PX_ASSIGN_OR_RETURN(image::PixelTensor pixels, image::preprocess(rgb, encoder_->geometry()));
    out.images.push_back({pixels.height, pixels.width, std::move(pixels.data)});
  }
  return Status::ok();
}

// Finds each image's token range (its [IMG] rows and the [IMG_BREAK]/[IMG_END] after them) and
// hashes its pixels with its size.
Status Engine::Impl::hash_images(PreparedRequest& out) const {
  const auto& config = model_->config();
  const auto img = static_cast<int32_t>(config.vision.image_token_id);
  const int64_t patch = config.vision.patch_size;
  const int64_t n = static_cast<int64_t>(out.prompt.size());
  const int64_t total = std::count(out.prompt.begin(), out.prompt.end(), img);
  if (!out.images.empty() && !config.has_vision) return invalid_argument("the model has no vision encoder");
  int64_t pos = 0, rows_sum = 0;
  for (size_t k = 0; k < out.images.size(); ++k) {
    const PixelImage& im = out.images[k];
    if (im.height <= 0 || im.width <= 0 || im.height % patch || im.width % patch ||
        static_cast<int64_t>(im.pixels.size()) != 3 * im.height * im.width)
      return invalid_argument("images[" + std::to_string(k) + "]: pixels must be [3, H, W] with H, W multiples of " +
                              std::to_string(patch));
    const int64_t rows = (im.height / patch) * (im.width / patch);
    while (pos < n && out.prompt[static_cast<size_t>(pos)] != img) ++pos;
    const int64_t begin = pos;
    for (int64_t seen = 0; pos < n && seen < rows; ++pos) seen += out.prompt[static_cast<size_t>(pos)] == img;
    const int64_t end = std::min(n, pos + 1);  // the [IMG_END] (or break) after the last row
    const auto bytes = std::as_bytes(std::span<const float>(im.pixels));
    const int32_t dims[2] = {static_cast<int32_t>(im.height), static_cast<int32_t>(im.width)};
    out.spans.push_back({.hash = kv_cache::hash_block(kv_cache::hash_bytes(bytes), dims, {}), .begin = begin, .end = end});
    out.image_rows.push_back(rows);
    rows_sum += rows;
    pos = end;
  }
  if (rows_sum != total)
    return invalid_argument("the prompt has " + std::to_string(total) + " [IMG] tokens but the images have " +
                            std::to_string(rows_sum) + " patches");
  return Status::ok();
}

}  // namespace pixtral
