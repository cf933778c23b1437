// Tensor-core attention (FlashAttention-2 style) for head_dim 64 and 128, included by
// cuda_attention.cu. Same semantics and (row, head) "pair" packing as the CUDA-core kernel there:
// a block owns BM = 16·WARPS pairs that share one KV head (query rows × the GQA group, so K/V
// tiles are read once per group), streams BN-key tiles of K and V through a 2-stage cp.async
// pipeline in swizzled shared memory, computes S = Q·Kᵀ and O += P·V with bf16 mma.sync
// m16n8k16 (fp32 accumulation) and keeps an fp32 online softmax (base 2). Each warp owns 16
// pairs. With gridDim.z > 1 the key range is split and the partial (acc, max, sum) triples go to
// the workspace for combine_kernel; a split past the sequence's real kv_len (read from device
// memory) exits at once, so a launch sized for a larger max_kv_len stays correct and cheap.
#pragma once

#include "backend/cuda/cuda_mma.cuh"

namespace pixtral::backend::cuda::flash {

struct FlashLaunch {
  int64_t tiles_per_seq = 1, splits = 1, min_split = 0;
};

// Keys per split of a sequence with kv keys: the launch's `splits` spread over the real context
// (read from device memory, so a graph launched for the cache capacity splits a short context
// finely), at least min_len, a multiple of the key tile. The attention kernels and combine_kernel
// compute it identically: the combine reads exactly the splits that hold work.
__host__ __device__ inline int64_t split_len_for(int64_t kv, int64_t splits, int64_t tile, int64_t min_len) {
  int64_t len = (kv + splits - 1) / splits;
  len = len > min_len ? len : min_len;
  return (len + tile - 1) / tile * tile;
}

using mma::cp_async16;
using mma::cp_async_commit;
using mma::cp_async_wait;
using mma::cp_async_wait_all;
using mma::ldsm_x4;
using mma::ldsm_x4_t;
using mma::mma_16816;
using mma::pack_bf16;
using mma::smem_u32;
using mma::swz;

// Maximum / sum over the 32 lanes of a warp (every lane gets the result).
__device__ inline float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The online-softmax step of one m16 row tile over NT n-tiles of 8 keys starting at key kt (the
// mma.sync C layout: this lane holds rows lane/4 (h = 0) and lane/4 + 8 (h = 1), keys
// 2·(lane % 4) and +1 of each n-tile): S scaled to base 2, keys ≥ lim[h] masked when need_mask, the
// rows' running maxima m updated across the quad, S ← 2^(S − max), the quad-partial sums lsum and
// the DT output accumulator tiles o rescaled by 2^(m_old − m_new). Shared by the flash and decode
// kernels (the many-rows prefill kernel keeps its own two-tile form).
template <int NT, int DT, typename Index>
__device__ __forceinline__ void online_softmax_step(float (&s)[NT][4], float (&o)[DT][4], float (&m)[2],
                                                    float (&lsum)[2], Index kt, bool need_mask, const Index (&lim)[2],
                                                    float scale_log2, int lane) {
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float v = s[n][e] * scale_log2;
      if (need_mask && kt + n * 8 + 2 * (lane & 3) + (e & 1) >= lim[e >> 1]) v = -INFINITY;
      s[n][e] = v;
      mx[e >> 1] = fmaxf(mx[e >> 1], v);
    }
  float corr[2], base[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    const float m_new = fmaxf(m[h], mx[h]);
    base[h] = m_new == -INFINITY ? 0.0f : m_new;  // a fully masked row so far: exp2(−inf) = 0
    corr[h] = exp2f(m[h] - base[h]);
    m[h] = m_new;
  }
  float rs[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[n][e] = exp2f(s[n][e] - base[e >> 1]);
      rs[e >> 1] += s[n][e];
    }
#pragma unroll
  for (int h = 0; h < 2; ++h) lsum[h] = lsum[h] * corr[h] + rs[h];  // quad-partial sums; reduced at the end
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    o[d][0] *= corr[0];
    o[d][1] *= corr[0];
    o[d][2] *= corr[1];
    o[d][3] *= corr[1];
  }
}

