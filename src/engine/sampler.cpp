#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "backend/sample_math.h"

namespace pixtral::engine {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kInf = std::numeric_limits<float>::infinity();
static_assert(kGreedyTemperature == backend::kSampleGreedyTemperature, "one greedy threshold");

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

std::vector<std::pair<int32_t, std::pair<float, float>>> Sampler::penalty_entries() const {
  std::vector<std::pair<int32_t, std::pair<float, float>>> entries;
  const float r = params_.repetition_penalty;
  const bool additive = params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  // The output's ids with their (rep, sub), sorted, merged with the prompt's (repetition only).
  std::vector<std::pair<int32_t, int64_t>> output(output_counts_.begin(), output_counts_.end());
  std::sort(output.begin(), output.end());
  const auto for_output = [&](int64_t count) {
    const float sub =
        additive ? params_.frequency_penalty * static_cast<float>(count) + params_.presence_penalty : 0.0f;
    return std::pair<float, float>(r, sub);
  };
  if (r != 1.0f || additive) {
    auto prompt = prompt_ids_.begin();
    const auto prompt_end = r != 1.0f ? prompt_ids_.end() : prompt_ids_.begin();
    for (const auto& [id, count] : output) {
      for (; prompt != prompt_end && *prompt < id; ++prompt) entries.push_back({*prompt, {r, 0.0f}});
      if (prompt != prompt_end && *prompt == id) ++prompt;
      entries.push_back({id, for_output(count)});
    }
    for (; prompt != prompt_end; ++prompt) entries.push_back({*prompt, {r, 0.0f}});
  }
  if (generated_ < params_.min_tokens) {  // EOS and stop ids masked (vLLM masks EOS even with ignore_eos)
    const auto mask = [&entries](int32_t id) {
      if (id < 0) return;
      const auto it = std::lower_bound(entries.begin(), entries.end(), id,
                                       [](const auto& e, int32_t v) { return e.first < v; });
      if (it != entries.end() && it->first == id) {
        it->second.second = kInf;
      } else {
        entries.insert(it, {id, {1.0f, kInf}});
      }
    };
    mask(eos_id_);
    for (int32_t id : params_.stop_token_ids) mask(id);
  }
  return entries;
}

DeviceSampleRow Sampler::device_row() const {
  const int64_t top_k = std::min<int64_t>(params_.top_k, std::numeric_limits<int32_t>::max());
  return {.temperature = params_.temperature,
          .top_k = static_cast<int32_t>(top_k),
          .top_p = params_.top_p,
          .min_p = params_.min_p,
          .uniform = uniform_at(seed_, generated_),
          .penalties = penalty_entries()};
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
  const DeviceSampleRow row = device_row();
  std::vector<float>& x = ws.logits_;
  x.assign(logits.begin(), logits.end());
  for (const auto& [id, penalty] : row.penalties) {
    if (static_cast<size_t>(id) >= x.size()) continue;  // outside the vocabulary: ignored, as on the device
    float& v = x[static_cast<size_t>(id)];
    v = backend::sample_penalize(v, penalty.first, penalty.second);
  }
  out.token = ws.row_.sample(x, {.temperature = row.temperature,
                                 .top_k = row.top_k,
                                 .top_p = row.top_p,
                                 .min_p = row.min_p,
                                 .uniform = row.uniform});
  if (params_.logprobs) {
    if (logprobs_mode_ == LogprobsMode::kProcessed && ws.row_.drew()) {  // the sampled distribution
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = ws.row_.kept(static_cast<int64_t>(i)) ? x[i] / row.temperature : kNegInf;
    }
    fill_logprobs(logprobs_mode_ == LogprobsMode::kRaw ? logits : std::span<const float>(x), out, ws);
  }
  record(out.token);
  return out;
}

}  // namespace pixtral::engine
