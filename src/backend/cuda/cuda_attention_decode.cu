// Decode attention over the paged KV cache on tensor cores (head_dim 64/128; calls where every
// sequence has at most 16 (query row, head) pairs per KV head, e.g. one row × a GQA group of 4).
//
// Grid (num_seqs, num_kv_heads, splits); a block of kWarps warps owns one (sequence, KV head) and
// one split of its key range. The block's pairs are the 16 rows of one m16 mma tile (rows past the
// pairs are zero), so K/V are read once per KV head. Inside the block each warp streams its own
// 16-key tiles (tiles warp, warp + kWarps, …) through a private kStages-deep cp.async ring with
// its own online softmax, so the key loop has no block barrier; 8 lanes copy each 128-byte line,
// the keys' block-table entries looked up one tile ahead. S = Q·Kᵀ and O += P·V use the
// flash kernel's mma.sync m16n8k16 fragments and XOR swizzle (cuda_attention_flash.cuh), P rounded
// to bf16 before P·V. At the end the warps merge through shared memory; a block alone in its
// (sequence, KV head) writes the output, otherwise it writes a partial (acc, max, sum) and the last
// block to finish (an atomic counter per (sequence, KV head), reset by that block, so every launch
// and graph replay starts from zero) merges all partials: no separate combine launch.
//
// The split count comes from host bounds only (num_seqs, max_kv_len, SM count, occupancy): the
// count that fills the machine in whole waves, less a per-block cost. Each block derives its key
// range from the device kv_len (flash::split_len_for, at least kMinSplit keys), so a launch sized
// for the cache capacity (a CUDA graph) does work proportional to the real context. Launched with
// programmatic dependent launch when asked: griddepcontrol.wait precedes every read of memory
// that earlier kernels write, and the next kernel (the w_o GEMV) may launch at once.
#include "backend/cuda/cuda_attention_flash.cuh"
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

using flash::ldsm_x4;
using flash::ldsm_x4_t;
using flash::mma_16816;
using flash::online_softmax_step;
using flash::pack_bf16;
using flash::smem_u32;
using flash::swz;
using flash::warp_max;
using flash::warp_sum;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kKeys = 16;                    // keys per warp tile
constexpr int kStages = 3;                   // tiles in a warp's cp.async ring
constexpr int kRows = 16;                    // (row, head) pairs per block: one m16 tile
constexpr int kMinSplit = kKeys * kWarps;    // keys per split, at least: one tile per warp
constexpr int kMaxSplits = 256;
constexpr int64_t kBlockCostKeys = 128;      // a block's fixed cost (start, merge) in keys streamed
constexpr float kLog2e = 1.4426950408889634f;

struct DecodeLaunch {
  int splits = 1;
  int rows = kRows;  // pairs per (sequence, KV head) in the partial layout: min(16, max_q_len · group)
};

// Dynamic shared memory, in bytes from the start: Q [16][HD] bf16; then per warp K [kStages][16][HD]
// and V [kStages][16][HD] bf16 (XOR-swizzled rows). After the key loop the stage area holds the
// warps' accumulators [kWarps][16][HD + 8] f32 (padded rows: conflict-free float2 stores) and the
// last block's split weights [16][kMaxSplits] f32.
template <int HD>
struct DecodeSmem {
  static constexpr int kTile = kKeys * HD;  // bf16 elements of one K (or V) tile
  static constexpr int kStageArea = kRows * HD * 2;
  static constexpr int kBytes = kStageArea + kWarps * kStages * 2 * kTile * 2;
  static constexpr int kRedStride = HD + 8;
  static constexpr int kWeights = kStageArea + kWarps * kRows * kRedStride * 4;
  static_assert(kWeights + kRows * kMaxSplits * 4 <= kBytes, "merge scratch must fit in the stage area");
};

using mma::allow_dependents;
using mma::cp_async_wait;
using mma::grid_dependency_wait;

// K/V are read once per step: evict them from L2 first, so weights prefetched meanwhile stay.
__device__ inline uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}
// 16-byte global -> shared copy with an L2 policy; zero-fills when !valid (src must stay mapped).
__device__ inline void cp_async16_hint(uint32_t dst, const void* src, bool valid, uint64_t policy) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst), "l"(src), "r"(n),
               "l"(policy));
}

// Where a warp's tiles come from: the caches and the sequence's block-table row.
struct KeySource {
  const bf16* k;
  const bf16* v;
  const int32_t* table;  // the sequence's block-table row
  int block_size, kv_stride, kvh;  // kv_stride = num_kv_heads
};