template <int HD, int BN>
__device__ inline void load_kv_tile(const AttentionArgs& a, bf16* sk, bf16* sv, int64_t seq, int64_t q_begin, int kvh,
                                    int64_t kt, int64_t k_end, int threads) {
  constexpr int CH = HD / 8;
  for (int idx = threadIdx.x; idx < BN * CH; idx += threads) {
    const int j = idx / CH, c = idx % CH;
    const int64_t key = kt + j;
    const bool valid = key < k_end;
    const bf16* ks = a.k;
    const bf16* vs = a.v;
    if (valid) {
      int64_t row = q_begin + key;
      if (a.block_tables != nullptr)
        row = static_cast<int64_t>(a.block_tables[seq * a.max_blocks + key / a.block_size]) * a.block_size +
              key % a.block_size;
      const int64_t off = (row * a.num_kv_heads + kvh) * HD + c * 8;
      ks += off;
      vs += off;
    }
    cp_async16(smem_u32(sk + swz<HD>(j, c)), ks, valid);
    cp_async16(smem_u32(sv + swz<HD>(j, c)), vs, valid);
  }
}

template <int HD, int WARPS, int BN>
constexpr int smem_bytes() {
  return (16 * WARPS * HD + 4 * BN * HD) * 2;
}

template <int HD, int WARPS, int BN>
__global__ void __launch_bounds__(WARPS * 32) flash_kernel(AttentionArgs a, FlashLaunch l, float* partial) {
  constexpr int BM = 16 * WARPS, CH = HD / 8, THREADS = WARPS * 32;
  constexpr int NT = BN / 8, DT = HD / 8;  // 8-wide n-tiles of S and of O
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sq = reinterpret_cast<bf16*>(smem_raw);  // [BM][HD]
  bf16* sk = sq + BM * HD;                       // [2][BN][HD]
  bf16* sv = sk + 2 * BN * HD;                   // [2][BN][HD]

  // Heaviest (last, causal) tiles first: they start early and the tail is short.
  const int64_t seq = blockIdx.x / l.tiles_per_seq;
  const int64_t tile = l.tiles_per_seq - 1 - blockIdx.x % l.tiles_per_seq;
  const int kvh = blockIdx.y;
  const int64_t split = blockIdx.z;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int64_t pairs = q_len * group, p0 = tile * BM;
  if (p0 >= pairs) return;
  const int64_t kv = a.causal ? a.kv_len[seq] : q_len;
  const int64_t diag = kv - q_len;  // causal: query row i sees keys 0..diag + i
  const int64_t first_row = p0 / group, last_row = (min(pairs, p0 + BM) - 1) / group;
  const int64_t tile_end = a.causal ? diag + last_row + 1 : kv;
  const int64_t split_len = split_len_for(kv, l.splits, BN, l.min_split);
  const int64_t k_begin = split * split_len;
  // Splits past this tile's keys have no work and write nothing: combine_kernel stops at the last
  // split below each row's own key limit, which is at most tile_end.
  if (k_begin >= tile_end) return;
  const int64_t k_end = min(tile_end, k_begin + split_len);
  // Keys at or past this need the per-row mask (causal diagonal or the end of the range).
  const int64_t mask_from = min(k_end, a.causal ? diag + first_row + 1 : kv);
  const int64_t n_tiles = k_end > k_begin ? (k_end - k_begin + BN - 1) / BN : 0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float scale_log2 = a.scale * kLog2e;

  for (int idx = threadIdx.x; idx < BM * CH; idx += THREADS) {
    const int r = idx / CH, c = idx % CH;
    const int64_t p = p0 + r;
    const bool valid = p < pairs;
    const bf16* src = a.q;
    if (valid) src += ((q_begin + p / group) * a.num_heads + kvh * group + p % group) * HD + c * 8;
    cp_async16(smem_u32(sq + swz<HD>(r, c)), src, valid);
  }
  if (n_tiles > 0) load_kv_tile<HD, BN>(a, sk, sv, seq, q_begin, kvh, k_begin, k_end, THREADS);
  cp_async_commit();

  // This thread's two rows of the warp's 16: r_lo = lane / 4 and r_lo + 8.
  const int r_lo = warp * 16 + (lane >> 2);
  int64_t lim[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = (p0 + r_lo + 8 * h) / group;
    lim[h] = min(k_end, a.causal ? diag + row + 1 : kv);
  }

  uint32_t qf[HD / 16][4];
  float o[DT][4];
#pragma unroll
  for (int d = 0; d < DT; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};

  for (int64_t t = 0; t < n_tiles; ++t) {
    cp_async_wait_all();
    __syncthreads();
    if (t == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        const int r = warp * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
        ldsm_x4(smem_u32(sq + swz<HD>(r, c)), qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
      }
    }
    // Prefetch the next tile into the other buffer (everyone finished reading it: barrier above).
    if (t + 1 < n_tiles)
      load_kv_tile<HD, BN>(a, sk + ((t + 1) & 1) * BN * HD, sv + ((t + 1) & 1) * BN * HD, seq, q_begin, kvh,
                           k_begin + (t + 1) * BN, k_end, THREADS);
    cp_async_commit();
    const bf16* kb = sk + (t & 1) * BN * HD;
    const bf16* vb = sv + (t & 1) * BN * HD;

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
      for (int nn = 0; nn < NT / 2; ++nn) {
        // Matrices: keys 0-7 × d 0-7, keys 0-7 × d 8-15, keys 8-15 × d 0-7, keys 8-15 × d 8-15.
        const int key = nn * 16 + (lane & 7) + ((lane >> 4) << 3), c = kk * 2 + ((lane >> 3) & 1);
        uint32_t b0, b1, b2, b3;
        ldsm_x4(smem_u32(kb + swz<HD>(key, c)), b0, b1, b2, b3);
        mma_16816(s[2 * nn], qf[kk], b0, b1);
        mma_16816(s[2 * nn + 1], qf[kk], b2, b3);
      }
    }

    const int64_t kt = k_begin + t * BN;
    const bool need_mask = kt + BN > mask_from;
    online_softmax_step(s, o, m, lsum, kt, need_mask, lim, scale_log2, lane);

#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      // The S accumulators of n-tiles 2kk, 2kk+1 are exactly the A fragment of P[:, 16kk..16kk+15].
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dd = 0; dd < HD / 16; ++dd) {
        // Transposed matrices: keys 0-7 × d 0-7, keys 8-15 × d 0-7, keys 0-7 × d 8-15, keys 8-15 × d 8-15.
        const int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), c = dd * 2 + (lane >> 4);
        uint32_t b0, b1, b2, b3;
        ldsm_x4_t(smem_u32(vb + swz<HD>(key, c)), b0, b1, b2, b3);
        mma_16816(o[2 * dd], pa, b0, b1);
        mma_16816(o[2 * dd + 1], pa, b2, b3);
      }
    }
  }
  cp_async_wait_all();  // n_tiles == 0: the Q copies are still in flight

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    lsum[h] += __shfl_xor_sync(0xffffffffu, lsum[h], 1);
    lsum[h] += __shfl_xor_sync(0xffffffffu, lsum[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t p = p0 + r_lo + 8 * h;
    if (p >= pairs) continue;
    const int64_t item = (q_begin + p / group) * a.num_heads + kvh * group + p % group;  // (row, head)
    const int col = 2 * (lane & 3);
    if (l.splits == 1) {
      const float inv = lsum[h] > 0.0f ? 1.0f / lsum[h] : 0.0f;
      bf16* dst = a.out + item * HD + col;
#pragma unroll
      for (int d = 0; d < DT; ++d)
        *reinterpret_cast<__nv_bfloat162*>(dst + d * 8) =
            __floats2bfloat162_rn(o[d][2 * h] * inv, o[d][2 * h + 1] * inv);
    } else {
      float* w = partial + (item * l.splits + split) * (HD + 2);
#pragma unroll
      for (int d = 0; d < DT; ++d) {
        w[d * 8 + col] = o[d][2 * h];
        w[d * 8 + col + 1] = o[d][2 * h + 1];
      }
      if ((lane & 3) == 0) {
        w[HD] = m[h];
        w[HD + 1] = lsum[h];
      }
    }
  }
}

}  // namespace pixtral::backend::cuda::flash
