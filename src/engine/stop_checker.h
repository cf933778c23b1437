// StopChecker: decides when a sequence ends and which of its text a client may see.
// Fed one token at a time with the text that token added (StreamingDetokenizer::push), it ends the
// sequence on EOS (unless ignore_eos), a stop token id, max_tokens, or a stop string matched on the
// text -- also across token boundaries and inside one token's text. The text is cut before the stop
// string (after it with include_stop_str_in_output), and while the end of the text could still
// grow into a stop string it is held back, so a streaming client never sees part of a stop string.
// EOS, stop ids and stop strings count only once min_tokens tokens are out (vLLM).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler_params.h"

namespace pixtral::engine {

enum class FinishKind { kNone, kStop, kLength };
const char* finish_kind_name(FinishKind reason);  // "", "stop", "length" (the OpenAI strings)

struct StopConfig {
  int64_t max_tokens = 0;  // effective: max_tokens, or what the context leaves
  int64_t min_tokens = 0;
  int32_t eos_id = -1;     // -1: none
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;

  // From validated params; max_tokens from effective_max_tokens().
  static StopConfig from(const SamplingParams& params, int32_t eos_id, int64_t max_tokens);
};

struct StopStep {
  std::string text;  // newly released text (may be empty while text is held back)
  FinishKind finish = FinishKind::kNone;
  // vLLM's stop_reason: the stop string or stop token id that ended it; neither for EOS or length.
  std::optional<std::string> stop_string;
  std::optional<int32_t> stop_token;
  bool finished() const { return finish != FinishKind::kNone; }
};

class StopChecker {
 public:
  explicit StopChecker(StopConfig config);

  // Whether appending `token` next ends the sequence whatever its text (EOS, a stop id, the length
  // limit). The caller then appends the detokenizer's flush() to the token's text.
  bool ends_on(int32_t token) const;

  // One generated token and its text. The text of an EOS or stop-id token that ends the sequence is
  // dropped (kept with include_stop_str_in_output). Appending after the end is a bug.
  StopStep append(int32_t token, std::string_view text);

  bool finished() const { return finished_; }
  int64_t num_tokens() const { return num_tokens_; }
  // The text released so far (the whole answer once finished).
  std::string_view released_text() const { return std::string_view(text_).substr(0, released_); }

 private:
  // The stop string completed first by the text appended after `old_size`: {start, length}.
  std::optional<std::pair<size_t, size_t>> find_stop(size_t old_size) const;
  // Bytes at the end of the unreleased text that are a proper prefix of some stop string.
  size_t held_back() const;
  std::string release(size_t end);

  StopConfig config_;
  std::string text_;   // all the sequence's text so far (cut at the stop string when one matched)
  size_t released_ = 0;
  int64_t num_tokens_ = 0;
  bool finished_ = false;
};

}  // namespace pixtral::engine
