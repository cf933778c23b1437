// cuda_bench's op-level figures (op_bench.h), each beside its H100 ceiling.
#include "op_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "bench_common.h"

namespace pixtral::bench::ops {
namespace {

using pixtral::backend::Backend;

// The attention ops alone, one layer, for the many-rows kernel `name` (the backend's
// PIXTRAL_CUDA_ATTN / _WARPS choice): vision varlen (4096 tokens, 16 heads, hd 64) and causal
// paged prefill of 4160 tokens (32/8 heads, hd 128; T²/2 pairs counted), each with TFLOP/s and
// the share of the 789 TFLOP/s bf16 ceiling.
void bench_attention_rows(Backend& b, const char* name) {
  using pixtral::base::DType;
  auto i32 = [&](const std::vector<int32_t>& host) {
    auto t = b.alloc(DType::kI32, {static_cast<int64_t>(host.size())});
    b.upload(host.data(), DType::kI32, t);
    return t;
  };
  // The vision layer (16 heads of 64), and the same tokens as 32 heads of 128 (not a model shape:
  // it separates head_dim 128's compute from the paged causal case's addressing and masks).
  for (const auto [h, hd, layers] : {std::array<int64_t, 3>{16, 64, 24}, std::array<int64_t, 3>{32, 128, 0}}) {
    const int64_t n = 4096;
    auto q = b.alloc(DType::kBF16, {n, h, hd}), k = b.alloc(DType::kBF16, {n, h, hd});
    auto v = b.alloc(DType::kBF16, {n, h, hd}), o = b.alloc(DType::kBF16, {n, h, hd});
    for (auto* t : {&q, &k, &v}) b.fill_random(*t, 7, 0.0f, 1.0f);
    auto cu = i32({0, static_cast<int32_t>(n)});
    const double s = median_seconds(b, 3, 20, [&] {
      b.varlen_attention({.q = q, .k = k, .v = v, .cu_seqlens = cu, .out = o, .scale = 0.125f, .num_segments = 1,
                          .max_seqlen = n});
    });
    const double flops = 4.0 * n * n * h * hd;
    std::printf("attention %-9s varlen 4096 tok, %lld heads, hd %lld: %7.1f us, %4.0f TFLOP/s (%2.0f%% of 789",
                name, static_cast<long long>(h), static_cast<long long>(hd), s * 1e6, flops / s / 1e12,
                100.0 * flops / s / kBf16Flops);
    if (layers > 0) std::printf("; x%lld layers: %.2f ms", static_cast<long long>(layers), layers * s * 1e3);
    std::printf(")\n");
  }
  // The paged causal cases share one cache of 280 blocks (4,480 tokens): a 4,160-token prefill
  // from an empty context, and a 362-token chunk after 4,098 tokens of context (an image prompt's
  // chunk beside 22 decodes at the image load's 384-token budget).
  const int64_t h = 32, hkv = 8, hd = 128, bs = 16, blocks = 280;
  auto kc = b.alloc(DType::kBF16, {blocks, bs, hkv, hd}), vc = b.alloc(DType::kBF16, {blocks, bs, hkv, hd});
  b.fill_random(kc, 8, 0.0f, 1.0f);
  b.fill_random(vc, 9, 0.0f, 1.0f);
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  std::iota(table.begin(), table.end(), 0);
  auto bt = b.alloc(DType::kI32, {1, blocks});
  b.upload(table.data(), DType::kI32, bt);
  struct Case {
    int64_t rows, kv, layers;
    const char* what;
  };
  for (const Case c : {Case{4160, 4160, 40, "paged prefill 4160 tok"}, Case{362, 4460, 40, "chunk 362 after 4098"}}) {
    auto q = b.alloc(DType::kBF16, {c.rows, h, hd}), o = b.alloc(DType::kBF16, {c.rows, h, hd});
    b.fill_random(q, 10, 0.0f, 1.0f);
    auto qs = i32({0, static_cast<int32_t>(c.rows)}), kl = i32({static_cast<int32_t>(c.kv)});
    const double s = median_seconds(b, 3, 20, [&] {
      b.paged_attention({.q = q, .k_cache = kc, .v_cache = vc, .q_start = qs, .kv_len = kl, .block_tables = bt,
                         .out = o, .scale = 0.088f, .num_seqs = 1, .max_kv_len = c.kv, .max_q_len = c.rows});
    });
    // Causal: query row r sees kv − rows + r + 1 keys.
    const double flops = 4.0 * static_cast<double>(c.rows) * (static_cast<double>(c.kv - c.rows) + (c.rows + 1) / 2.0) *
                         static_cast<double>(h * hd);
    std::printf("attention %-9s %s, 32/8 heads, hd 128: %7.1f us, %4.0f TFLOP/s "
                "(%2.0f%% of 789; x%lld layers: %.2f ms)\n",
                name, c.what, s * 1e6, flops / s / 1e12, 100.0 * flops / s / kBf16Flops,
                static_cast<long long>(c.layers), static_cast<double>(c.layers) * s * 1e3);
  }
}

}  // namespace

// Decode attention alone, one layer, on the backend's decode path (`kernel` names its
// PIXTRAL_CUDA_DECODE_ATTN setting): 40 back-to-back calls recorded as one CUDA graph (as in a
// decode step: no host launch cost in the figure), batch 1 at 512 / 4096 / 32768 keys with the
// launch sized for 32768 (a graph captured at the cache capacity), and 64 sequences of 640 keys
// with the launch sized for 640 and for 32768. Rate: the K+V bytes read against 3.03 TB/s.
void bench_decode_attention(Backend& b, const char* kernel) {
  using pixtral::base::DType;
  const int64_t h = 32, hkv = 8, hd = 128, bs = 16, cap = 32768, tokens = 64 * 640;
  auto kc = b.alloc(DType::kBF16, {tokens / bs, bs, hkv, hd}), vc = b.alloc(DType::kBF16, {tokens / bs, bs, hkv, hd});
  b.fill_random(kc, 8, 0.0f, 1.0f);
  b.fill_random(vc, 9, 0.0f, 1.0f);
  struct Case {
    int64_t seqs, context, bound;
  };
  for (const Case c : {Case{1, 512, cap}, Case{1, 4096, cap}, Case{1, 32768, cap}, Case{64, 640, 640},
                       Case{64, 640, cap}}) {
    const int64_t max_blocks = c.bound / bs, per_seq = (c.context + bs - 1) / bs, blocks = tokens / bs;
    std::vector<int32_t> q_start{0}, kv_len;
    for (int64_t s = 0; s < c.seqs; ++s) {
      q_start.push_back(static_cast<int32_t>(s + 1));
      kv_len.push_back(static_cast<int32_t>(c.context));
    }
    // Each layer reads other blocks (as far as the cache allows), so short contexts are not
    // served from L2 by the previous layer.
    std::vector<pixtral::backend::TensorBuffer> tables;
    for (int64_t layer = 0; layer < 40; ++layer) {
      std::vector<int32_t> table(static_cast<size_t>(c.seqs * max_blocks), 0);
      for (int64_t s = 0; s < c.seqs; ++s)
        for (int64_t j = 0; j < per_seq; ++j)
          table[s * max_blocks + j] = static_cast<int32_t>(((layer * c.seqs + s) * per_seq + j) % blocks);
      tables.push_back(b.alloc(DType::kI32, {c.seqs, max_blocks}));
      b.upload(table.data(), DType::kI32, tables.back());
    }
    auto qs = b.alloc(DType::kI32, {c.seqs + 1}), kl = b.alloc(DType::kI32, {c.seqs});
    b.upload(q_start.data(), DType::kI32, qs);
    b.upload(kv_len.data(), DType::kI32, kl);
    auto q = b.alloc(DType::kBF16, {c.seqs, h, hd}), o = b.alloc(DType::kBF16, {c.seqs, h, hd});
    b.fill_random(q, 11, 0.0f, 1.0f);
    auto call = [&](int64_t layer) {
      b.paged_attention({.q = q, .k_cache = kc, .v_cache = vc, .q_start = qs, .kv_len = kl,
                         .block_tables = tables[static_cast<size_t>(layer)], .out = o, .scale = 0.088f,
                         .num_seqs = c.seqs, .max_kv_len = c.bound, .max_q_len = 1});
    };
    call(0);  // warm-up outside the capture (kernel attributes, workspace)
    b.synchronize();
    b.begin_capture();
    for (int64_t layer = 0; layer < 40; ++layer) call(layer);
    const auto graph = b.end_capture();
    const double s = median_seconds(b, 2, 15, [&] { graph->replay(); }) / 40;
    const double bytes = 2.0 * static_cast<double>(c.seqs * c.context * hkv * hd) * 2;
    std::printf("attention decode [%s] batch %2lld ctx %5lld (launch for %5lld), 32/8 heads, hd 128: %6.1f us, "
                "%5.0f GB/s (%3.0f%% of 3.03 TB/s; x40: %.2f ms)\n",
                kernel, static_cast<long long>(c.seqs), static_cast<long long>(c.context),
                static_cast<long long>(c.bound), s * 1e6, bytes / s / 1e9, 100.0 * bytes / s / kBandwidth,
                40 * s * 1e3);
  }
}

// Small-M matmul bandwidth: weights [n, k] streamed once per call. 20 calls back to back per timed
// repetition (no host gap between kernels, as in a graph), rotating over enough weight copies
// (>= 128 MB) that no call finds its matrix in the 50 MB L2.
void bench_small_m(Backend& b, const char* path, std::initializer_list<int64_t> ms) {
  using pixtral::base::DType;
  for (int64_t m : ms)
    for (auto [n, k] : {std::pair<int64_t, int64_t>{6144, 5120}, {4096, 5120}, {1024, 5120}, {5120, 4096},
                        {28672, 5120}, {5120, 14336}, {131072, 5120}}) {
      const double bytes = static_cast<double>(n * k * 2);
      const int copies = static_cast<int>(std::max(1.0, std::ceil(128e6 / bytes)));
      std::vector<pixtral::backend::TensorBuffer> ws;
      for (int i = 0; i < copies; ++i) {
        ws.push_back(b.alloc(DType::kBF16, {n, k}));
        b.fill_random(ws.back(), 1 + i, 0.0f, 0.02f);
      }
      auto x = b.alloc(DType::kBF16, {m, k});
      auto y = b.alloc(DType::kBF16, {m, n});
      b.fill_random(x, 2, 0.0f, 1.0f);
      constexpr int kCalls = 20;
      const double s = median_seconds(b, 2, 10, [&] {
        for (int i = 0; i < kCalls; ++i) b.matmul({.x = x, .w = ws[i % copies], .y = y});
      }) / kCalls;
      std::printf("matmul %-9s M=%lld N=%6lld K=%5lld: %7.1f us, %5.0f GB/s (%.0f%% of 3.03 TB/s)\n", path,
                  static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), s * 1e6,
                  bytes / s / 1e9, 100.0 * bytes / s / kBandwidth);
    }
}

