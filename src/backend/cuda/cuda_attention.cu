// Attention on CUDA cores, fp32 math, one kernel for both ops:
//  - paged (causal over the paged KV cache, GQA; prefill chunks and decode alike),
//  - varlen (bidirectional within each packed segment; the vision encoder).
// A block takes a tile of (query row, head) "pairs" that share one KV head (rows_per_tile rows ×
// the GQA group, at most kMaxPairs), streams keys in tiles of kKeyTile through shared memory and
// keeps an online softmax (base-2 exponent, q pre-scaled by scale·log2 e) per pair. For short
// query tiles (decode) the key range is split over gridDim.z blocks; a second kernel combines the
// partial (acc, max, sum) triples. The split length is derived on the device from the sequence's
// real kv_len (flash::split_len_for), so a launch sized for the cache capacity (a CUDA graph) does
// work proportional to the real context: splits past it exit at once and the combine reads only
// the splits that exist.
// head_dim 64 and 128 with 16-byte aligned tensors take a tensor-core kernel instead:
// cuda_attention_prefill.cuh when a sequence has more than 16 (row, head) pairs (prefill, vision),
// else cuda_attention_flash.cuh (decode); all share the partial layout and combine_kernel.
// On sm_90a (the default when the device and the build have it; PIXTRAL_CUDA_ATTN=mma32 turns it
// off) the many-rows calls take the wgmma kernel of cuda_attention_wgmma.cuh instead.
#include "backend/cuda/cuda_attention_flash.cuh"
#include "backend/cuda/cuda_attention_prefill.cuh"
#include "backend/cuda/cuda_attention_wgmma.cuh"
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

using flash::warp_max;
using flash::warp_sum;

constexpr int kWarps = 4;
constexpr int kMaxPairs = 32;                   // (row, head) pairs per block
constexpr int kPairsPerWarp = kMaxPairs / kWarps;
constexpr int kKeyTile = 32;                    // one key per lane
constexpr int kMaxHd = 128;
constexpr int kSlots = kMaxHd / 32;             // output dims per lane: lane + 32·i
constexpr float kLog2e = 1.4426950408889634f;

struct Launch {
  int64_t rows_per_tile = 1, tiles_per_seq = 1, splits = 1, min_split = 0;
};
constexpr int64_t kMinSplit = 256;      // keys per split, at least (CUDA-core and 4-warp kernels)
constexpr int64_t kMinSplitDecode = 64;  // 1-warp (decode) tensor-core kernel: short latency-bound splits

// Row of the K/V storage that holds key j of the block's sequence.
__device__ inline int64_t key_row(const AttentionArgs& a, int64_t seq, int64_t q_begin, int64_t j) {
  if (a.block_tables == nullptr) return q_begin + j;
  const int64_t block = a.block_tables[seq * a.max_blocks + j / a.block_size];
  return block * a.block_size + j % a.block_size;
}

struct Smem {
  float q[kMaxPairs][kMaxHd];            // pre-scaled queries
  float k[kKeyTile][kMaxHd + 4];         // padded: conflict-free float4 reads by key
  bf16 v[kKeyTile][kMaxHd];
};

// Loads keys [kt, kt + kKeyTile) ∩ [.., key_end) of KV head kvh into shared memory (zeros past the end).
__device__ void load_kv_tile(const AttentionArgs& a, Smem& sm, int64_t seq, int64_t q_begin, int64_t kvh,
                             int64_t kt, int64_t key_end) {
  const int64_t hd = a.head_dim, quads = hd / 4;
  for (int64_t idx = threadIdx.x; idx < kKeyTile * quads; idx += blockDim.x) {
    const int64_t j = idx / quads, d = (idx % quads) * 4;
    uint2 kq = make_uint2(0, 0), vq = make_uint2(0, 0);
    if (kt + j < key_end) {
      const int64_t off = (key_row(a, seq, q_begin, kt + j) * a.num_kv_heads + kvh) * hd + d;
      kq = *reinterpret_cast<const uint2*>(a.k + off);
      vq = *reinterpret_cast<const uint2*>(a.v + off);
    }
    const auto* k2 = reinterpret_cast<const __nv_bfloat162*>(&kq);
    const float2 k01 = __bfloat1622float2(k2[0]), k23 = __bfloat1622float2(k2[1]);
    *reinterpret_cast<float4*>(&sm.k[j][d]) = make_float4(k01.x, k01.y, k23.x, k23.y);
    *reinterpret_cast<uint2*>(&sm.v[j][d]) = vq;
  }
}

