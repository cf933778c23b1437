// paged_attention and varlen_attention on CUDA against the CPU reference: prefill chunks and
// decode rows in one batch, shuffled (non-contiguous) blocks, block boundaries, long contexts
// that take the split-KV path, GQA groups 1/2/4/8, head_dim 16/24/64/128 (64 and 128 run the
// tensor-core kernels, the others the CUDA-core one); launches sized for a larger max_kv_len than
// any sequence has (as a CUDA graph captured at the cache capacity would be).
// Every case runs on one backend per launch choice of the many-rows kernels (PIXTRAL_CUDA_ATTN
// mma32 with 4 and with 8 warps, flash2), against one CPU result.
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"

namespace pixtral::backend::testing {
namespace {

struct Heads {
  int64_t h, hkv, hd;
};
struct Seq {
  int64_t q_len, kv_len;
};

struct AttnBackend {
  std::string name;
  std::unique_ptr<Backend> backend;
};

// The CUDA backends the attention cases run on, made once (the switches are read at
// construction); the caller's own settings of the two variables are restored afterwards.
const std::vector<AttnBackend>& attn_backends() {
  static const std::vector<AttnBackend> backends = [] {
    const char* names[] = {"PIXTRAL_CUDA_ATTN", "PIXTRAL_CUDA_ATTN_WARPS"};
    std::vector<std::pair<std::string, bool>> saved;
    for (const char* name : names) {
      const char* v = std::getenv(name);
      saved.emplace_back(v != nullptr ? v : "", v != nullptr);
    }
    std::vector<AttnBackend> v;
    const std::pair<const char*, const char*> variants[] = {{"mma32", "4"}, {"mma32", "8"}, {"flash2", "0"}};
    for (auto [kernel, warps] : variants) {
      setenv(names[0], kernel, 1);
      setenv(names[1], warps, 1);
      v.push_back({std::string(kernel) + " warps " + warps, std::move(make_cuda_backend(0)).value()});
    }
    for (size_t i = 0; i < saved.size(); ++i) {
      if (saved[i].second) {
        setenv(names[i], saved[i].first.c_str(), 1);
      } else {
        unsetenv(names[i]);
      }
    }
    return v;
  }();
  return backends;
}

TensorBuffer upload_to(Backend& b, const std::vector<float>& host, Shape shape, DType dtype) {
  TensorBuffer t = b.alloc(dtype, shape);
  b.upload(host.data(), DType::kF32, t);
  return t;
}
TensorBuffer upload_i32_to(Backend& b, const std::vector<int32_t>& host, Shape shape) {
  TensorBuffer t = b.alloc(DType::kI32, shape);
  b.upload(host.data(), DType::kI32, t);
  return t;
}

// Relative L2 error of `got` on backend b against the CPU result; non-finite values fail.
double rel_to(const std::vector<float>& want, Backend& b, const Tensor& got) {
  std::vector<float> g(want.size());
  b.download_f32(got, g.data());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(g[i])) return 1e9;
    num += (static_cast<double>(g[i]) - want[i]) * (static_cast<double>(g[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// max_kv_bound > 0 replaces the host-known max_kv_len (and widens the block tables to match).
void run_paged(const Heads& hs, const std::vector<Seq>& seqs, int64_t bs, uint64_t seed, int64_t max_kv_bound = 0) {
  const int64_t s = static_cast<int64_t>(seqs.size());
  int64_t max_kv = 0, max_q = 0, rows = 0, max_blocks = 0;
  for (const auto& q : seqs) {
    max_kv = std::max(max_kv, q.kv_len);
    max_q = std::max(max_q, q.q_len);
    rows += q.q_len;
    max_blocks = std::max(max_blocks, (q.kv_len + bs - 1) / bs);
  }
  const int64_t used_blocks = max_blocks;
  if (max_kv_bound > 0) {
    max_kv = max_kv_bound;
    max_blocks = (max_kv_bound + bs - 1) / bs;
  }
  const int64_t num_blocks = used_blocks * s + 3;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(seed));
  std::vector<int32_t> tables(static_cast<size_t>(s * max_blocks), 0), q_start{0}, kv_len;
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t b = 0; b < (seqs[i].kv_len + bs - 1) / bs; ++b) tables[i * max_blocks + b] = ids[i * used_blocks + b];
    q_start.push_back(q_start.back() + static_cast<int32_t>(seqs[i].q_len));
    kv_len.push_back(static_cast<int32_t>(seqs[i].kv_len));
  }
  const Shape cache{num_blocks, bs, hs.hkv, hs.hd}, qs{rows, hs.h, hs.hd};
  const std::vector<float> kc = random_bf16(cache.numel(), seed + 1), vc = random_bf16(cache.numel(), seed + 2);
  const std::vector<float> q = random_bf16(qs.numel(), seed + 3, 2.0f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs.hd));
  // The op on backend b (F32 tensors on the CPU, BF16 on CUDA); returns its output.
  auto run = [&](Backend& b, DType dtype) {
    TensorBuffer tq = upload_to(b, q, qs, dtype), tk = upload_to(b, kc, cache, dtype);
    TensorBuffer tv = upload_to(b, vc, cache, dtype), out = b.alloc(dtype, qs);
    TensorBuffer ts = upload_i32_to(b, q_start, {s + 1}), tl = upload_i32_to(b, kv_len, {s});
    TensorBuffer tt = upload_i32_to(b, tables, {s, max_blocks});
    b.paged_attention({.q = tq, .k_cache = tk, .v_cache = tv, .q_start = ts, .kv_len = tl, .block_tables = tt,
                       .out = out, .scale = scale, .num_seqs = s, .max_kv_len = max_kv, .max_q_len = max_q});
    return out;
  };
  std::vector<float> want(static_cast<size_t>(qs.numel()));
  {
    TensorBuffer out = run(cpu(), DType::kF32);
    cpu().download_f32(out, want.data());
  }
  for (const AttnBackend& g : attn_backends()) {
    TensorBuffer out = run(*g.backend, DType::kBF16);
    EXPECT_LE(rel_to(want, *g.backend, out), kOpTolerance)
        << g.name << ": H " << hs.h << " Hkv " << hs.hkv << " hd " << hs.hd << " seqs " << s << " max_q " << max_q
        << " max_kv " << max_kv << " bs " << bs;
  }
}

TEST(CudaAttention, PagedPrefillDecodeMixes) {
  SKIP_WITHOUT_CUDA();
  const Heads heads[] = {{4, 2, 24}, {8, 8, 64}, {32, 8, 128}, {4, 1, 16}, {16, 2, 64}};
  const std::vector<std::vector<Seq>> batches = {
      {{1, 1}},
      {{40, 40}},                          // one prefill, several query tiles
      {{5, 5}, {1, 37}, {17, 40}},         // prefill + decode + a chunk on top of a cached prefix
      {{1, 1000}},                         // decode, split over the key range
      {{1, 300}, {1, 17}, {1, 64}, {1, 65}},  // batched decode, lengths around block boundaries
      {{3, 700}, {70, 70}},
  };
  uint64_t seed = 100;
  for (const auto& h : heads)
    for (const auto& batch : batches)
      for (int64_t bs : {4, 16}) run_paged(h, batch, bs, seed += 7);
}

TEST(CudaAttention, PagedLongDecode) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{1, 8191}}, 16, 5);
  run_paged({32, 8, 128}, {{2, 4099}, {1, 33}}, 16, 6);
}