// The FFN's first half as one op: norm_matmul with SwiGLU over the fused [gate; up] weight
// [28672, 5120] (RMSNorm, the GEMM, silu·up), weights rotated as in bench_small_m.
void bench_norm_swiglu(Backend& b, const char* path, std::initializer_list<int64_t> ms) {
  using pixtral::base::DType;
  const int64_t n = 28672, k = 5120;
  const double bytes = static_cast<double>(n * k * 2);
  const int copies = static_cast<int>(std::max(1.0, std::ceil(128e6 / bytes)));
  std::vector<pixtral::backend::TensorBuffer> ws;
  for (int i = 0; i < copies; ++i) {
    ws.push_back(b.alloc(DType::kBF16, {n, k}));
    b.fill_random(ws.back(), 1 + i, 0.0f, 0.02f);
  }
  auto norm = b.alloc(DType::kBF16, {k});
  b.fill_random(norm, 3, 1.0f, 0.1f);
  for (int64_t m : ms) {
    auto x = b.alloc(DType::kBF16, {m, k});
    auto y = b.alloc(DType::kBF16, {m, n / 2});
    b.fill_random(x, 2, 0.0f, 1.0f);
    constexpr int kCalls = 20;
    const double s = median_seconds(b, 2, 10, [&] {
      for (int i = 0; i < kCalls; ++i)
        b.norm_matmul({.x = x, .norm_weight = norm, .w = ws[i % copies], .y = y, .eps = 1e-5f, .swiglu = true});
    }) / kCalls;
    std::printf("norm_matmul+swiglu %-9s M=%lld N=%6lld K=%5lld: %7.1f us, %5.0f GB/s (%.0f%% of 3.03 TB/s)\n", path,
                static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), s * 1e6,
                bytes / s / 1e9, 100.0 * bytes / s / kBandwidth);
  }
}