__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a, Launch l, float* partial) {
  __shared__ __align__(16) Smem sm;
  const int64_t seq = blockIdx.x / l.tiles_per_seq, tile = blockIdx.x % l.tiles_per_seq;
  const int64_t kvh = blockIdx.y, split = blockIdx.z, hd = a.head_dim;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int64_t row0 = tile * l.rows_per_tile;
  if (row0 >= q_len) return;
  const int64_t kv = a.causal ? a.kv_len[seq] : q_len;
  const int64_t rows_here = min(l.rows_per_tile, q_len - row0);
  const int64_t pairs = rows_here * group;
  const int64_t tile_end = a.causal ? kv - q_len + row0 + rows_here : kv;  // exclusive
  const int64_t split_len = flash::split_len_for(kv, l.splits, kKeyTile, l.min_split);
  const int64_t k_begin = split * split_len;
  if (k_begin >= tile_end) return;  // no work; combine_kernel does not read this split
  const int64_t k_end = min(tile_end, k_begin + split_len);
  const float qscale = a.scale * kLog2e;

  for (int64_t idx = threadIdx.x; idx < pairs * hd; idx += blockDim.x) {
    const int64_t p = idx / hd, d = idx % hd;
    const int64_t row = q_begin + row0 + p / group, head = kvh * group + p % group;
    sm.q[p][d] = __bfloat162float(a.q[(row * a.num_heads + head) * hd + d]) * qscale;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float m[kPairsPerWarp], lsum[kPairsPerWarp], acc[kPairsPerWarp][kSlots], s[kPairsPerWarp];
#pragma unroll
  for (int pp = 0; pp < kPairsPerWarp; ++pp) {
    m[pp] = -INFINITY;
    lsum[pp] = 0.0f;
#pragma unroll
    for (int i = 0; i < kSlots; ++i) acc[pp][i] = 0.0f;
  }
  const int my_pairs = static_cast<int>((pairs - warp + kWarps - 1) / kWarps);  // pairs warp + kWarps·pp

  for (int64_t kt = k_begin; kt < k_end; kt += kKeyTile) {
    __syncthreads();
    load_kv_tile(a, sm, seq, q_begin, kvh, kt, k_end);
    __syncthreads();
#pragma unroll
    for (int pp = 0; pp < kPairsPerWarp; ++pp) s[pp] = 0.0f;
    for (int64_t d = 0; d < hd; d += 4) {
      const float4 k4 = *reinterpret_cast<const float4*>(&sm.k[lane][d]);
#pragma unroll
      for (int pp = 0; pp < kPairsPerWarp; ++pp) {
        if (pp < my_pairs) {
          const float4 q4 = *reinterpret_cast<const float4*>(&sm.q[warp + kWarps * pp][d]);
          s[pp] += q4.x * k4.x + q4.y * k4.y + q4.z * k4.z + q4.w * k4.w;
        }
      }
    }
#pragma unroll
    for (int pp = 0; pp < kPairsPerWarp; ++pp) {
      if (pp >= my_pairs) continue;
      const int64_t p = warp + kWarps * pp;
      const int64_t limit = a.causal ? min(k_end, kv - q_len + row0 + p / group + 1) : k_end;
      const float sc = kt + lane < limit ? s[pp] : -INFINITY;
      const float m_new = fmaxf(m[pp], warp_max(sc));
      if (m_new == -INFINITY) {  // every key of this tile is masked for this pair
        s[pp] = 0.0f;
        continue;
      }
      const float corr = exp2f(m[pp] - m_new);
      s[pp] = exp2f(sc - m_new);
      lsum[pp] = lsum[pp] * corr + warp_sum(s[pp]);
      m[pp] = m_new;
#pragma unroll
      for (int i = 0; i < kSlots; ++i) acc[pp][i] *= corr;
    }
    for (int j = 0; j < kKeyTile; ++j) {
      float vj[kSlots];
#pragma unroll
      for (int i = 0; i < kSlots; ++i) vj[i] = lane + 32 * i < hd ? __bfloat162float(sm.v[j][lane + 32 * i]) : 0.0f;
#pragma unroll
      for (int pp = 0; pp < kPairsPerWarp; ++pp) {
        if (pp >= my_pairs) continue;
        const float pj = __shfl_sync(0xffffffffu, s[pp], j);
#pragma unroll
        for (int i = 0; i < kSlots; ++i) acc[pp][i] = fmaf(pj, vj[i], acc[pp][i]);
      }
    }
  }

#pragma unroll
  for (int pp = 0; pp < kPairsPerWarp; ++pp) {
    if (pp >= my_pairs) continue;
    const int64_t p = warp + kWarps * pp;
    const int64_t row = q_begin + row0 + p / group, head = kvh * group + p % group;
    if (l.splits == 1) {
      const float inv = lsum[pp] > 0.0f ? 1.0f / lsum[pp] : 0.0f;
      bf16* o = a.out + (row * a.num_heads + head) * hd;
#pragma unroll
      for (int i = 0; i < kSlots; ++i)
        if (lane + 32 * i < hd) o[lane + 32 * i] = __float2bfloat16_rn(acc[pp][i] * inv);
    } else {
      float* w = partial + ((row * a.num_heads + head) * l.splits + split) * (hd + 2);
#pragma unroll
      for (int i = 0; i < kSlots; ++i)
        if (lane + 32 * i < hd) w[lane + 32 * i] = acc[pp][i];
      if (lane == 0) {
        w[hd] = m[pp];
        w[hd + 1] = lsum[pp];
      }
    }
  }
}

// One warp per (row, head): out = Σ_z 2^(m_z − M)·acc_z / Σ_z 2^(m_z − M)·l_z over the splits
// that hold keys of this row (recomputed from device kv_len exactly as the attention kernels split
// it; the others were never written). Lane z holds split z's max and sum (shuffle reductions, no
// block barrier), then each lane sums two dimensions per 64 over the splits (8-byte loads: a
// split's record is hd + 2 floats; four splits' loads in flight at once). Rows outside every
// sequence are left as is. (A block per item with block-wide reductions ran 31.7 us for the
// 17,376 items of a 512-token chunk next to 31 decodes: latency-bound chains of dependent loads,
// 8 waves of tiny blocks.)
constexpr int kCombineWarps = 8;
constexpr int kMaxSplits = 128;
__global__ void __launch_bounds__(kCombineWarps * 32)
    combine_kernel(AttentionArgs a, int64_t splits, int64_t tile, int64_t min_split, const float* partial) {
  const int lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kCombineWarps + (threadIdx.x >> 5), hd = a.head_dim;
  const int64_t row = item / a.num_heads;
  if (row >= a.total_rows || row < a.q_start[0] || row >= a.q_start[a.num_seqs]) return;  // another call's row
  int64_t lo = 0, hi = a.num_seqs - 1;  // the sequence of this row: last s with q_start[s] <= row
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (a.q_start[mid] <= row) lo = mid; else hi = mid - 1;
  }
  const int64_t q_begin = a.q_start[lo], q_len = a.q_start[lo + 1] - q_begin;
  const int64_t kv = a.causal ? a.kv_len[lo] : q_len;
  const int64_t limit = a.causal ? kv - q_len + (row - q_begin) + 1 : kv;  // keys this row sees
  const int64_t split_len = flash::split_len_for(kv, splits, tile, min_split);
  const int64_t used = limit > 0 ? min(splits, (limit + split_len - 1) / split_len) : 0;
  const float* base = partial + item * splits * (hd + 2);
  float mx = -INFINITY;
  for (int64_t z = lane; z < used; z += 32) mx = fmaxf(mx, base[z * (hd + 2) + hd]);
  mx = warp_max(mx);
  float total = 0.0f;
  for (int64_t z = lane; z < used; z += 32) {
    const float mz = base[z * (hd + 2) + hd];
    if (mz != -INFINITY) total += exp2f(mz - mx) * base[z * (hd + 2) + hd + 1];
  }
  total = warp_sum(total);
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
  if (hd % 2 != 0) {  // odd head sizes (tests' tiny models): one dimension per lane
    for (int64_t d = lane; d < hd; d += 32) {
      float v = 0.0f;
      for (int64_t z = 0; z < used; ++z) {
        const float mz = base[z * (hd + 2) + hd];
        if (mz != -INFINITY) v += exp2f(mz - mx) * base[z * (hd + 2) + d];
      }
      a.out[item * hd + d] = __float2bfloat16_rn(v * inv);
    }
    return;
  }
  for (int64_t d = 2 * lane; d < hd; d += 64) {
    // Four splits at a time, their loads issued together (addresses clamped to the last split
    // used, the extra ones weighted 0): one memory round trip per four splits, not two per split.
    float2 v = make_float2(0.0f, 0.0f);
    for (int64_t z0 = 0; z0 < used; z0 += 4) {
      float mz[4];
      float2 acc[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float* r = base + min(z0 + u, used - 1) * (hd + 2);
        mz[u] = r[hd];  // same address across the warp: one broadcast load
        acc[u] = *reinterpret_cast<const float2*>(r + d);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const bool skip = z0 + u >= used || mz[u] == -INFINITY;  // a split with no key of this row
        const float w = skip ? 0.0f : exp2f(mz[u] - mx);
        v.x += skip ? 0.0f : w * acc[u].x;
        v.y += skip ? 0.0f : w * acc[u].y;
      }
    }
    *reinterpret_cast<__nv_bfloat162*>(a.out + item * hd + d) = __floats2bfloat162_rn(v.x * inv, v.y * inv);
  }
}

