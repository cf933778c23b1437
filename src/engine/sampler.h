// Token sampling from one row of logits: greedy at temperature 0, else temperature, top-k, top-p
// with a per-request seeded generator (same seed and logits -> same token).
// First cut for the CLI; the serving engine's full sampler (penalties, min-p, logprobs, on-device)
// extends this.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace pixtral::engine {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // nucleus mass, (0, 1]
  int64_t top_k = 0;         // 0: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params) : params_(params), rng_(params.seed) {}
  int32_t sample(const float* logits, int64_t vocab);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // scratch: (probability, id)
};

int32_t argmax(const float* logits, int64_t vocab);

}  // namespace pixtral::engine
