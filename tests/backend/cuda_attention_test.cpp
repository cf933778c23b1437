// paged_attention and varlen_attention on CUDA against the CPU reference: prefill chunks and
// decode rows in one batch, shuffled (non-contiguous) blocks, block boundaries, long contexts
// that take the split-KV path, GQA groups 1/2/4/8, head_dim 16/24/64/128 (64 and 128 run the
// tensor-core kernels, the others the CUDA-core one); launches sized for a larger max_kv_len than
// any sequence has (as a CUDA graph captured at the cache capacity would be). Every case runs on
// one backend per kernel choice (variants()).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>
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

// Every case runs on one backend per kernel choice: the decode kernel with and without
// programmatic dependent launch and the flash kernel + combine (PIXTRAL_CUDA_DECODE_ATTN=old) for
// decode-shaped launches; prefill_kernel with 4 and with 8 warps per block and the first
// tensor-core kernel (PIXTRAL_CUDA_ATTN=mma32 / flash2, PIXTRAL_CUDA_ATTN_WARPS) for many rows;
// the first backend has the defaults, which on an sm_90 device run the wgmma kernel for many rows
// (cuda_attention_wgmma.cuh); the last one forces that kernel's key range into 3 splits
// (PIXTRAL_CUDA_ATTN_SPLITS: the plan splits few calls, and the partials and the combine must
// stay right for every case).
struct Variant {
  const char* name;
  Backend* backend;
};
std::unique_ptr<Backend> cuda_with_attn(const char* kernel, const char* warps) {
  setenv("PIXTRAL_CUDA_ATTN_WARPS", warps, 1);
  std::unique_ptr<Backend> b = cuda_with({"PIXTRAL_CUDA_ATTN", kernel});
  unsetenv("PIXTRAL_CUDA_ATTN_WARPS");
  return b;
}
const std::vector<Variant>& variants() {
  static std::unique_ptr<Backend> decode = cuda_with({"PIXTRAL_CUDA_DECODE_ATTN", "new"});
  static std::unique_ptr<Backend> no_pdl = cuda_with({"PIXTRAL_CUDA_PDL", "0"});
  static std::unique_ptr<Backend> flash = cuda_with({"PIXTRAL_CUDA_DECODE_ATTN", "old"});
  static std::unique_ptr<Backend> mma32_w4 = cuda_with_attn("mma32", "4");
  static std::unique_ptr<Backend> mma32_w8 = cuda_with_attn("mma32", "8");
  static std::unique_ptr<Backend> flash2 = cuda_with_attn("flash2", "0");
  static std::unique_ptr<Backend> split3 = cuda_with({"PIXTRAL_CUDA_ATTN_SPLITS", "3"});
  static const std::vector<Variant> v = {{"decode", decode.get()},          {"decode-nopdl", no_pdl.get()},
                                         {"flash", flash.get()},            {"mma32 warps 4", mma32_w4.get()},
                                         {"mma32 warps 8", mma32_w8.get()}, {"flash2", flash2.get()},
                                         {"wgmma splits 3", split3.get()}};
  return v;
}

// One paged batch on the host: random bf16 q and caches, shuffled blocks, tables padded to the
// launch bound.
struct PagedCase {
  Heads hs;
  int64_t s = 0, bs = 0, rows = 0, num_blocks = 0, max_blocks = 0, max_kv = 0, max_q = 0;
  std::vector<float> k, v, q;
  std::vector<int32_t> q_start{0}, kv_len, tables;
};

