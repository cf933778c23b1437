// paged_attention and varlen_attention on CUDA against the CPU reference: prefill chunks and
// decode rows in one batch, shuffled (non-contiguous) blocks, block boundaries, long contexts
// that take the split-KV path, GQA groups 1/2/4/8, head_dim 16/24/64/128 (64 and 128 run the
// tensor-core kernel, the others the CUDA-core one); launches sized for a larger max_kv_len than
// any sequence has (as a CUDA graph captured at the cache capacity would be).
#include <algorithm>
#include <numeric>

#include "cuda_test_util.h"

namespace pixtral::backend::testing {
namespace {

struct Heads {
  int64_t h, hkv, hd;
};
struct Seq {
  int64_t q_len, kv_len;
};

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
  const Shape cache{num_blocks, bs, hs.hkv, hs.hd};
  Both kc = upload_both(random_bf16(cache.numel(), seed + 1), cache);
  Both vc = upload_both(random_bf16(cache.numel(), seed + 2), cache);
  Both q = upload_both(random_bf16(rows * hs.h * hs.hd, seed + 3, 2.0f), {rows, hs.h, hs.hd});
  Both qs = upload_i32_both(q_start, {s + 1}), kl = upload_i32_both(kv_len, {s});
  Both bt = upload_i32_both(tables, {s, max_blocks});
  Both out = zeros_both({rows, hs.h, hs.hd});
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs.hd));
  auto params = [&](auto pick) {
    return PagedAttentionParams{.q = pick(q), .k_cache = pick(kc), .v_cache = pick(vc), .q_start = pick(qs),
                                .kv_len = pick(kl), .block_tables = pick(bt), .out = pick(out), .scale = scale,
                                .num_seqs = s, .max_kv_len = max_kv, .max_q_len = max_q};
  };
  cpu().paged_attention(params([](const Both& b) { return b.c.tensor(); }));
  gpu().paged_attention(params([](const Both& b) { return b.g.tensor(); }));
  EXPECT_LE(rel_error(out), kOpTolerance) << "H " << hs.h << " Hkv " << hs.hkv << " hd " << hs.hd << " seqs " << s
                                          << " max_kv " << max_kv << " bs " << bs;
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

// Launch sized for max_kv_len = 32768 (a graph captured at the cache capacity); the kernels must
// take the real kv_len from the device and ignore the splits past it.
TEST(CudaAttention, PagedDecodeLargerBound) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{1, 300}}, 16, 9, 32768);
  run_paged({32, 8, 128}, {{1, 5}, {1, 1030}, {1, 16}}, 16, 10, 32768);
  run_paged({32, 8, 128}, {{1, 4097}}, 16, 11, 8192);
  run_paged({8, 8, 64}, {{1, 40}, {1, 600}}, 16, 12, 4096);
}

void run_varlen(int64_t h, int64_t hd, const std::vector<int32_t>& lens, uint64_t seed) {
  std::vector<int32_t> cu{0};
  int64_t max_len = 0;
  for (int32_t l : lens) {
    cu.push_back(cu.back() + l);
    max_len = std::max<int64_t>(max_len, l);
  }
  const int64_t n = cu.back(), segs = static_cast<int64_t>(lens.size());
  Both q = upload_both(random_bf16(n * h * hd, seed, 2.0f), {n, h, hd});
  Both k = upload_both(random_bf16(n * h * hd, seed + 1), {n, h, hd});
  Both v = upload_both(random_bf16(n * h * hd, seed + 2), {n, h, hd});
  Both c = upload_i32_both(cu, {segs + 1});
  Both out = zeros_both({n, h, hd});
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  cpu().varlen_attention({.q = q.c, .k = k.c, .v = v.c, .cu_seqlens = c.c, .out = out.c, .scale = scale,
                          .num_segments = segs, .max_seqlen = max_len});
  gpu().varlen_attention({.q = q.g, .k = k.g, .v = v.g, .cu_seqlens = c.g, .out = out.g, .scale = scale,
                          .num_segments = segs, .max_seqlen = max_len});
  EXPECT_LE(rel_error(out), kOpTolerance) << "H " << h << " hd " << hd << " segments " << segs;
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

}  // namespace
}  // namespace pixtral::backend::testing