// Copies a 16-key tile (keys at or past k_end: zeros) into ring stage sk/sv. Lane l resolves the
// cache slot of key kt + l % 16 from `page` (its block-table entry); each instruction then copies
// 4 key rows as whole 128-byte lines (8 lanes per line, row = lane / 8 + 4·rr), the rows' slots
// passed around by shuffle.
template <int HD>
__device__ __forceinline__ void load_tile(const KeySource& src, bf16* sk, bf16* sv, int kt, int k_end, int page,
                                          int lane, uint64_t policy) {
  const int key = kt + (lane & 15);
  const int slot = key < k_end ? page * src.block_size + key % src.block_size : -1;
#pragma unroll
  for (int rr = 0; rr < kKeys / 4; ++rr) {
    const int r = (lane >> 3) + 4 * rr;
    const int row_slot = __shfl_sync(0xffffffffu, slot, r);
    const bool valid = row_slot >= 0;
    const int64_t off = valid ? (static_cast<int64_t>(row_slot) * src.kv_stride + src.kvh) * HD : 0;
#pragma unroll
    for (int half = 0; half < HD / 64; ++half) {
      const int c = 8 * half + (lane & 7);
      cp_async16_hint(smem_u32(sk + swz<HD>(r, c)), src.k + off + c * 8, valid, policy);
      cp_async16_hint(smem_u32(sv + swz<HD>(r, c)), src.v + off + c * 8, valid, policy);
    }
  }
}

// One 16-key tile of a warp: S = Q·Kᵀ (scaled to base 2, masked from mask_from on), the online
// softmax update of (m, lsum, o) and O += bf16(P)·V. Fragments as in flash_kernel with BN = 16.
template <int HD>
__device__ __forceinline__ void attend_tile(const uint32_t (&qf)[HD / 16][4], const bf16* kb, const bf16* vb, int kt,
                                            int mask_from, const int (&lim)[2], float scale_log2, int lane,
                                            float (&o)[HD / 8][4], float (&m)[2], float (&lsum)[2]) {
  float s[2][4];
#pragma unroll
  for (int n = 0; n < 2; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    // Matrices: keys 0-7 × d 0-7, keys 0-7 × d 8-15, keys 8-15 × d 0-7, keys 8-15 × d 8-15.
    const int key = (lane & 7) + ((lane >> 4) << 3), c = kk * 2 + ((lane >> 3) & 1);
    uint32_t b0, b1, b2, b3;
    ldsm_x4(smem_u32(kb + swz<HD>(key, c)), b0, b1, b2, b3);
    mma_16816(s[0], qf[kk], b0, b1);
    mma_16816(s[1], qf[kk], b2, b3);
  }
  const bool need_mask = kt + kKeys > mask_from;
  online_softmax_step(s, o, m, lsum, kt, need_mask, lim, scale_log2, lane);
  // The S accumulators of the two n-tiles are exactly the A fragment of P[:, 0..15].
  const uint32_t pa[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                          pack_bf16(s[1][2], s[1][3])};
#pragma unroll
  for (int dd = 0; dd < HD / 16; ++dd) {
    // Transposed matrices: keys 0-7 × d 0-7, keys 8-15 × d 0-7, keys 0-7 × d 8-15, keys 8-15 × d 8-15.
    const int key = (lane & 7) + (((lane >> 3) & 1) << 3), c = dd * 2 + (lane >> 4);
    uint32_t b0, b1, b2, b3;
    ldsm_x4_t(smem_u32(vb + swz<HD>(key, c)), b0, b1, b2, b3);
    mma_16816(o[2 * dd], pa, b0, b1);
    mma_16816(o[2 * dd + 1], pa, b2, b3);
  }
}

// out row of pair r (4 consecutive dims from d) = acc · inv, in bf16.
template <int HD>
__device__ inline void store_out(const AttentionArgs& a, int q_begin, int group, int kvh, int r, int d, float4 acc,
                                 float inv) {
  const int64_t item = static_cast<int64_t>(q_begin + r / group) * a.num_heads + kvh * group + r % group;
  *reinterpret_cast<uint2*>(a.out + item * HD + d) =
      make_uint2(pack_bf16(acc.x * inv, acc.y * inv), pack_bf16(acc.z * inv, acc.w * inv));
}

__device__ inline float4 fma4(float w, float4 v, float4 acc) {
  return make_float4(fmaf(w, v.x, acc.x), fmaf(w, v.y, acc.y), fmaf(w, v.z, acc.z), fmaf(w, v.w, acc.w));
}