// Prefill chunks on top of a cached prefix, several query tiles each, next to a decode row.
TEST(CudaAttention, PagedChunkAfterContext) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{130, 2100}, {1, 77}, {64, 700}}, 16, 7);
  run_paged({16, 16, 64}, {{100, 1500}, {33, 33}}, 16, 8);
}

// The many-rows kernel's boundaries: (row, head) pairs not a multiple of a warp's 32 or of a
// block's 128/256 (warps without pairs, a last m-tile half full), sequences of different own
// tile counts in one launch (heaviest-first numbering per sequence), key ranges shorter than one
// key tile, the causal diagonal inside a tile, split-KV with rows whose keys end before a split,
// a block size that is not a power of two (the division path of the block-table lookup).
TEST(CudaAttention, PagedPrefillTileBoundaries) {
  SKIP_WITHOUT_CUDA();
  const Heads heads[] = {{32, 8, 128}, {16, 2, 64}, {8, 8, 64}, {4, 1, 64}, {2, 2, 128}};
  const std::vector<std::vector<Seq>> batches = {
      {{33, 33}},                    // 33 rows: 33-264 pairs
      {{64, 64}},                    // exact tiles
      {{129, 129}},                  // one row past a 128-row tile
      {{1, 1}, {45, 45}, {9, 9}},    // decode row + prefills of different tile counts
      {{17, 300}, {3, 5}},           // chunk after context; 3 rows x group 8 = 24 pairs
      {{31, 1000}, {200, 1200}},     // splits; diagonal crossing split boundaries
  };
  uint64_t seed = 500;
  for (const auto& h : heads)
    for (const auto& batch : batches)
      for (int64_t bs : {4, 16, 12}) run_paged(h, batch, bs, seed += 7);
}