// max_kv_bound > 0 replaces the host-known max_kv_len (and widens the block tables to match).
PagedCase make_paged(const Heads& hs, const std::vector<Seq>& seqs, int64_t bs, uint64_t seed, int64_t max_kv_bound) {
  PagedCase c;
  c.hs = hs;
  c.s = static_cast<int64_t>(seqs.size());
  c.bs = bs;
  int64_t total_blocks = 0;
  for (const auto& q : seqs) {
    c.max_kv = std::max(c.max_kv, q.kv_len);
    c.max_q = std::max(c.max_q, q.q_len);
    c.rows += q.q_len;
    c.max_blocks = std::max(c.max_blocks, (q.kv_len + bs - 1) / bs);
    total_blocks += (q.kv_len + bs - 1) / bs;
  }
  if (max_kv_bound > 0) {
    c.max_kv = max_kv_bound;
    c.max_blocks = (max_kv_bound + bs - 1) / bs;
  }
  // Only the blocks the sequences use (+ 3 unused), in shuffled order.
  c.num_blocks = total_blocks + 3;
  std::vector<int32_t> ids(static_cast<size_t>(c.num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937_64(seed));
  c.tables.assign(static_cast<size_t>(c.s * c.max_blocks), 0);
  size_t next = 0;
  for (int64_t i = 0; i < c.s; ++i) {
    for (int64_t b = 0; b < (seqs[i].kv_len + bs - 1) / bs; ++b) c.tables[i * c.max_blocks + b] = ids[next++];
    c.q_start.push_back(c.q_start.back() + static_cast<int32_t>(seqs[i].q_len));
    c.kv_len.push_back(static_cast<int32_t>(seqs[i].kv_len));
  }
  const int64_t cache = c.num_blocks * bs * hs.hkv * hs.hd;
  c.k = random_bf16(static_cast<size_t>(cache), seed + 1);
  c.v = random_bf16(static_cast<size_t>(cache), seed + 2);
  c.q = random_bf16(static_cast<size_t>(c.rows * hs.h * hs.hd), seed + 3, 2.0f);
  return c;
}

// The case's tensors on one backend (f32 on the CPU, bf16 on CUDA).
struct PagedTensors {
  TensorBuffer q, kc, vc, qs, kl, bt, out;
  PagedAttentionParams params(const PagedCase& c) const {
    return {.q = q, .k_cache = kc, .v_cache = vc, .q_start = qs, .kv_len = kl, .block_tables = bt, .out = out,
            .scale = 1.0f / std::sqrt(static_cast<float>(c.hs.hd)), .num_seqs = c.s, .max_kv_len = c.max_kv,
            .max_q_len = c.max_q};
  }
};
PagedTensors upload_paged(Backend& b, const PagedCase& c) {
  const DType dt = b.activation_dtype();
  auto f = [&](const std::vector<float>& host, Shape shape) {
    TensorBuffer t = b.alloc(dt, shape);
    b.upload(host.data(), DType::kF32, t);
    return t;
  };
  auto i32 = [&](const std::vector<int32_t>& host, Shape shape) {
    TensorBuffer t = b.alloc(DType::kI32, shape);
    b.upload(host.data(), DType::kI32, t);
    return t;
  };
  const Shape cache{c.num_blocks, c.bs, c.hs.hkv, c.hs.hd}, rows{c.rows, c.hs.h, c.hs.hd};
  return {f(c.q, rows), f(c.k, cache), f(c.v, cache), i32(c.q_start, {c.s + 1}), i32(c.kv_len, {c.s}),
          i32(c.tables, {c.s, c.max_blocks}), b.alloc(dt, rows)};
}

std::vector<float> cpu_paged(const PagedCase& c) {
  const PagedTensors t = upload_paged(cpu(), c);
  cpu().paged_attention(t.params(c));
  return download(cpu(), t.out);
}

void run_paged(const Heads& hs, const std::vector<Seq>& seqs, int64_t bs, uint64_t seed, int64_t max_kv_bound = 0) {
  const PagedCase c = make_paged(hs, seqs, bs, seed, max_kv_bound);
  const std::vector<float> want = cpu_paged(c);
  for (const Variant& var : variants()) {
    const PagedTensors t = upload_paged(*var.backend, c);
    var.backend->paged_attention(t.params(c));
    EXPECT_LE(rel_error(want, download(*var.backend, t.out)), kOpTolerance)
        << var.name << ": H " << hs.h << " Hkv " << hs.hkv << " hd " << hs.hd << " seqs " << c.s << " max_q "
        << c.max_q << " max_kv " << c.max_kv << " bs " << bs;
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

// Chunks whose rows and keys sit around the wgmma kernel's 128-pair query tiles (32 rows of a
// group of 4) and 128-key tiles: the diagonal crossing a key tile, a warpgroup whose rows all end
// before a tile (skipped), kv_len one below / at / past a tile boundary.
TEST(CudaAttention, PagedKeyTileBoundaries) {
  SKIP_WITHOUT_CUDA();
  const Heads heads[] = {{32, 8, 128}, {16, 16, 64}};
  const std::vector<std::vector<Seq>> batches = {
      {{32, 128}}, {{33, 129}}, {{96, 255}}, {{128, 257}}, {{1, 1}, {300, 640}}, {{16, 127}, {64, 384}},
  };
  uint64_t seed = 900;
  for (const auto& h : heads)
    for (const auto& batch : batches) run_paged(h, batch, 16, seed += 7);
}

// Few blocks for a long context: the plan splits the key range over gridDim.z (up to 128).
TEST(CudaAttention, PagedPrefillSplits) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{20, 4000}}, 16, 21);
  run_paged({32, 8, 128}, {{250, 3000}}, 16, 22);
  run_paged({8, 8, 64}, {{40, 5000}, {7, 90}}, 16, 23);
  run_paged({4, 1, 64}, {{16, 3000}}, 4, 24);
}

