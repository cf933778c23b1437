// What a tokenizer file reader produces before the Tokenizer is assembled (internal to
// px_tokenizer; shared by the tekken.json and tokenizer.json readers).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pixtral/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::tokenizer {

struct TokenizerParts {
  std::string version;                  // "v3"
  std::string pattern;                  // pre-tokenization regex
  std::vector<std::string> specials;    // id -> string, size = number of special ids
  std::unique_ptr<RankTable> ranks;     // BPE rank -> bytes
  std::optional<ImageTokenConfig> image;
};

// The tekken.json versions mistral_common accepts, in order. ref: spec/inputs.md §1.2
int tekken_version_index(std::string_view version);  // -1 when unknown

// Standard base64 (with padding); nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

}  // namespace pixtral::tokenizer