// partial: f32 [items][splits][rows][HD] accumulators, then f32x2 [items][splits][rows] (max, sum),
// items = num_seqs · num_kv_heads (only splits below the item's active count are written).
// counters: u32 [items], zero between launches.
template <int HD>
__global__ void __launch_bounds__(kThreads)
    decode_attention_kernel(AttentionArgs a, DecodeLaunch l, float* partial, uint32_t* counters) {
  using Smem = DecodeSmem<HD>;
  constexpr int kV4 = HD / 4;  // float4 columns of a row
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ float red_m[kWarps][kRows], red_l[kWarps][kRows], inv_total[kRows];
  __shared__ int is_last;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  bf16* sq = reinterpret_cast<bf16*>(smem_raw);
  bf16* sk = reinterpret_cast<bf16*>(smem_raw + Smem::kStageArea) + warp * kStages * 2 * Smem::kTile;
  bf16* sv = sk + kStages * Smem::kTile;
  const int seq = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;

  grid_dependency_wait();  // q, the K/V cache, q_start, kv_len and the tables come from earlier work
  allow_dependents();

  const int group = static_cast<int>(a.num_heads / a.num_kv_heads);
  const int q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int pairs = min(q_len * group, l.rows);
  if (pairs <= 0) return;
  const int kv = a.kv_len[seq];
  const int diag = kv - q_len;                   // query row i sees keys 0..diag + i
  const int tile_end = diag + (pairs - 1) / group + 1;  // keys of the last row
  const int split_len = static_cast<int>(flash::split_len_for(kv, l.splits, kKeys, kMinSplit));
  // Splits holding keys; split 0 always runs, so rows that see no key still get their zeros.
  const int active = max(1, min(l.splits, (tile_end + split_len - 1) / split_len));
  if (split >= active) return;
  const int k_begin = split * split_len;
  const int k_end = max(k_begin, min(tile_end, k_begin + split_len));
  const int mask_from = min(k_end, diag + 1);  // keys from here need the per-row limit
  const float scale_log2 = a.scale * kLog2e;

  for (int idx = threadIdx.x; idx < kRows * (HD / 8); idx += kThreads) {
    const int r = idx / (HD / 8), c = idx % (HD / 8);
    const bool valid = r < pairs;
    const bf16* src = a.q;
    if (valid) src += (static_cast<int64_t>(q_begin + r / group) * a.num_heads + kvh * group + r % group) * HD + c * 8;
    flash::cp_async16(smem_u32(sq + swz<HD>(r, c)), src, valid);
  }
  flash::cp_async_commit();

  // This warp's tiles: block tiles warp, warp + kWarps, …; tile i starts at key tile_key(i).
  const int block_tiles = (k_end - k_begin + kKeys - 1) / kKeys;
  const int my_tiles = block_tiles > warp ? (block_tiles - warp + kWarps - 1) / kWarps : 0;
  const KeySource src{a.k, a.v, a.block_tables + static_cast<int64_t>(seq) * a.max_blocks,
                      static_cast<int>(a.block_size), static_cast<int>(a.num_kv_heads), kvh};
  const uint64_t policy = evict_first_policy();
  auto tile_key = [&](int i) { return k_begin + (warp + i * kWarps) * kKeys; };
  auto page_of = [&](int i) {  // block-table entry of key tile_key(i) + lane % 16
    const int key = tile_key(i) + (lane & 15);
    return i < my_tiles && key < k_end ? __ldg(src.table + key / src.block_size) : 0;
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < my_tiles)
      load_tile<HD>(src, sk + i * Smem::kTile, sv + i * Smem::kTile, tile_key(i), k_end, page_of(i), lane, policy);
    flash::cp_async_commit();
  }
  int next_page = page_of(kStages - 1);  // looked up one tile ahead of its copy

  // This thread's two rows of the 16: r_lo = lane / 4 and r_lo + 8 (the C fragment's rows).
  const int r_lo = lane >> 2;
  int lim[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) lim[h] = min(k_end, diag + (r_lo + 8 * h) / group + 1);

  cp_async_wait<kStages - 1>();  // the Q group (committed first) has landed
  __syncthreads();
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    const int r = lane & 15, c = kk * 2 + (lane >> 4);
    ldsm_x4(smem_u32(sq + swz<HD>(r, c)), qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
  }
  float o[HD / 8][4];
