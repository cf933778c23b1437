// The scalar arithmetic of the canonical sampling algorithm (ops.h SampleParams), compiled
// identically for the host (engine::Sampler, the CPU backend's sample op) and the CUDA kernel, so
// that both produce the same bits and therefore pick the same token ids.
//
// Determinism rules followed by every function here:
//  - every multiply that feeds an add is an explicit fma (correctly rounded on both sides: std::fma
//    on the host, fmaf on the device); other multiplies, divisions and subtractions are single
//    IEEE operations (device: the __f*_rn intrinsics, which nvcc never contracts into an FMA);
//  - no library transcendental: sample_exp is our own range reduction + polynomial;
//  - sums of probabilities are fixed-point uint64 weights (sample_weight), exact and therefore
//    independent of the summation order (parallel reductions, atomics).
// This header is C++17 (nvcc) and has no CUDA includes of its own.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define PX_SAMPLE_FN __host__ __device__ __forceinline__
#else
#define PX_SAMPLE_FN inline
#endif

namespace pixtral::backend {

// Temperatures below this are greedy (vLLM's _SAMPLING_EPS; engine::kGreedyTemperature).
inline constexpr float kSampleGreedyTemperature = 1e-5f;
// sample_exp(x) is 0 below this (exp(-87) ≈ 1.6e-38 is still a normal float; no subnormals).
inline constexpr float kSampleExpCutoff = -87.0f;
// Fixed-point scale of the weights: w = trunc(p · 2^40), p in [0, 1]; a row of 2^17 tokens sums
// to at most 2^57.
inline constexpr float kSampleWeightScale = 0x1p40f;

PX_SAMPLE_FN float sample_fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

PX_SAMPLE_FN float sample_sub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

PX_SAMPLE_FN float sample_div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// a · b rounded on its own even where the result then feeds a subtraction: on the host an empty
// asm statement hides the product from the optimiser, so no -ffp-contract setting can fuse it.
PX_SAMPLE_FN float sample_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  float r = a * b;
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(r));
#elif defined(__aarch64__)
  asm("" : "+w"(r));
#endif
  return r;
#endif
}

PX_SAMPLE_FN uint32_t sample_float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

PX_SAMPLE_FN float sample_bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// exp(x) for x <= 0 (NaN and x < kSampleExpCutoff: 0), within ~1 ulp, and sample_exp(0) == 1
// exactly. x = k·ln2 + r with k = round-to-nearest-even(x·log2e) (one fma against 1.5·2^23),
// r by two fmas against ln2 split in a high and a low part, exp(r) by its degree-7 Taylor
// polynomial in Horner form (|r| <= 0.347: truncation < 0.1 ulp), times 2^k built from bits
// (k >= -126: normal, the product is exact).
PX_SAMPLE_FN float sample_exp(float x) {
  if (!(x >= kSampleExpCutoff)) return 0.0f;
  constexpr float kLog2e = 0x1.715476p+0f;  // log2(e)
  constexpr float kLn2Hi = 0x1.62e4p-1f;  // ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 15 bits, so k·kLn2Hi is exact
  constexpr float kLn2Lo = 0x1.7f7d1cp-20f;
  constexpr float kRound = 0x1.8p23f;
  const float k = sample_sub(sample_fma(x, kLog2e, kRound), kRound);
  float r = sample_fma(k, -kLn2Hi, x);
  r = sample_fma(k, -kLn2Lo, r);
  float q = 0x1.a01a02p-13f;              // 1/7!
  q = sample_fma(q, r, 0x1.6c16c2p-10f);  // 1/6!
  q = sample_fma(q, r, 0x1.111112p-7f);   // 1/5!
  q = sample_fma(q, r, 0x1.555556p-5f);   // 1/4!
  q = sample_fma(q, r, 0x1.555556p-3f);   // 1/3!
  q = sample_fma(q, r, 0.5f);
  q = sample_fma(q, r, 1.0f);
  q = sample_fma(q, r, 1.0f);
  const float scale = sample_bits_float(static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23);
  return sample_mul(q, scale);
}

// The sampling weight of a probability p in [0, 1]: trunc(p · 2^40) (the product is exact).
PX_SAMPLE_FN uint64_t sample_weight(float p) {
#ifdef __CUDA_ARCH__
  return __float2ull_rz(__fmul_rn(p, kSampleWeightScale));
#else
  return static_cast<uint64_t>(p * kSampleWeightScale);
#endif
}

// One penalty entry applied to a logit (ops.h): (x > 0 ? x / rep : x · rep) - sub.
PX_SAMPLE_FN float sample_penalize(float x, float rep, float sub) {
  return sample_sub(x > 0.0f ? sample_div(x, rep) : sample_mul(x, rep), sub);
}

// The scaled, max-shifted logit of the random path: (x - x_max) · (1 / T), <= 0.
PX_SAMPLE_FN float sample_shifted(float x, float x_max, float inv_temperature) {
  return sample_mul(sample_sub(x, x_max), inv_temperature);
}

// Probability relative to the most likely token (which gets exactly 1).
PX_SAMPLE_FN float sample_prob(float x, float x_max, float inv_temperature) {
  return sample_exp(sample_shifted(x, x_max, inv_temperature));
}

PX_SAMPLE_FN double sample_u64_to_double(uint64_t v) {
#ifdef __CUDA_ARCH__
  return __ull2double_rn(v);
#else
  return static_cast<double>(v);
#endif
}

PX_SAMPLE_FN double sample_dmul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// trunc(f · total) for f in [0, 1), computed in double and clamped to [0, total - 1]; total >= 1.
PX_SAMPLE_FN uint64_t sample_scaled_index(double f, uint64_t total) {
  const double total_d = sample_u64_to_double(total);
  const double x = sample_dmul(f, total_d);
  if (!(x > 0.0)) return 0;
  if (!(x < total_d)) return total - 1;
  const auto t = static_cast<uint64_t>(x);
  return t < total ? t : total - 1;
}

// The top-p cut over a kept weight `total` >= 1: the tokens (most likely first) whose preceding
// weight is below max(1, trunc(top_p · total)) stay, so the most likely token always does.
PX_SAMPLE_FN uint64_t sample_top_p_cut(float top_p, uint64_t total) {
  const uint64_t cut = sample_scaled_index(static_cast<double>(top_p), total);
  return cut < 1 ? 1 : cut;
}

// The draw's target in [0, total): the first kept id (in id order) whose cumulative weight
// exceeds it is the sample.
PX_SAMPLE_FN uint64_t sample_draw_target(double uniform, uint64_t total) {
  return sample_scaled_index(uniform, total);
}

// The top-p order: more likely first, the lower id first among equal probabilities.
PX_SAMPLE_FN bool sample_before(float p_a, int32_t id_a, float p_b, int32_t id_b) {
  return p_a > p_b || (p_a == p_b && id_a < id_b);
}

// Greedy's order: a larger logit, or an equal one at a lower id, wins (NaN never wins).
PX_SAMPLE_FN bool sample_argmax_better(float x, int64_t id, float best, int64_t best_id) {
  return x > best || (x == best && id < best_id);
}

}  // namespace pixtral::backend