// The sample op on random bf16 logits [R, 131072] (std 3): greedy; temperature 0.8 + top-k 50 +
// top-p 0.9; top-p 0.9 alone (the radix selects over weights). 20 calls back to back per timed
// repetition.
void bench_sample(Backend& b) {
  using pixtral::base::DType;
  const int64_t vocab = 131072;
  struct Config {
    const char* name;
    float temperature;
    int32_t top_k;
    float top_p;
  };
  const Config configs[] = {{"greedy", 0.0f, 0, 1.0f}, {"T 0.8, top-k 50, top-p 0.9", 0.8f, 50, 0.9f},
                            {"T 1.0, top-p 0.9", 1.0f, 0, 0.9f}};
  for (int64_t rows : {1, 64, 256}) {
    auto logits = b.alloc(DType::kBF16, {rows, vocab});
    b.fill_random(logits, 31, 0.0f, 3.0f);
    const auto n = static_cast<size_t>(rows);
    auto f32 = [&](float v) {
      auto t = b.alloc(DType::kF32, {rows});
      const std::vector<float> host(n, v);
      b.upload(host.data(), DType::kF32, t);
      return t;
    };
    auto i32 = [&](int32_t v) {
      auto t = b.alloc(DType::kI32, {rows});
      const std::vector<int32_t> host(n, v);
      b.upload(host.data(), DType::kI32, t);
      return t;
    };
    std::vector<int64_t> uniform_bits(n);  // F64 uniforms, uploaded as raw 64-bit words
    for (size_t i = 0; i < n; ++i) {
      const double u = (static_cast<double>(i) + 0.5) / static_cast<double>(n);
      std::memcpy(&uniform_bits[i], &u, sizeof u);
    }
    auto uniform = b.alloc(DType::kI64, {rows});
    b.upload(uniform_bits.data(), DType::kI64, uniform);
    pixtral::backend::Tensor uniform_f64 = uniform.tensor();
    uniform_f64.dtype = DType::kF64;
    auto out = b.alloc(DType::kI32, {rows});
    for (const Config& c : configs) {
      auto temperature = f32(c.temperature), top_p = f32(c.top_p), min_p = f32(0.0f);
      auto top_k = i32(c.top_k);
      constexpr int kCalls = 20;
      const double s = median_seconds(b, 2, 10, [&] {
        for (int i = 0; i < kCalls; ++i)
          b.sample({.logits = logits, .temperature = temperature, .top_k = top_k, .top_p = top_p, .min_p = min_p,
                    .uniform = uniform_f64, .out_ids = out});
      }) / kCalls;
      std::printf("sample R=%3lld V=131072 %-26s: %8.1f us (%.2f us per row)\n", static_cast<long long>(rows),
                  c.name, s * 1e6, s * 1e6 / static_cast<double>(rows));
    }
  }
}