Launch plan(const AttentionArgs& a, int num_sms) {
  Launch l;
  const int64_t group = a.num_heads / a.num_kv_heads;
  l.rows_per_tile = std::max<int64_t>(1, std::min<int64_t>(a.max_q_len, kMaxPairs / group));
  l.tiles_per_seq = std::max<int64_t>(1, (a.max_q_len + l.rows_per_tile - 1) / l.rows_per_tile);
  const int64_t blocks = a.num_seqs * l.tiles_per_seq * a.num_kv_heads;
  const int64_t max_kv = std::max<int64_t>(1, a.max_kv_len);
  const int64_t want = 4LL * num_sms;  // enough blocks to cover the machine a few times over
  int64_t splits = 1;
  if (blocks < want) splits = std::min<int64_t>((want + blocks - 1) / blocks, (max_kv + kMinSplit - 1) / kMinSplit);
  l.splits = std::clamp<int64_t>(splits, 1, kMaxSplits);
  l.min_split = kMinSplit;
  return l;
}

// ---- tensor-core path -------------------------------------------------------------------------

bool use_flash(const AttentionArgs& a) {
  if (a.head_dim != 64 && a.head_dim != 128) return false;
  for (const void* p : {static_cast<const void*>(a.q), static_cast<const void*>(a.k), static_cast<const void*>(a.v),
                        static_cast<const void*>(a.out)})
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Warps per block: one (16 pairs) when every sequence has at most 16 (row, head) pairs (decode),
// else four. Only host-known bounds enter the plan (the launch must not depend on device data).
int flash_warps(const AttentionArgs& a) {
  return a.max_q_len * (a.num_heads / a.num_kv_heads) <= 16 ? 1 : 4;
}
constexpr int flash_bn(int warps) { return warps == 1 ? 32 : 64; }

flash::FlashLaunch plan_flash(const AttentionArgs& a, int num_sms) {
  flash::FlashLaunch l;
  const int warps = flash_warps(a);
  const int64_t group = a.num_heads / a.num_kv_heads, bm = 16 * warps;
  l.tiles_per_seq = std::max<int64_t>(1, (a.max_q_len * group + bm - 1) / bm);
  const int64_t blocks = a.num_seqs * l.tiles_per_seq * a.num_kv_heads;
  const int64_t max_kv = std::max<int64_t>(1, a.max_kv_len);
  // Enough blocks to fill the machine: small (one-warp) blocks run many per SM.
  const int64_t want = (warps == 1 ? 8LL : 2LL) * num_sms;
  l.min_split = warps == 1 ? kMinSplitDecode : kMinSplit;
  int64_t splits = 1;
  if (blocks < want) splits = std::min<int64_t>((want + blocks - 1) / blocks, (max_kv + l.min_split - 1) / l.min_split);
  l.splits = std::clamp<int64_t>(splits, 1, kMaxSplits);
  return l;
}

// prefill_kernel (PrefillAttention::kMma32) for the many-rows case, when its int key/pair
// arithmetic fits and scale > 0 (the running max is taken on raw scores).
bool use_prefill(const AttentionArgs& a, const AttentionTuning& t) {
  // kWgmma: use_wgmma takes these calls (with an uneven GQA group they stay here).
  return (t.prefill == PrefillAttention::kMma32 || t.prefill == PrefillAttention::kWgmma) && flash_warps(a) == 4 &&
         a.scale > 0.0f && a.max_q_len * a.num_heads < (int64_t{1} << 31) && a.max_kv_len < (int64_t{1} << 31);
}
// Warps of 32 pairs per block: 4 (2 blocks of 4 warps per SM). Measured on the H100 (cuda_bench,
// one layer): head_dim 64 vision 245.6 µs with 4, 390.8 with 8; head_dim 128 causal prefill of
// 4,160 tokens 527.6 µs with 4, 534.0 with 8.
int prefill_warps(const AttentionArgs&, const AttentionTuning& t) { return t.prefill_warps != 0 ? t.prefill_warps : 4; }
// Key tile and ring depth per head_dim. 64: 64-key tiles, 3 stages (16 KiB each). 128: 32-key
// tiles (S for 64 keys next to O's 128 accumulators spills), 4 stages (16 KiB each).
struct PrefillTiles {
  int bn, stages;
};
constexpr PrefillTiles prefill_tiles(int hd) { return hd == 64 ? PrefillTiles{64, 3} : PrefillTiles{32, 4}; }

flash::FlashLaunch plan_prefill(const AttentionArgs& a, const AttentionTuning& t, int num_sms) {
  flash::FlashLaunch l;
  const int64_t group = a.num_heads / a.num_kv_heads, bm = 32 * prefill_warps(a, t);
  l.tiles_per_seq = std::max<int64_t>(1, (a.max_q_len * group + bm - 1) / bm);
  const int64_t blocks = a.num_seqs * l.tiles_per_seq * a.num_kv_heads;
  const int64_t max_kv = std::max<int64_t>(1, a.max_kv_len);
  l.min_split = kMinSplit;
  int64_t splits = 1;
  const int64_t want = 2LL * num_sms;  // 8 warps per SM either way: about two rounds of blocks
  if (blocks < want) splits = std::min<int64_t>((want + blocks - 1) / blocks, (max_kv + l.min_split - 1) / l.min_split);
  l.splits = std::clamp<int64_t>(splits, 1, kMaxSplits);
  return l;
}

template <int HD, int WARPS>
void launch_prefill_t(const AttentionArgs& a, const flash::FlashLaunch& l, float* workspace, cudaStream_t s) {
  constexpr PrefillTiles kTiles = prefill_tiles(HD);
  constexpr int kSmem = flash::prefill_smem_bytes<HD, WARPS, kTiles.bn, kTiles.stages>();
  auto* kernel = flash::prefill_kernel<HD, WARPS, kTiles.bn, kTiles.stages>;
  static const bool configured = [&] {  // > 48 KiB of dynamic shared memory needs an opt-in, once
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    return true;
  }();
  (void)configured;
  // Heaviest first: x = (rank · num_seqs + seq) · num_kv_heads + kvh (prefill_kernel decodes it).
  const dim3 grid(static_cast<unsigned int>(l.tiles_per_seq * a.num_seqs * a.num_kv_heads), 1,
                  static_cast<unsigned int>(l.splits));
  kernel<<<grid, WARPS * 32, kSmem, s>>>(a, l, workspace);
  CUDA_CHECK_LAUNCH();
}

void launch_prefill(const AttentionArgs& a, int warps, const flash::FlashLaunch& l, float* workspace,
                    cudaStream_t s) {
  if (a.head_dim == 64) {
    warps == 4 ? launch_prefill_t<64, 4>(a, l, workspace, s) : launch_prefill_t<64, 8>(a, l, workspace, s);
  } else {
    warps == 4 ? launch_prefill_t<128, 4>(a, l, workspace, s) : launch_prefill_t<128, 8>(a, l, workspace, s);
  }
}

// The wgmma kernel (PrefillAttention::kWgmma) takes every call prefill_kernel would take, when
// the GQA group divides evenly (checked: its pair arithmetic assumes it).
// Paged calls must be causal and varlen ones not (the kernel's two forms; every caller's case).
bool use_wgmma(const AttentionArgs& a, const AttentionTuning& t) {
  return t.prefill == PrefillAttention::kWgmma && use_flash(a) && use_prefill(a, t) &&
         a.num_heads % a.num_kv_heads == 0 && a.causal == (a.block_tables != nullptr);
}
// Ring depth: 2 stages of 128-key K and V tiles next to the Q tile (head_dim 64: 16 + 2 · 32 KiB,
// two blocks per SM; 128: 32 + 2 · 64 KiB, one block per SM).
constexpr int kWgmmaStages = 2;

// Splits for 128-pair tiles, by a cost in key-tile times: s splits run waves(s) = ceil(blocks · s
// / SMs) waves, each of one split's key tiles + 1 (the prologue: Q and the ring's first tile),
// and every split past the first writes and the combine reads one fp32 partial per (row, head):
// 2 · (hd + 2) · 4 bytes per item and split, counted at kPartialBytesPerTile per tile time (half
// the rate the H100 streams at: the partials' stores are scattered and combine_kernel is
// latency-bound). Ties: fewer splits. Measured on the H100 (one layer, `cuda_bench --attention`
// with PIXTRAL_CUDA_ATTN_SPLITS): a 362-row chunk after 4,098 keys ran 125.9 us unsplit against
// 147.0 at the 4 splits of the earlier count (fewest work-waves + 2 % per split), 154.7 at 2;
// the vision layer 173 us unsplit, 250 at 2 splits.
constexpr double kPartialBytesPerTile = 4.0 * (1 << 20);
flash::FlashLaunch plan_wgmma(const AttentionArgs& a, const AttentionTuning& t, int num_sms) {
  flash::FlashLaunch l;
  const int64_t group = a.num_heads / a.num_kv_heads;
  l.tiles_per_seq = std::max<int64_t>(1, (a.max_q_len * group + wgmma::kBm - 1) / wgmma::kBm);
  const int64_t blocks = a.num_seqs * l.tiles_per_seq * a.num_kv_heads;
  const int64_t max_kv = std::max<int64_t>(1, a.max_kv_len);
  l.min_split = kMinSplit;
  const int64_t most = std::clamp<int64_t>((max_kv + l.min_split - 1) / l.min_split, 1, 16);
  const double partial_tiles =
      2.0 * static_cast<double>(a.total_rows * a.num_heads * (a.head_dim + 2)) * sizeof(float) / kPartialBytesPerTile;
  double best = 0.0;
  l.splits = 1;
  for (int64_t s = 1; s <= most; ++s) {
    const int64_t waves = (blocks * s + num_sms - 1) / num_sms;
    const int64_t tiles = flash::split_len_for(max_kv, s, wgmma::kBn, l.min_split) / wgmma::kBn;
    const double cost = static_cast<double>(waves * (tiles + 1)) + (s > 1 ? static_cast<double>(s) * partial_tiles : 0.0);
    if (s == 1 || cost < best - 1e-9) {
      best = cost;
      l.splits = s;
    }
  }
  if (t.wgmma_splits > 0) l.splits = std::min<int64_t>(t.wgmma_splits, most);
  return l;
}

template <int HD, bool PAGED>
void launch_wgmma_t(const AttentionArgs& a, const flash::FlashLaunch& l, float* workspace, cudaStream_t s) {
  constexpr int kSmem = wgmma::smem_bytes<HD, kWgmmaStages>();
  auto* kernel = wgmma::attention_kernel<HD, kWgmmaStages, PAGED>;
  static const bool configured = [&] {  // > 48 KiB of dynamic shared memory needs an opt-in, once
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned int>(l.tiles_per_seq * a.num_seqs * a.num_kv_heads), 1,
                  static_cast<unsigned int>(l.splits));
  kernel<<<grid, wgmma::kThreads, kSmem, s>>>(a, l, workspace);
  CUDA_CHECK_LAUNCH();
}

void launch_wgmma(const AttentionArgs& a, const flash::FlashLaunch& l, float* workspace, cudaStream_t s) {
  const bool paged = a.block_tables != nullptr;
  if (a.head_dim == 64)
    paged ? launch_wgmma_t<64, true>(a, l, workspace, s) : launch_wgmma_t<64, false>(a, l, workspace, s);
  else
    paged ? launch_wgmma_t<128, true>(a, l, workspace, s) : launch_wgmma_t<128, false>(a, l, workspace, s);
}

template <int HD, int WARPS>
void launch_flash_t(const AttentionArgs& a, const flash::FlashLaunch& l, float* workspace, cudaStream_t s) {
  constexpr int kBn = flash_bn(WARPS);
  constexpr int kSmem = flash::smem_bytes<HD, WARPS, kBn>();
  auto* kernel = flash::flash_kernel<HD, WARPS, kBn>;
  static const bool configured = [&] {  // > 48 KiB of dynamic shared memory needs an opt-in, once
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    return true;
  }();
  (void)configured;
  const dim3 grid(static_cast<unsigned int>(a.num_seqs * l.tiles_per_seq), static_cast<unsigned int>(a.num_kv_heads),
                  static_cast<unsigned int>(l.splits));
  kernel<<<grid, WARPS * 32, kSmem, s>>>(a, l, workspace);
  CUDA_CHECK_LAUNCH();
}

void launch_flash(const AttentionArgs& a, const flash::FlashLaunch& l, float* workspace, cudaStream_t s) {
  const bool one = flash_warps(a) == 1;
  if (a.head_dim == 64) {
    one ? launch_flash_t<64, 1>(a, l, workspace, s) : launch_flash_t<64, 4>(a, l, workspace, s);
  } else {
    one ? launch_flash_t<128, 1>(a, l, workspace, s) : launch_flash_t<128, 4>(a, l, workspace, s);
  }
}

}  // namespace

