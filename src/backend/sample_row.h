// The canonical sampling algorithm (ops.h SampleParams) on one host row of already penalised
// logits. The CPU backend's sample op and engine::Sampler both run this code; the CUDA kernel
// (backend/cuda/cuda_sample.cu) reproduces it bit for bit through the arithmetic of sample_math.h.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace pixtral::backend {

// One row's parameters (the per-row fields of SampleParams).
struct SampleRowParams {
  float temperature = 0.0f;  // < kSampleGreedyTemperature: greedy
  int64_t top_k = 0;         // <= 0 or >= vocab: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  double uniform = 0.0;      // the draw, in [0, 1)
};

// p[i] = sample_prob(x[i], x_max, inv_temperature) for i < n (with fma instructions where the
// processor has them: the same bits, faster).
void sample_probs(const float* x, int64_t n, float x_max, float inv_temperature, float* p);

// Samples rows one after another, reusing its vocab-sized buffers (one per thread). After a call
// it can tell which ids the filters kept (for processed logprobs). Not thread-safe.
class RowSampler {
 public:
  // One token id from the penalised logits x of one row.
  int32_t sample(std::span<const float> x, const SampleRowParams& params);
  // Whether the last call drew at random (false: greedy, or nothing had weight and the argmax
  // was taken).
  bool drew() const { return drew_; }
  // After a random draw: whether `id` survived min-p, top-k and top-p.
  bool kept(int64_t id) const;

 private:
  std::vector<float> p_;                          // [vocab] probability relative to the top token
  std::vector<float> scratch_;                    // [vocab] the top-k selection
  std::vector<std::pair<float, int32_t>> cands_;  // (p, id) of the top-p candidates
  bool drew_ = false;
  float lo_ = 0.0f;      // kept: p >= lo_ (min-p and top-k) ...
  bool top_p_ = false;   // ... and with top-p, (p, id) not after (p_star_, id_star_) in the
  float p_star_ = 0.0f;  //     order of sample_before
  int64_t id_star_ = 0;
};

}  // namespace pixtral::backend
