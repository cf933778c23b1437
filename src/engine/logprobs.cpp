#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pixtral::engine {

double log_sum_exp(std::span<const float> logits) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float v : logits) max_logit = std::max(max_logit, v);
  if (max_logit == -std::numeric_limits<float>::infinity()) return max_logit;
  double total = 0;
  for (float v : logits) total += std::exp(static_cast<double>(v) - max_logit);
  return max_logit + std::log(total);
}

std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, double lse, int64_t n,
                                       std::vector<std::pair<float, int32_t>>* scratch) {
  std::vector<std::pair<float, int32_t>> local;
  auto& pairs = scratch ? *scratch : local;
  const auto count = static_cast<size_t>(std::clamp<int64_t>(n, 0, static_cast<int64_t>(logits.size())));
  if (count == 0) return {};
  pairs.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) pairs[i] = {logits[i], static_cast<int32_t>(i)};
  const auto more_likely = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::partial_sort(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(count), pairs.end(), more_likely);
  std::vector<TokenLogprob> out(count);
  for (size_t i = 0; i < count; ++i)
    out[i] = {pairs[i].second, static_cast<float>(static_cast<double>(pairs[i].first) - lse)};
  return out;
}

int64_t logprob_rank(std::span<const float> logits, int32_t id) {
  const float value = logits[static_cast<size_t>(id)];
  int64_t larger = 0;
  for (float v : logits) larger += v > value ? 1 : 0;
  return larger + 1;
}

}  // namespace pixtral::engine