// Prefill launches sized for a larger max_kv_len than the sequences have: many splits hold no keys.
TEST(CudaAttention, PagedPrefillLargerBound) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{40, 300}}, 16, 13, 4096);
  run_paged({16, 2, 64}, {{33, 100}, {1, 7}}, 16, 14, 16384);
}

// A step's decode rows and prefill chunks attended by two calls (the first d sequences, then the
// others; q_start absolute), as the decoder does: every row equals one call over the whole batch,
// and neither call touches the other's rows (the combine of a split prefill call included).
void run_paged_split(const Heads& hs, const std::vector<Seq>& seqs, int64_t d, int64_t bs, uint64_t seed) {
  const PagedCase c = make_paged(hs, seqs, bs, seed, 0);
  const std::vector<float> want = cpu_paged(c);
  // pair: through paged_attention_pair (the CUDA backend runs the first call on a side stream,
  // concurrently with the second).
  auto two_calls = [&](Backend& b, bool pair) {
    const PagedTensors t = upload_paged(b, c);
    auto part = [&](int64_t first, int64_t end, int64_t max_q) {
      PagedAttentionParams p = t.params(c);
      p.q_start = t.qs.tensor().rows(first, end + 1);
      p.kv_len = t.kl.tensor().rows(first, end);
      p.block_tables = t.bt.tensor().rows(first, end);
      p.num_seqs = end - first;
      p.max_q_len = max_q;
      return p;
    };
    if (pair) {
      b.paged_attention_pair(part(0, d, 1), part(d, c.s, c.max_q));
    } else {
      b.paged_attention(part(0, d, 1));
      b.paged_attention(part(d, c.s, c.max_q));
    }
    return download(b, t.out);
  };
  EXPECT_LE(rel_error(want, two_calls(cpu(), false)), 1e-6) << "cpu, d " << d;
  for (const Variant& var : variants())
    for (bool pair : {false, true})
      EXPECT_LE(rel_error(want, two_calls(*var.backend, pair)), kOpTolerance)
          << var.name << (pair ? " (pair)" : "") << ": H " << hs.h << " hd " << hs.hd << " seqs " << c.s << " d " << d
          << " bs " << bs;
}

TEST(CudaAttention, PagedDecodeRowsAndChunksInTwoCalls) {
  SKIP_WITHOUT_CUDA();
  run_paged_split({32, 8, 128}, {{1, 300}, {1, 40}, {1, 1000}, {64, 700}}, 3, 16, 70);
  run_paged_split({16, 2, 64}, {{1, 5}, {33, 33}}, 1, 4, 71);
  run_paged_split({32, 8, 128}, {{1, 2000}, {1, 3000}, {200, 3000}}, 2, 16, 72);  // split-KV + combine
  run_paged_split({32, 8, 128}, {{1, 17}, {512, 4196}, {100, 100}}, 1, 16, 73);
}

// Launch sized for max_kv_len = 32768 (a graph captured at the cache capacity); the kernels must
// take the real kv_len from the device and ignore the splits past it.
TEST(CudaAttention, PagedDecodeLargerBound) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{1, 300}}, 16, 9, 32768);
  run_paged({32, 8, 128}, {{1, 5}, {1, 1030}, {1, 16}}, 16, 10, 32768);
  run_paged({32, 8, 128}, {{1, 4097}}, 16, 11, 8192);
  run_paged({8, 8, 64}, {{1, 40}, {1, 600}}, 16, 12, 4096);
  run_paged({32, 8, 128}, {{1, 1}}, 16, 13, 32768);
}

// 64 decode rows at mixed contexts (1..2000), as a batched decode step: launch sized for the
// longest and for the cache capacity.
TEST(CudaAttention, PagedDecodeBatch64) {
  SKIP_WITHOUT_CUDA();
  std::vector<Seq> seqs;
  std::mt19937 rng(64);
  for (int i = 0; i < 64; ++i) seqs.push_back({1, 1 + static_cast<int64_t>(rng() % 2000)});
  seqs[0].kv_len = 1;
  seqs[1].kv_len = 2000;
  seqs[2].kv_len = 64;
  seqs[3].kv_len = 16;
  run_paged({32, 8, 128}, seqs, 16, 20);
  run_paged({32, 8, 128}, seqs, 16, 21, 32768);
  run_paged({8, 8, 64}, seqs, 4, 22);
}

// One sequence of 32k keys (the decode kernel's full split count), and one whose length is an
// exact multiple of 33 splits of 992 keys.
TEST(CudaAttention, PagedDecode32k) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{1, 32768}}, 16, 30, 32768);
  run_paged({32, 8, 128}, {{1, 32736}}, 16, 31, 32768);
}

