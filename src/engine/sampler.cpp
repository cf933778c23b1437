#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace pixtral::engine {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// splitmix64's finaliser: a bijection on 64 bits with full avalanche.
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

// Most likely first; lower id first among equal logits: a strict total order, so partial
// selections are exact prefixes of the full sort.
bool more_likely(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Keeps the smallest most-likely prefix of `cands` (probability, id) whose mass reaches top_p (a
// token stays when the mass before it is < top_p). Sorts lazily: the 64 most likely candidates
// first, then 4x more while needed.
void apply_top_p(std::vector<std::pair<float, int32_t>>& cands, float top_p) {
  double total = 0;
  for (const auto& c : cands) total += c.first;
  const double target = top_p * total;
  const size_t n = cands.size();
  size_t sorted = 0, next = std::min<size_t>(64, n);
  double mass = 0;
  while (sorted < n) {
    if (next < n) std::nth_element(cands.begin() + sorted, cands.begin() + next, cands.end(), more_likely);
    std::sort(cands.begin() + sorted, cands.begin() + next, more_likely);
    for (size_t i = sorted; i < next; ++i) {
      if (mass >= target) {
        cands.resize(i);
        return;
      }
      mass += cands[i].first;
    }
    sorted = next;
    next = std::min(n, next * 4);
  }
}

// Keeps the candidates whose probability is >= the k-th largest (ties at the threshold stay).
void apply_top_k(std::vector<std::pair<float, int32_t>>& cands, int64_t top_k) {
  if (top_k <= 0 || static_cast<size_t>(top_k) >= cands.size()) return;
  const auto kth = cands.begin() + (top_k - 1);
  std::nth_element(cands.begin(), kth, cands.end(), more_likely);
  const float threshold = kth->first;
  std::erase_if(cands, [threshold](const auto& c) { return c.first < threshold; });
}

}  // namespace

int32_t argmax(const float* logits, int64_t vocab) {
  int32_t best = 0;
  float best_value = logits[0];
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > best_value) {
      best_value = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

double uniform_at(uint64_t seed, int64_t step) {
  const uint64_t h = mix64(mix64(seed) ^ static_cast<uint64_t>(step));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

Sampler::Sampler(SamplingParams params, SamplerContext context)
    : params_(std::move(params)),
      seed_(params_.seed ? *params_.seed : random_seed()),
      eos_id_(context.eos_id),
      logprobs_mode_(context.logprobs_mode),
      prompt_ids_(context.prompt.begin(), context.prompt.end()) {
  std::sort(prompt_ids_.begin(), prompt_ids_.end());
  prompt_ids_.erase(std::unique(prompt_ids_.begin(), prompt_ids_.end()), prompt_ids_.end());
}

void Sampler::mask_stop_tokens(std::vector<float>& logits) const {
  if (generated_ >= params_.min_tokens) return;
  const auto mask = [&logits](int32_t id) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[static_cast<size_t>(id)] = kNegInf;
  };
  mask(eos_id_);
  for (int32_t id : params_.stop_token_ids) mask(id);
}

void Sampler::apply_penalties(std::vector<float>& logits) const {
  const auto vocab = static_cast<int64_t>(logits.size());
  const float r = params_.repetition_penalty;
  if (r != 1.0f) {
    const auto penalize = [&logits, r, vocab](int32_t id) {
      if (id < 0 || id >= vocab) return;
      float& v = logits[static_cast<size_t>(id)];
      v = v > 0.0f ? v / r : v * r;
    };
    for (int32_t id : prompt_ids_) penalize(id);
    for (const auto& [id, count] : output_counts_)
      if (!std::binary_search(prompt_ids_.begin(), prompt_ids_.end(), id)) penalize(id);
  }
  if (params_.frequency_penalty == 0.0f && params_.presence_penalty == 0.0f) return;
  for (const auto& [id, count] : output_counts_) {
    if (id < 0 || id >= vocab) continue;
    float& v = logits[static_cast<size_t>(id)];
    v -= params_.frequency_penalty * static_cast<float>(count);
    v -= params_.presence_penalty;
  }
}

int32_t Sampler::sample_random(SamplerWorkspace& ws) const {
  std::vector<float>& x = ws.logits_;
  float max_logit = kNegInf;
  for (float& v : x) {
    v /= params_.temperature;
    max_logit = std::max(max_logit, v);
  }
  if (max_logit == kNegInf) return 0;  // every token masked: nothing to draw from
  // Unnormalised probabilities, the top token's = 1; min-p keeps p >= min_p * 1.
  auto& cands = ws.pairs_;
  cands.clear();
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == kNegInf) continue;
    const float p = std::exp(x[i] - max_logit);
    if (p >= params_.min_p) cands.emplace_back(p, static_cast<int32_t>(i));
  }
  apply_top_k(cands, params_.top_k);
  if (params_.top_p < 1.0f) apply_top_p(cands, params_.top_p);

  double total = 0;
  for (const auto& c : cands) total += c.first;
  const double target = uniform_at(seed_, generated_) * total;
  int32_t chosen = cands.back().second;
  double acc = 0;
  for (const auto& c : cands) {
    acc += c.first;
    if (target < acc) {
      chosen = c.second;
      break;
    }
  }
  if (params_.logprobs && logprobs_mode_ == LogprobsMode::kProcessed) {  // the sampled distribution
    for (auto& c : cands) c.first = x[static_cast<size_t>(c.second)];
    std::fill(x.begin(), x.end(), kNegInf);
    for (const auto& c : cands) x[static_cast<size_t>(c.second)] = c.first;
  }
  return chosen;
}

void Sampler::fill_logprobs(std::span<const float> logits, SampleResult& out, SamplerWorkspace& ws) const {
  const double lse = log_sum_exp(logits);
  out.logprob = static_cast<float>(static_cast<double>(logits[static_cast<size_t>(out.token)]) - lse);
  out.rank = logprob_rank(logits, out.token);
  out.top_logprobs = top_logprobs(logits, lse, params_.top_logprobs, &ws.pairs_);
}

void Sampler::record(int32_t token) {
  ++output_counts_[token];
  ++generated_;
}

SampleResult Sampler::sample(std::span<const float> logits, SamplerWorkspace& ws) {
  SampleResult out;
  ws.logits_.assign(logits.begin(), logits.end());
  mask_stop_tokens(ws.logits_);
  apply_penalties(ws.logits_);
  if (greedy())
    out.token = argmax(ws.logits_.data(), static_cast<int64_t>(ws.logits_.size()));
  else
    out.token = sample_random(ws);
  if (params_.logprobs)
    fill_logprobs(logprobs_mode_ == LogprobsMode::kRaw ? logits : std::span<const float>(ws.logits_), out, ws);
  record(out.token);
  return out;
}

}  // namespace pixtral::engine
