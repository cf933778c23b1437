// Log-probabilities over one row of logits: log-sum-exp, the n most likely tokens, the rank of a
// token. -inf logits (masked tokens) are allowed; accumulation is in double.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace pixtral::engine {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
  bool operator==(const TokenLogprob&) const = default;
};

// Which distribution the returned logprobs describe (vLLM's --logprobs-mode, both *_logprobs modes):
// kRaw: log_softmax of the model's logits before any processing (vLLM's default);
// kProcessed: of the distribution actually sampled from, after penalties, temperature and the
// top-k/top-p/min-p filters (filtered tokens get -inf).
enum class LogprobsMode { kRaw, kProcessed };

// log(sum(exp(logits))); -inf when every entry is -inf.
double log_sum_exp(std::span<const float> logits);

// The n most likely ids with logit - lse, most likely first, lower id first on ties.
// scratch: reused storage (may be null).
std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, double lse, int64_t n,
                                       std::vector<std::pair<float, int32_t>>* scratch = nullptr);

// 1 + the number of ids with a strictly larger logit (vLLM's rank of the sampled token).
int64_t logprob_rank(std::span<const float> logits, int32_t id);

}  // namespace pixtral::engine