// kv_len at and around the warp tile (16), the block's tile row (64 = the shortest split), the
// block size, a 33-way split of 64 keys (2112), and 4k; block sizes 16 and 4; launches sized for
// the context and for 32k.
TEST(CudaAttention, PagedDecodeBoundaries) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 40;
  for (int64_t kv : {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1008, 1024, 1025, 2111, 2112, 2113, 4095, 4096})
    for (int64_t bs : {4, 16})
      for (int64_t bound : {int64_t{0}, int64_t{32768}}) run_paged({32, 8, 128}, {{1, kv}}, bs, ++seed, bound);
}

// Several query rows per sequence that still fit one m16 tile (rows × group <= 16): the decode
// kernel's causal mask inside the tile; a row that sees no key at all (q_len 2 over kv_len 1).
TEST(CudaAttention, PagedDecodeKernelMultiRow) {
  SKIP_WITHOUT_CUDA();
  run_paged({32, 8, 128}, {{4, 700}, {1, 33}, {2, 2}, {3, 3}}, 16, 50);
  run_paged({32, 8, 128}, {{4, 700}, {1, 33}}, 16, 51, 32768);
  run_paged({8, 8, 64}, {{16, 16}, {16, 900}, {7, 300}}, 16, 52);
  run_paged({16, 2, 64}, {{2, 500}, {1, 1}, {2, 1}}, 4, 53);
  run_paged({16, 2, 128}, {{2, 3000}, {2, 2}}, 16, 54, 32768);
}

// The decode kernel inside a CUDA graph captured at the cache capacity, replayed for several
// contexts (new kv_len uploaded in place between replays): the split counters must start from
// zero on every replay.
TEST(CudaAttention, PagedDecodeGraphReplay) {
  SKIP_WITHOUT_CUDA();
  Backend& g = *variants()[0].backend;
  const std::vector<std::vector<Seq>> steps = {{{1, 4096}, {1, 1}, {1, 700}},
                                               {{1, 65}, {1, 64}, {1, 2000}},
                                               {{1, 4000}, {1, 3}, {1, 128}},
                                               {{1, 4000}, {1, 3}, {1, 128}}};
  // One cache and table layout serves every step: lay it out for the longest context per sequence.
  PagedCase c = make_paged({32, 8, 128}, {{1, 4096}, {1, 4096}, {1, 4096}}, 16, 60, 4096);
  const PagedTensors t = upload_paged(g, c);
  g.paged_attention(t.params(c));  // warm-up: attributes, workspace and counters outside capture
  g.synchronize();
  g.begin_capture();
  g.paged_attention(t.params(c));
  std::unique_ptr<Graph> graph = g.end_capture();
  ASSERT_NE(graph, nullptr);
  for (const auto& step : steps) {
    for (size_t i = 0; i < step.size(); ++i) c.kv_len[i] = static_cast<int32_t>(step[i].kv_len);
    g.upload(c.kv_len.data(), DType::kI32, t.kl);
    graph->replay();
    EXPECT_LE(rel_error(cpu_paged(c), download(g, t.out)), kOpTolerance)
        << "kv_len " << c.kv_len[0] << ", " << c.kv_len[1] << ", " << c.kv_len[2];
  }
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
  // The op on backend b (F32 tensors on the CPU, BF16 on CUDA); returns its output.
  auto run = [&](Backend& b) {
    const DType dt = b.activation_dtype();
    auto f = [&](const std::vector<float>& host) {
      TensorBuffer t = b.alloc(dt, shape);
      b.upload(host.data(), DType::kF32, t);
      return t;
    };
    TensorBuffer tq = f(q), tk = f(k), tv = f(v), out = b.alloc(dt, shape);
    TensorBuffer tc = b.alloc(DType::kI32, {segs + 1});
    b.upload(cu.data(), DType::kI32, tc);
    b.varlen_attention({.q = tq, .k = tk, .v = tv, .cu_seqlens = tc, .out = out, .scale = scale,
                        .num_segments = segs, .max_seqlen = max_len});
    return download(b, out);
  };
  const std::vector<float> want = run(cpu());
  for (const Variant& var : variants())
    EXPECT_LE(rel_error(want, run(*var.backend)), kOpTolerance)
        << var.name << ": H " << h << " hd " << hd << " segments " << segs << " max_len " << max_len;
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

// Segments that are not multiples of the wgmma kernel's 128-key / 128-row tiles next to a full
// 4,096-token image, 16 heads (the vision shape): partial last key tiles are masked, rows past a
// segment's end are not written, and the longest segment's tiles are launched first.
TEST(CudaAttention, VarlenOddSegmentsVision) {
  SKIP_WITHOUT_CUDA();
  run_varlen(16, 64, {1, 63, 65, 1000, 4096}, 34);
  run_varlen(16, 64, {127, 128, 129, 255, 256, 257}, 35);
}

}  // namespace
}  // namespace pixtral::backend::testing