bool wgmma_attention_supported(int device) {
#if defined(PIXTRAL_CUDA_SM90A)
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major == 9 && minor == 0;
#else
  (void)device;
  return false;
#endif
}

int64_t attention_workspace_floats(const AttentionArgs& a, const AttentionTuning& t, int num_sms) {
  const int64_t splits = !use_flash(a)      ? plan(a, num_sms).splits
                         : use_wgmma(a, t)   ? plan_wgmma(a, t, num_sms).splits
                         : use_prefill(a, t) ? plan_prefill(a, t, num_sms).splits
                                             : plan_flash(a, num_sms).splits;
  return splits == 1 ? 0 : a.total_rows * a.num_heads * splits * (a.head_dim + 2);
}

void launch_attention(const AttentionArgs& a, const AttentionTuning& t, float* workspace, int num_sms,
                      cudaStream_t s) {
  if (a.total_rows == 0 || a.num_seqs == 0) return;
  int64_t splits = 1, tile = kKeyTile, min_split = kMinSplit;
  if (use_wgmma(a, t)) {
    const flash::FlashLaunch l = plan_wgmma(a, t, num_sms);
    launch_wgmma(a, l, workspace, s);
    splits = l.splits;
    tile = wgmma::kBn;
    min_split = l.min_split;
  } else if (use_flash(a) && use_prefill(a, t)) {
    const flash::FlashLaunch l = plan_prefill(a, t, num_sms);
    launch_prefill(a, prefill_warps(a, t), l, workspace, s);
    splits = l.splits;
    tile = prefill_tiles(static_cast<int>(a.head_dim)).bn;
    min_split = l.min_split;
  } else if (use_flash(a)) {
    const flash::FlashLaunch l = plan_flash(a, num_sms);
    launch_flash(a, l, workspace, s);
    splits = l.splits;
    tile = flash_bn(flash_warps(a));
    min_split = l.min_split;
  } else {
    const Launch l = plan(a, num_sms);
    const dim3 grid(static_cast<unsigned int>(a.num_seqs * l.tiles_per_seq),
                    static_cast<unsigned int>(a.num_kv_heads), static_cast<unsigned int>(l.splits));
    attention_kernel<<<grid, kWarps * 32, 0, s>>>(a, l, workspace);
    CUDA_CHECK_LAUNCH();
    splits = l.splits;
  }
  if (splits > 1) {
    const int64_t items = a.total_rows * a.num_heads;
    combine_kernel<<<static_cast<unsigned int>((items + kCombineWarps - 1) / kCombineWarps), kCombineWarps * 32, 0,
                     s>>>(a, splits, tile, min_split, workspace);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace pixtral::backend::cuda