#pragma unroll
  for (int d = 0; d < HD / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};

  for (int i = 0; i < my_tiles; ++i) {
    // Groups so far: Q, then one per tile 0..i + kStages − 2: tile i is done when at most
    // kStages − 2 newer groups are pending. The warp barrier publishes every lane's copies and
    // retires the reads of the stage the next copy overwrites (tile i − 1's).
    cp_async_wait<kStages - 2>();
    __syncwarp();
    const int j = i + kStages - 1;
    if (j < my_tiles) {
      const int st = j % kStages;
      load_tile<HD>(src, sk + st * Smem::kTile, sv + st * Smem::kTile, tile_key(j), k_end, next_page, lane, policy);
      next_page = page_of(j + 1);
    }
    flash::cp_async_commit();
    const int st = i % kStages;
    attend_tile<HD>(qf, sk + st * Smem::kTile, sv + st * Smem::kTile, tile_key(i), mask_from, lim, scale_log2, lane, o,
                    m, lsum);
  }
  cp_async_wait<0>();
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    lsum[h] += __shfl_xor_sync(0xffffffffu, lsum[h], 1);
    lsum[h] += __shfl_xor_sync(0xffffffffu, lsum[h], 2);
  }

  // Merge the warps: each writes its rows' (o, m, lsum) over the stage area, which every warp is
  // done reading after this barrier.
  __syncthreads();
  float* red_o = reinterpret_cast<float*>(smem_raw + Smem::kStageArea);  // [kWarps][16][HD + 8]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r_lo + 8 * h;
    if (r >= pairs) continue;
    float* dst = red_o + (warp * kRows + r) * Smem::kRedStride + 2 * (lane & 3);
#pragma unroll
    for (int d = 0; d < HD / 8; ++d)
      *reinterpret_cast<float2*>(dst + d * 8) = make_float2(o[d][2 * h], o[d][2 * h + 1]);
    if ((lane & 3) == 0) {
      red_m[warp][r] = m[h];
      red_l[warp][r] = lsum[h];
    }
  }
  __syncthreads();
  const int64_t item = static_cast<int64_t>(seq) * a.num_kv_heads + kvh;
  const int64_t items = a.num_seqs * a.num_kv_heads;
  float* part_o = partial + (item * l.splits * l.rows) * HD;  // split z, pair r: + (z · rows + r) · HD
  float2* part_ml = reinterpret_cast<float2*>(partial + items * l.splits * l.rows * HD) + item * l.splits * l.rows;
  for (int idx = threadIdx.x; idx < pairs * kV4; idx += kThreads) {
    const int r = idx / kV4, d = (idx % kV4) * 4;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, red_m[w][r]);
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float wt = red_m[w][r] == -INFINITY ? 0.0f : exp2f(red_m[w][r] - mx);
      acc = fma4(wt, *reinterpret_cast<const float4*>(red_o + (w * kRows + r) * Smem::kRedStride + d), acc);
      total = fmaf(wt, red_l[w][r], total);
    }
    if (active == 1) {
      store_out<HD>(a, q_begin, group, kvh, r, d, acc, total > 0.0f ? 1.0f / total : 0.0f);
    } else {
      *reinterpret_cast<float4*>(part_o + (split * l.rows + r) * HD + d) = acc;
      if (d == 0) part_ml[split * l.rows + r] = make_float2(mx, total);
    }
  }
  if (active == 1) return;

  // The last of the item's active blocks to get here merges every split (classic threadfence
  // reduction: writes, fence, counter; the last one resets the counter for the next launch).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint32_t done = atomicAdd(counters + item, 1u);
    is_last = done == static_cast<uint32_t>(active - 1);
    if (is_last) counters[item] = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  float* weights = reinterpret_cast<float*>(smem_raw + Smem::kWeights);  // [16][kMaxSplits]
  for (int r = warp; r < pairs; r += kWarps) {
    float mx = -INFINITY;
    for (int z = lane; z < active; z += 32) mx = fmaxf(mx, __ldcg(part_ml + z * l.rows + r).x);
    mx = warp_max(mx);
    float total = 0.0f;
    for (int z = lane; z < active; z += 32) {
      const float2 ml = __ldcg(part_ml + z * l.rows + r);
      const float wt = ml.x == -INFINITY ? 0.0f : exp2f(ml.x - mx);
      weights[r * kMaxSplits + z] = wt;
      total = fmaf(wt, ml.y, total);
    }
    total = warp_sum(total);
    if (lane == 0) inv_total[r] = total > 0.0f ? 1.0f / total : 0.0f;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < pairs * kV4; idx += kThreads) {
    const int r = idx / kV4, d = (idx % kV4) * 4;
    const float* src_o = part_o + r * HD + d;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
    for (int z = 0; z < active; ++z)
      acc = fma4(weights[r * kMaxSplits + z], __ldcg(reinterpret_cast<const float4*>(src_o + z * l.rows * HD)), acc);
    store_out<HD>(a, q_begin, group, kvh, r, d, acc, inv_total[r]);
  }
}

