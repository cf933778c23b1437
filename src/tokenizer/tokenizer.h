// The Tekken tokenizer of Pixtral-12B: tiktoken-style byte-level BPE over a vocabulary read from
// tekken.json (or a Hugging Face tokenizer.json converted from it), with reserved special-token ids
// at the bottom of the id space. Matches mistral_common's Tekkenizer id for id.
// ref: spec/inputs.md §1 (file format), §2 (encode/decode)
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pixtral/status.h"

namespace pixtral::tokenizer {

using TokenId = int32_t;

// What decode() does with special-token ids (ids < num_special_tokens), as mistral_common.
enum class SpecialTokenPolicy { kIgnore, kKeep, kRaise };

// The "image" (or legacy "multimodal") section of tekken.json. ref: spec/inputs.md §1.5
struct ImageTokenConfig {
  int64_t patch_size = 16;
  int64_t max_image_size = 1024;
  int64_t spatial_merge_size = 1;
};

class PreTokenizer;    // the file's split regex, compiled (PCRE2 JIT); pretokenizer.h
class RankTable;       // BPE byte strings <-> ranks; bpe.h
struct TokenizerParts;  // what a file reader produces; tokenizer_parts.h

class Tokenizer {
 public:
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // tekken.json, or HF tokenizer.json (detected from content). Errors name the file and field.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& path);
  static Result<std::unique_ptr<Tokenizer>> from_tekken_json(std::string_view json_text,
                                                             const std::string& file_name);
  static Result<std::unique_ptr<Tokenizer>> from_hf_tokenizer_json(std::string_view json_text,
                                                                   const std::string& file_name);

  // Ordinary text (no special-token parsing, as Tekkenizer.encode). Invalid UTF-8 -> error.
  Result<std::vector<TokenId>> encode(std::string_view text, bool bos, bool eos) const;
  Result<std::string> decode(const std::vector<TokenId>& ids, SpecialTokenPolicy policy) const;

  // Raw bytes of a BPE token; for a special id: its string. Empty for an out-of-range id.
  std::string_view token_bytes(TokenId id) const;
  bool is_special(TokenId id) const { return id >= 0 && id < num_special_; }
  bool is_valid(TokenId id) const { return id >= 0 && id < vocab_size(); }
  std::optional<TokenId> special_id(std::string_view token_str) const;  // "[INST]" -> 3

  TokenId bos_id() const { return bos_id_; }
  TokenId eos_id() const { return eos_id_; }
  TokenId pad_id() const { return pad_id_; }
  TokenId unk_id() const { return unk_id_; }
  int64_t vocab_size() const;
  int64_t num_special_tokens() const { return num_special_; }
  const std::string& version() const { return version_; }  // "v3"
  const std::string& pattern() const { return pattern_; }
  std::optional<ImageTokenConfig> image_config() const { return image_config_; }

  // BPE ranks of one pre-tokenized piece (no special offset); exposed for tests and benchmarks.
  void bpe_piece(std::string_view piece, std::vector<TokenId>* out_ids) const;

 private:
  Tokenizer();
  // Checks and assembles the parts a file reader produced (tokenizer.cpp).
  static Result<std::unique_ptr<Tokenizer>> assemble(TokenizerParts parts);

  std::string version_;
  std::string pattern_;
  int64_t num_special_ = 0;
  std::vector<std::string> special_strs_;  // id -> string
  std::unordered_map<std::string, TokenId> special_by_str_;
  std::unique_ptr<RankTable> ranks_;       // rank (= id - num_special_) <-> bytes
  std::optional<ImageTokenConfig> image_config_;
  TokenId bos_id_ = 1, eos_id_ = 2, pad_id_ = 11, unk_id_ = 0;
  std::unique_ptr<PreTokenizer> pretokenizer_;
};

// Streaming: feed ids one at a time, get the text that became complete (never half a UTF-8 char).
// Concatenating all push() results and flush() equals Tokenizer::decode of the whole sequence
// whenever special tokens don't split a character. ref: spec/inputs.md §2.3
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer,
                                SpecialTokenPolicy policy = SpecialTokenPolicy::kIgnore);
  // Unknown ids and (kRaise) special ids are skipped here; use decode() to get errors.
  std::string push(TokenId id);
  // Emits what is pending (an incomplete UTF-8 tail becomes U+FFFD) and resets.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  SpecialTokenPolicy policy_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
};

// A valid v3 tekken.json whose vocabulary is the 256 single bytes (ranks 0..255), with
// default_vocab_size = 256 + num_special_tokens, the real file's pattern and image {16, 1024}.
// Used by `pixtral make-tiny`.
std::string make_byte_level_tekken_json(int64_t num_special_tokens = 1000);

}  // namespace pixtral::tokenizer
