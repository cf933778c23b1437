// SamplingParams: what one request asks of the sampler and of the stop checker, with the validation
// rules and messages of vLLM's SamplingParams / OpenAI's chat completions (each message names the
// field). The order in which the sampler applies them is in docs/sampling.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pixtral/status.h"

namespace pixtral::engine {

// OpenAI's range for top_logprobs (vLLM's default --max-logprobs is the same).
inline constexpr int64_t kMaxTopLogprobs = 20;
// Temperatures below this are greedy (vLLM's _SAMPLING_EPS).
inline constexpr float kGreedyTemperature = 1e-5f;
// Samples (choices) of one request at most. vLLM sets no limit and OpenAI allows 128; 16 keeps one
// request from taking the whole batch (each sample is a running sequence) and is above what
// clients ask for in practice.
inline constexpr int64_t kMaxN = 16;

struct SamplingParams {
  // ---- the distribution ----
  float temperature = 0.0f;  // < kGreedyTemperature: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // nucleus mass, (0, 1]; 1: off
  int64_t top_k = 0;         // 0 or -1: off
  float min_p = 0.0f;        // [0, 1]: drop tokens below min_p * (probability of the top token)
  float repetition_penalty = 1.0f;  // > 0; on tokens of prompt + output (HF/vLLM: logit>0 divided)
  float presence_penalty = 0.0f;    // [-2, 2]; OpenAI: minus once per token present in the output
  float frequency_penalty = 0.0f;   // [-2, 2]; OpenAI: minus count(token in output) times this
  std::optional<uint64_t> seed;     // none: a fresh random seed per sequence
  // ---- when to stop ----
  std::optional<int64_t> max_tokens;  // none: up to the context (effective_max_tokens)
  int64_t min_tokens = 0;             // EOS and stop_token_ids masked (and stops ignored) before this
  bool ignore_eos = false;            // EOS is then an ordinary token
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;      // stop strings, matched on the detokenized text
  bool include_stop_str_in_output = false;
  // ---- what is returned ----
  bool logprobs = false;     // logprob of each chosen token
  int64_t top_logprobs = 0;  // 0..kMaxTopLogprobs most likely tokens per position (needs logprobs)
  int64_t n = 1;             // 1..kMaxN independent samples of one prompt (child_params: each one's seed)
};

// Checks every field; the first violation comes back as invalid_argument with a message naming the
// field and the value ("top_p must be in (0, 1], got 1.5"). vocab_size > 0 also bounds the ids in
// stop_token_ids.
Status validate(const SamplingParams& params, int64_t vocab_size = 0);

// The parameters of sample `index` (0..n-1) of a request with n > 1: n = 1 and, when the request has
// a seed, seed + index (vLLM's parallel sampling); without a seed each sample draws its own.
SamplingParams child_params(const SamplingParams& params, int64_t index);

// max_tokens, or what the context leaves after the prompt when it is absent. A prompt that leaves no
// room, or prompt + max_tokens over the context, is refused with vLLM's wording.
Result<int64_t> effective_max_tokens(const SamplingParams& params, int64_t prompt_tokens,
                                     int64_t context_tokens);

}  // namespace pixtral::engine