// Resident blocks per SM of the kernel (host side, once per head_dim: also opts in to its dynamic
// shared memory, so the first call must come before a graph capture, as for the flash kernels).
template <int HD>
int decode_blocks_per_sm() {
  static const int blocks = [] {
    constexpr int kSmem = DecodeSmem<HD>::kBytes;
    CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    int n = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_attention_kernel<HD>, kThreads, kSmem));
    return std::max(n, 1);
  }();
  return blocks;
}

// Splits per (sequence, KV head): the count with the least estimated time when every sequence had
// max_kv_len keys, waves(s) · (keys / s + kBlockCostKeys), ties to fewer splits. One sequence on
// 132 SMs × 2 blocks: 33 splits (one full wave); 64 sequences: 1 (512 blocks, two waves).
DecodeLaunch decode_plan(const AttentionArgs& a, int num_sms) {
  DecodeLaunch l;
  const int64_t group = a.num_heads / a.num_kv_heads;
  l.rows = static_cast<int>(std::min<int64_t>(kRows, a.max_q_len * group));
  const int per_sm = a.head_dim == 64 ? decode_blocks_per_sm<64>() : decode_blocks_per_sm<128>();
  const int64_t items = a.num_seqs * a.num_kv_heads, slots = static_cast<int64_t>(per_sm) * num_sms;
  const int64_t keys = std::max<int64_t>(1, a.max_kv_len);
  const int64_t max_splits = std::min<int64_t>(kMaxSplits, (keys + kMinSplit - 1) / kMinSplit);
  int64_t best_cost = 0;
  for (int64_t s = 1; s <= max_splits; ++s) {
    const int64_t waves = (items * s + slots - 1) / slots;
    const int64_t cost = waves * ((keys + s - 1) / s + kBlockCostKeys);
    if (s == 1 || cost < best_cost) {
      best_cost = cost;
      l.splits = static_cast<int>(s);
    }
  }
  return l;
}

template <int HD>
void launch_decode_t(const AttentionArgs& a, const DecodeLaunch& l, float* workspace, uint32_t* counters, bool pdl,
                     cudaStream_t s) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned int>(a.num_seqs), static_cast<unsigned int>(a.num_kv_heads),
                        static_cast<unsigned int>(l.splits));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = DecodeSmem<HD>::kBytes;
  config.stream = s;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = pdl ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&config, decode_attention_kernel<HD>, a, l, workspace, counters));
}

}  // namespace

bool decode_attention_fits(const AttentionArgs& a) {
  if (!a.causal || a.block_tables == nullptr || a.block_size <= 0) return false;
  if (a.head_dim != 64 && a.head_dim != 128) return false;
  if (a.max_q_len < 1 || a.max_q_len * (a.num_heads / a.num_kv_heads) > kRows) return false;
  for (const void* p : {static_cast<const void*>(a.q), static_cast<const void*>(a.k), static_cast<const void*>(a.v),
                        static_cast<const void*>(a.out)})
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

int64_t decode_attention_workspace_floats(const AttentionArgs& a, int num_sms) {
  const DecodeLaunch l = decode_plan(a, num_sms);
  return l.splits == 1 ? 0 : a.num_seqs * a.num_kv_heads * l.splits * l.rows * (a.head_dim + 2);
}

int64_t decode_attention_counters(const AttentionArgs& a) { return a.num_seqs * a.num_kv_heads; }

void launch_decode_attention(const AttentionArgs& a, float* workspace, uint32_t* counters, int num_sms, bool pdl,
                             cudaStream_t s) {
  if (a.total_rows == 0 || a.num_seqs == 0) return;
  const DecodeLaunch l = decode_plan(a, num_sms);
  if (a.head_dim == 64) {
    launch_decode_t<64>(a, l, workspace, counters, pdl, s);
  } else {
    launch_decode_t<128>(a, l, workspace, counters, pdl, s);
  }
}

}  // namespace pixtral::backend::cuda
