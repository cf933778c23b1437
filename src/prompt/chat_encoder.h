// Mistral instruct v3 chat encoding (InstructTokenizerV3 over Tekken), as mistral_common 1.13.1
// does for Pixtral-12B-2409 (MistralTokenizer.from_file("tekken_240911.json") ==
// MistralTokenizer.v3(is_tekken=True, is_mm=True), validation mode "test"):
//   validate (role order, tool-call ids, names) -> normalize (system prompt, merged runs,
//   canonical JSON) -> encode ([INST]..[/INST], [AVAILABLE_TOOLS], [TOOL_CALLS],
//   [TOOL_RESULTS], [IMG]/[IMG_BREAK]/[IMG_END] grids).
// ref: spec/inputs.md §3, §4; docs/chat-format.md
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"
#include "pixtral/status.h"
#include "prompt/chat_normalize.h"
#include "prompt/chat_request.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::prompt {

using tokenizer::TokenId;

// Where one image's tokens sit in the prompt: tokens[first_token .. first_token + rows*(cols+1))
// are `rows` runs of `cols` [IMG] each closed by [IMG_BREAK], the last one by [IMG_END].
// Only the [IMG] positions receive vision embeddings, row-major. ref: spec/inputs.md §4
struct ImageSlot {
  int64_t first_token = 0;
  int64_t rows = 0, cols = 0;
  int64_t num_tokens() const { return rows * (cols + 1); }
};

struct EncodedChat {
  std::vector<TokenId> tokens;       // starts with BOS; no EOS at the end
  std::vector<ImageSlot> slots;      // one per image, in prompt order
  // The decoded RGB images, same order as `slots`. The encoder stops at RGB on purpose: the
  // caller (engine, `preprocess` CLI) runs image::preprocess with the same geometry, possibly
  // on another thread or after a cache lookup, and the slot's rows/cols already fix its size.
  std::vector<image::RgbImage> images;
  bool ends_in_prefix = false;       // the last message was an assistant prefix (no EOS after it)
};

struct ChatEncodeOptions {
  // Images per request. 8 is La Plateforme's documented limit (spec/api.md §2.6); vLLM allows
  // 999. Each 1024x1024 image costs 4160 tokens of the 128k context.
  int64_t max_images_per_request = 8;
  image::DecodeLimits decode_limits = {};
};

// Validation as MistralRequestValidatorV3 in "test" mode. Errors name the request part.
Status validate_chat_request(const ChatRequest& request);

class ChatEncoder {
 public:
  // Requires a v3 tokenizer with an image section (tekken_240911.json). The tokenizer must
  // outlive the encoder. Thread-safe: encode() is const and keeps no state.
  static Result<ChatEncoder> create(const tokenizer::Tokenizer& tokenizer, ChatEncodeOptions options = {});

  Result<EncodedChat> encode(const ChatRequest& request) const;

  image::ImageGeometry geometry() const { return geometry_; }

 private:
  struct Specials {
    TokenId bos, eos, inst, end_inst, tools, end_tools, results, end_results, calls, img, img_break, img_end;
  };
  ChatEncoder(const tokenizer::Tokenizer& tokenizer, ChatEncodeOptions options, Specials specials,
              image::ImageGeometry geometry)
      : tokenizer_(&tokenizer), options_(options), specials_(specials), geometry_(geometry) {}

  struct State;  // per-call output being built (chat_encoder.cpp)
  Status encode_text(const std::string& text, const std::string& where, State* state) const;
  Status encode_image(const ContentChunk& chunk, State* state) const;
  Status encode_user(const NormalizedMessage& m, bool is_last_user, const std::string& system_prompt,
                     const std::vector<ToolDefinition>& tools, State* state) const;
  Status encode_assistant(const NormalizedMessage& m, State* state) const;
  Status encode_tool(const NormalizedMessage& m, State* state) const;

  const tokenizer::Tokenizer* tokenizer_;
  ChatEncodeOptions options_;
  Specials specials_;
  image::ImageGeometry geometry_;
};

}  // namespace pixtral::prompt