// The GEMV streaming variants (cuda_common.h, GemvTuning) at M = 1, each on a backend made with
// its PIXTRAL_CUDA_GEMV_* settings: 8 loads per lane; the cp.async ring with block barriers
// (pipe1) and with barriers per column (pipe2) at several depths; the warp kernel (whole outputs
// per warp, no barriers); a block per column group (full grid); L2 evict-first weight reads.
void bench_gemv_variants() {
  using Setting = std::pair<const char*, const char*>;
  struct Variant {
    const char* label;
    std::vector<Setting> env;
  };
  const Variant variants[] = {
      {"gemv-u8", {{"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-gridfull", {{"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
      {"gemv-pipe1", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}}},
      {"gemv-pipe1-s4", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-pipe2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}}},
      {"gemv-pipe2-s2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}}},
      {"gemv-pipe2-s4", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-pipe2-s6", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "6"}}},
      {"gemv-pipe2-u8", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-pipe2-wpc1", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "1"}}},
      {"gemv-pipe2-wpc2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "2"}}},
      {"gemv-pipe2-wpc4", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}}},
      {"gemv-pipe1-wpc4", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}}},
      {"gemv-pipe2-evict", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_EVICT", "1"}}},
      {"gemv-pipe2-gridfull", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
      {"gemv-warp", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}}},
      {"gemv-warp-s2", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}}},
      {"gemv-warp-s4", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-warp-u8", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-warp-evict", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_EVICT", "1"}}},
      {"gemv-warp-gridfull", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
  };
  for (const Variant& v : variants) {
    for (const Setting& e : v.env) setenv(e.first, e.second, 1);
    auto b = std::move(pixtral::backend::make_cuda_backend(0)).value();
    for (const Setting& e : v.env) unsetenv(e.first);
    bench_small_m(*b, v.label, {1});
  }
}

// The many-rows attention kernels side by side: mma32 with its per-head_dim warps (the default),
// with 4 and with 8 warps per block, flash2 (the first tensor-core kernel) and wgmma (the sm_90a
// kernel, the default on the H100).
void bench_attention_kernels() {
  const std::pair<const char*, const char*> variants[] = {{"mma32", "0"}, {"mma32", "4"}, {"mma32", "8"},
                                                          {"flash2", "0"}, {"wgmma", "0"}};
  for (auto [kernel, warps] : variants) {
    setenv("PIXTRAL_CUDA_ATTN_WARPS", warps, 1);
    auto b = backend_with_env("PIXTRAL_CUDA_ATTN", kernel);
    unsetenv("PIXTRAL_CUDA_ATTN_WARPS");
    const std::string name = std::strcmp(warps, "0") == 0 ? std::string(kernel) : std::string(kernel) + "-w" + warps;
    bench_attention_rows(*b, name.c_str());
  }
}

}  // namespace pixtral::bench::ops
