// Token sampling per request: min_tokens masking, repetition / frequency / presence penalties, then
// greedy, or temperature -> min-p -> top-k -> top-p -> a draw, in vLLM's order (docs/sampling.md).
// Each Sampler owns its request's state (output token counts, seed and step), so a request's tokens
// never depend on what else is sampled in the same batch. The draw is the canonical algorithm of
// backend::SampleParams: sample() runs it on the host; device_row() + Backend::sample + accept()
// run it on a backend and pick the same tokens bit for bit.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/sample_row.h"
#include "engine/logprobs.h"
#include "engine/sampler_params.h"

namespace pixtral::engine {

struct SampleResult {
  int32_t token = 0;
  // Filled when params.logprobs (in the Sampler's LogprobsMode):
  float logprob = 0.0f;                    // of the chosen token
  int64_t rank = 0;                        // 1 + the ids more likely than it
  std::vector<TokenLogprob> top_logprobs;  // params.top_logprobs entries, most likely first
};

// Scratch storage of one sampling call (vocab-sized). One per thread that samples, shared by the
// requests it serves; it carries nothing from one call to the next.
class SamplerWorkspace {
 private:
  friend class Sampler;
  std::vector<float> logits_;                     // the processed row
  std::vector<std::pair<float, int32_t>> pairs_;  // top_logprobs scratch
  backend::RowSampler row_;                       // the canonical draw's buffers
};

// The inputs of one request's next draw, as Backend::sample takes them (one row of SampleParams).
// A default row is greedy without penalties.
struct DeviceSampleRow {
  float temperature = 0.0f;  // < kGreedyTemperature: greedy
  int32_t top_k = 0;         // <= 0: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  double uniform = 0.0;  // uniform_at(seed, step)
  // (token, (rep, sub)), ascending distinct tokens: x = (x > 0 ? x / rep : x * rep) - sub.
  std::vector<std::pair<int32_t, std::pair<float, float>>> penalties;
};

struct SamplerContext {
  std::span<const int32_t> prompt;  // for the repetition penalty (copied at construction)
  int32_t eos_id = -1;              // masked while fewer than min_tokens are out; -1: none
  LogprobsMode logprobs_mode = LogprobsMode::kRaw;
};

class Sampler {
 public:
  // params must have passed validate(). Without params.seed a random seed is drawn here.
  explicit Sampler(SamplingParams params, SamplerContext context = {});

  // Picks the next token of this request and records it (penalties, min_tokens, the draw counter).
  SampleResult sample(std::span<const float> logits, SamplerWorkspace& workspace);
  SampleResult sample(std::span<const float> logits) { return sample(logits, own_workspace_); }
  int32_t sample(const float* logits, int64_t vocab) {
    return sample(std::span<const float>(logits, static_cast<size_t>(vocab))).token;
  }

  // The inputs of this request's next draw for Backend::sample. penalties: one entry per token of
  // prompt ∪ output (repetition: rep; frequency and presence: sub = frequency · count + presence)
  // and, while fewer than min_tokens are out, EOS and the stop ids with sub = +inf.
  DeviceSampleRow device_row() const;
  // Records a token that Backend::sample picked for device_row() (what sample() records after its
  // own pick: penalty counts, min_tokens, the draw counter).
  void accept(int32_t token) { record(token); }

  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }
  int64_t num_generated() const { return generated_; }

 private:
  // The penalty entries of device_row().
  std::vector<std::pair<int32_t, std::pair<float, float>>> penalty_entries() const;
  void fill_logprobs(std::span<const float> logits, SampleResult& out, SamplerWorkspace& workspace) const;
  void record(int32_t token);

  SamplingParams params_;
  uint64_t seed_ = 0;
  int32_t eos_id_ = -1;
  LogprobsMode logprobs_mode_ = LogprobsMode::kRaw;
  std::vector<int32_t> prompt_ids_;                    // sorted, unique
  std::unordered_map<int32_t, int64_t> output_counts_;  // id -> times generated
  int64_t generated_ = 0;
  SamplerWorkspace own_workspace_;
};

// Index of the largest logit, the lowest id on ties.
int32_t argmax(const float* logits, int64_t vocab);

// The uniform draw in [0, 1) of a request's step-th sample: a counter-based hash of (seed, step), so
// the device sampler can reproduce it without carrying generator state.
double uniform_at(uint64_t seed, int64_t step);

}  // namespace pixtral::engine
