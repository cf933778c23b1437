// A generation request as the public engine API takes it: a chat (messages with text and image
// parts, or a chat-completions JSON body) or raw token ids with preprocessed pixels, plus the
// sampling parameters (the fields of vLLM's SamplingParams; docs/sampling.md).
// Plain values: copyable, no behaviour; Engine::submit validates them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pixtral {

struct SamplingOptions {
  float temperature = 0.0f;         // < 1e-5: greedy
  float top_p = 1.0f;               // (0, 1]
  int64_t top_k = 0;                // 0 or -1: off
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  std::optional<uint64_t> seed;     // none: a random seed per request
  std::optional<int64_t> max_tokens;  // none: up to the context
  int64_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;      // stop strings (need a tokenizer)
  bool include_stop_str_in_output = false;
  bool logprobs = false;              // logprob of each chosen token
  int64_t top_logprobs = 0;           // 0..20 alternatives per position (needs logprobs)
  // Independent completions ("choices") of the prompt, 1..16 (events carry the choice's index).
  // The prompt is computed once and its KV blocks shared. With a seed, choice i draws what a
  // request with n = 1 and seed + i draws; greedy choices are all equal (vLLM's behaviour).
  int64_t n = 1;
};

// One part of a chat message: text, or an image given as encoded bytes or a local file path.
struct ContentPart {
  enum class Kind { kText, kImageBytes, kImageFile };
  Kind kind = Kind::kText;
  std::string text;                 // kText
  std::vector<uint8_t> image_bytes;  // kImageBytes: PNG, JPEG, WebP, GIF or BMP file content
  std::string image_path;           // kImageFile

  static ContentPart text_part(std::string s) { ContentPart p; p.text = std::move(s); return p; }
  static ContentPart image_file(std::string path) {
    ContentPart p;
    p.kind = Kind::kImageFile;
    p.image_path = std::move(path);
    return p;
  }
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::vector<ContentPart> content;
};

// Normalized pixels of one image, [3, height, width] (what image::preprocess produces).
struct PixelImage {
  int64_t height = 0, width = 0;
  std::vector<float> pixels;
};

struct Request {
  // Exactly one prompt form:
  std::vector<ChatMessage> messages;  // a chat, encoded with the model's tokenizer
  std::string chat_json;              // or the body of POST /v1/chat/completions (messages and
                                      // tools only: the sampling fields come from `sampling`)
  std::vector<int32_t> prompt_ids;    // or token ids, [IMG] rows included, with
  std::vector<PixelImage> images;     // the images of those [IMG] rows, prompt order
  SamplingOptions sampling;
};

}  // namespace pixtral
