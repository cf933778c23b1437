// cuda_bench's op-level figures: the attention kernels alone (many rows: vision varlen and
// causal prefill; decode), small-M GEMV bandwidth and its streaming variants, the sample op.
#pragma once

#include <initializer_list>
#include <cstdint>

#include "backend/backend.h"

namespace pixtral::bench::ops {

// The many-rows attention kernels side by side (mma32 with 4/8 warps, flash2), one layer each.
void bench_attention_kernels();
// Decode attention on backend b (its PIXTRAL_CUDA_DECODE_ATTN kernel, named `kernel`).
void bench_decode_attention(backend::Backend& b, const char* kernel);
// Small-M matmul bandwidth of the decoder's matrices for each M in ms, printed as `path`.
void bench_small_m(backend::Backend& b, const char* path, std::initializer_list<int64_t> ms);
// norm_matmul with SwiGLU over the [gate; up] weight for each M in ms, printed as `path`.
void bench_norm_swiglu(backend::Backend& b, const char* path, std::initializer_list<int64_t> ms);
// The GEMV streaming variants at M = 1, each on a backend with its PIXTRAL_CUDA_GEMV_* settings.
void bench_gemv_variants();
// The sample op on random logits of the vocabulary's width.
void bench_sample(backend::Backend& b);

}  // namespace pixtral::bench::ops