// Few blocks for a long context: the plan splits the key range over gridDim.z (up to 128).
TEST(CudaAttention, PagedPrefillSplits) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{20, 4000}}, 16, 21);
  run_paged({32, 8, 128}, {{250, 3000}}, 16, 22);
  run_paged({8, 8, 64}, {{40, 5000}, {7, 90}}, 16, 23);
  run_paged({4, 1, 64}, {{16, 3000}}, 4, 24);
}

// Launch sized for max_kv_len = 32768 (a graph captured at the cache capacity); the kernels must
// take the real kv_len from the device and ignore the splits past it.
TEST(CudaAttention, PagedDecodeLargerBound) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{1, 300}}, 16, 9, 32768);
  run_paged({32, 8, 128}, {{1, 5}, {1, 1030}, {1, 16}}, 16, 10, 32768);
  run_paged({32, 8, 128}, {{1, 4097}}, 16, 11, 8192);
  run_paged({8, 8, 64}, {{1, 40}, {1, 600}}, 16, 12, 4096);
}

// Prefill launches sized for a larger max_kv_len than the sequences have: many splits hold no keys.
TEST(CudaAttention, PagedPrefillLargerBound) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{40, 300}}, 16, 13, 4096);
  run_paged({16, 2, 64}, {{33, 100}, {1, 7}}, 16, 14, 16384);
}

void run_varlen(int64_t h, int64_t hd, const std::vector<int32_t>& lens, uint64_t seed) {
  std::vector<int32_t> cu{0};
  int64_t max_len = 0;
  for (int32_t l : lens) {
    cu.push_back(cu.back() + l);
    max_len = std::max<int64_t>(max_len, l);
  }
  const int64_t n = cu.back(), segs = static_cast<int64_t>(lens.size());
  const Shape shape{n, h, hd};
  const std::vector<float> q = random_bf16(shape.numel(), seed, 2.0f), k = random_bf16(shape.numel(), seed + 1);
  const std::vector<float> v = random_bf16(shape.numel(), seed + 2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto run = [&](Backend& b, DType dtype) {
    TensorBuffer tq = upload_to(b, q, shape, dtype), tk = upload_to(b, k, shape, dtype);
    TensorBuffer tv = upload_to(b, v, shape, dtype), out = b.alloc(dtype, shape);
    TensorBuffer tc = upload_i32_to(b, cu, {segs + 1});
    b.varlen_attention({.q = tq, .k = tk, .v = tv, .cu_seqlens = tc, .out = out, .scale = scale,
                        .num_segments = segs, .max_seqlen = max_len});
    return out;
  };
  std::vector<float> want(static_cast<size_t>(shape.numel()));
  {
    TensorBuffer out = run(cpu(), DType::kF32);
    cpu().download_f32(out, want.data());
  }
  for (const AttnBackend& g : attn_backends()) {
    TensorBuffer out = run(*g.backend, DType::kBF16);
    EXPECT_LE(rel_to(want, *g.backend, out), kOpTolerance)
        << g.name << ": H " << h << " hd " << hd << " segments " << segs << " max_len " << max_len;
  }
}

TEST(CudaAttention, VarlenSegments) {
  SKIP_WITHOUT_CUDA();
  for (int64_t hd : {16, 64})
    for (int64_t h : {2, 16}) {
      run_varlen(h, hd, {15}, 1);
      run_varlen(h, hd, {15, 40, 1}, 2);
      run_varlen(h, hd, {256, 33, 100}, 3);
    }
  run_varlen(16, 64, {1024}, 4);
}

// Vision-sized segments: one 1024² image is 4096 patches.
TEST(CudaAttention, VarlenLongSegments) {
  SKIP_WITHOUT_CUDA();
  run_varlen(4, 64, {4096}, 5);
  run_varlen(2, 64, {1000, 3000, 64}, 6);
  run_varlen(2, 128, {2000, 77}, 7);
}

// Segment lengths around the many-rows kernel's tiles: shorter than one key tile, one past a
// query tile, many short segments in one launch, a split key range (few heads, one segment).
TEST(CudaAttention, VarlenTileBoundaries) {
  SKIP_WITHOUT_CUDA();
  for (int64_t hd : {64, 128}) {
    run_varlen(16, hd, {1, 2, 3, 31, 33, 17}, 30);
    run_varlen(16, hd, {129, 65, 64, 63, 257}, 31);
    run_varlen(2, hd, {300}, 32);
    run_varlen(1, hd, {4095, 129}, 33);
  }
}

}  // namespace
}  // namespace pixtral::backend::testing
