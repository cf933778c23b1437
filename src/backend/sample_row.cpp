#include "backend/sample_row.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "backend/sample_math.h"

namespace pixtral::backend {
namespace {

using Candidate = std::pair<float, int32_t>;  // (p, id)

bool comes_before(const Candidate& a, const Candidate& b) {
  return sample_before(a.first, a.second, b.first, b.second);
}

// p[i] = sample_prob(x[i], ...). fma is correctly rounded whether it is an instruction or the C
// library's emulation, so both loops give the same bits; the fma-instruction one is faster.
void probs_loop(const float* x, int64_t n, float x_max, float inv_t, float* p) {
  for (int64_t i = 0; i < n; ++i) p[i] = sample_prob(x[i], x_max, inv_t);
}
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("fma"))) void probs_loop_fma(const float* x, int64_t n, float x_max, float inv_t,
                                                   float* p) {
  for (int64_t i = 0; i < n; ++i) p[i] = sample_prob(x[i], x_max, inv_t);
}
bool has_fma() {
  static const bool has = __builtin_cpu_supports("fma");
  return has;
}
#else
void probs_loop_fma(const float* x, int64_t n, float x_max, float inv_t, float* p) {
  probs_loop(x, n, x_max, inv_t, p);
}
bool has_fma() {
  return false;
}
#endif

// The candidate (most likely first) at which the cumulative weight first reaches cut, where
// 1 <= cut <= the candidates' total weight. Sorts lazily: the 64 most likely first, then 4x more
// while needed; comes_before is a strict total order, so this equals a full sort's answer.
Candidate top_p_threshold(std::vector<Candidate>& cands, uint64_t cut) {
  const size_t n = cands.size();
  size_t sorted = 0, next = std::min<size_t>(64, n);
  uint64_t weight = 0;
  while (sorted < n) {
    if (next < n) std::nth_element(cands.begin() + sorted, cands.begin() + next, cands.end(), comes_before);
    std::sort(cands.begin() + sorted, cands.begin() + next, comes_before);
    for (size_t i = sorted; i < next; ++i) {
      weight += sample_weight(cands[i].first);
      if (weight >= cut) return cands[i];
    }
    sorted = next;
    next = std::min(n, next * 4);
  }
  return cands.back();
}

}  // namespace

void sample_probs(const float* x, int64_t n, float x_max, float inv_temperature, float* p) {
  if (has_fma()) return probs_loop_fma(x, n, x_max, inv_temperature, p);
  probs_loop(x, n, x_max, inv_temperature, p);
}

bool RowSampler::kept(int64_t id) const {
  if (!drew_) return false;
  const float p = p_[static_cast<size_t>(id)];
  if (!(p >= lo_)) return false;
  return !top_p_ || p > p_star_ || (p == p_star_ && id <= id_star_);
}

int32_t RowSampler::sample(std::span<const float> x, const SampleRowParams& params) {
  drew_ = false;
  const auto vocab = static_cast<int64_t>(x.size());
  float x_max = -std::numeric_limits<float>::infinity();
  int64_t best = vocab;
  for (int64_t i = 0; i < vocab; ++i)
    if (sample_argmax_better(x[static_cast<size_t>(i)], i, x_max, best)) {
      x_max = x[static_cast<size_t>(i)];
      best = i;
    }
  const auto argmax_id = static_cast<int32_t>(best < vocab ? best : 0);
  if (params.temperature < kSampleGreedyTemperature) return argmax_id;

  p_.resize(static_cast<size_t>(vocab));
  sample_probs(x.data(), vocab, x_max, sample_div(1.0f, params.temperature), p_.data());
  float threshold = 0.0f;  // the k-th largest p
  if (params.top_k > 0 && params.top_k < vocab) {
    scratch_.assign(p_.begin(), p_.end());
    const auto kth = scratch_.begin() + (params.top_k - 1);
    std::nth_element(scratch_.begin(), kth, scratch_.end(), std::greater<float>());
    threshold = *kth;
  }
  lo_ = params.min_p > threshold ? params.min_p : threshold;
  top_p_ = params.top_p < 1.0f;
  if (top_p_) {
    cands_.clear();
    uint64_t total = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const float p = p_[static_cast<size_t>(i)];
      const uint64_t w = p >= lo_ ? sample_weight(p) : 0;
      if (w == 0) continue;
      cands_.emplace_back(p, static_cast<int32_t>(i));
      total += w;
    }
    if (total == 0) return argmax_id;
    const Candidate star = top_p_threshold(cands_, sample_top_p_cut(params.top_p, total));
    p_star_ = star.first;
    id_star_ = star.second;
  }
  drew_ = true;
  uint64_t total = 0;
  for (int64_t i = 0; i < vocab; ++i)
    if (kept(i)) total += sample_weight(p_[static_cast<size_t>(i)]);
  if (total == 0) {
    drew_ = false;
    return argmax_id;
  }
  const uint64_t target = sample_draw_target(params.uniform, total);
  uint64_t cumulative = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!kept(i)) continue;
    cumulative += sample_weight(p_[static_cast<size_t>(i)]);
    if (cumulative > target) return static_cast<int32_t>(i);
  }
  return argmax_id;  // unreachable: the cumulative weight reaches total > target
}

}  // namespace pixtral::backend
