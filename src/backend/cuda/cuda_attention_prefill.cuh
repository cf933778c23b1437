// Tensor-core attention for many query rows (prefill chunks, the vision encoder's varlen
// segments), head_dim 64 and 128, included by cuda_attention.cu. Same semantics, (row, head) pair
// packing, paged/varlen addressing, split-KV partials and device-side kv_len as flash_kernel
// (cuda_attention_flash.cuh, which keeps the decode case), with the work laid out for reuse:
//  - each warp owns 32 pairs as two m16 tiles, so every K/V fragment read from shared memory
//    (ldmatrix) feeds two mma.sync instead of one: half the shared-memory traffic per MMA;
//  - K/V tiles of BN keys stream through a STAGES-deep cp.async ring (cp.async.wait_group
//    STAGES − 2): tiles t + 1 .. t + STAGES − 1 are in flight while tile t is computed;
//  - head_dim 64 keeps the warp's Q fragments in registers for the whole key loop; head_dim 128
//    re-reads them from shared memory per 16-dim slice (Q 64 + O 128 + S registers would spill),
//    and its key tile is 32 (S for 64 keys next to O spills too; cuda_attention.cu picks BN);
//  - softmax in base 2 on raw scores: exp2(s·scale·log2e − m·scale·log2e) as one FFMA + ex2.approx;
//    O is rescaled only when a row maximum of the warp grew; the causal/boundary mask only on the
//    tiles that need it, per warp; a warp skips the tiles that lie wholly past its rows' causal
//    limits (it still takes part in the loads and barriers);
//  - blocks numbered heaviest first across sequences and KV heads: block x = (rank · num_seqs +
//    seq) · num_kv_heads + kvh, query tile = (the sequence's own tile count) − 1 − rank.
// Shared memory: sq [BM][HD], sk/sv [STAGES][BN][HD], bf16, each row's 16-byte chunks XOR-swizzled
// (swz). The partial triples (acc, max, sum) use flash_kernel's layout and units (max in base-2
// scaled units), so combine_kernel merges either. Requires scale > 0 (the max is taken on raw
// scores).
#pragma once

#include "backend/cuda/cuda_attention_flash.cuh"

namespace pixtral::backend::cuda::flash {

// 2^x with one MUFU.EX2 (flush-to-zero; 2^−inf = 0).
__device__ inline float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <int HD, int WARPS, int BN, int STAGES>
constexpr int prefill_smem_bytes() {
  return (32 * WARPS * HD + 2 * STAGES * BN * HD) * 2;
}

// ldmatrix addressing in a swizzled [rows][HD] tile (swz): the lane's address of row r, chunk c
// (c < 2) plus rows (a multiple of 8: the swizzle depends on r & 7 only) and chunks (even) is
// (r, c)'s byte offset with the chunk's low three bits XORed by chunks & 6, plus the whole
// 8-chunk groups and rows: one register per lane and one XOR per 16-wide slice address a whole
// tile, the rest is an immediate (the generic form kept every fragment's address in a register).
template <int HD>
struct SwizzledLane {
  uint32_t base;  // byte offset of (r, c)
  __device__ SwizzledLane(int r, int c) : base(static_cast<uint32_t>(swz<HD>(r, c)) * 2) {}
  __device__ uint32_t at(int rows, int chunks) const {
    return (base ^ static_cast<uint32_t>((chunks & 6) << 4)) +
           static_cast<uint32_t>(((chunks & ~7) << 4) + rows * HD * 2);
  }
};

// Copies keys kt .. kt + BN − 1 of KV head kvh (zeros at and past k_end) into the swizzled K/V
// tiles at byte addresses sk/sv: thread t copies 16-byte chunk t % CH of rows t / CH + i·ROWS
// (ROWS a multiple of 8, so the swizzle of its rows is one offset). Keys are int (kv_len is int32
// in device memory); a block size that is not a power of two costs a 32-bit division per row
// (table: the sequence's block table row, nullptr for varlen).
template <int HD, int BN, int THREADS>
__device__ __forceinline__ void load_kv(const AttentionArgs& a, uint32_t sk, uint32_t sv,
                                        const int32_t* table, int q_begin, int kvh, int kt, int k_end) {
  constexpr int CH = HD / 8, ROWS = THREADS / CH;
  static_assert(THREADS % CH == 0 && ROWS % 8 == 0 && BN % ROWS == 0, "load_kv shape");
  const int c = threadIdx.x % CH, j0 = threadIdx.x / CH;
  const uint32_t dst0 = static_cast<uint32_t>(swz<HD>(j0, c)) * 2;
  const int stride = static_cast<int>(a.num_kv_heads) * HD;  // elements per K/V row
  const bf16* k = a.k + kvh * HD + c * 8;
  const bf16* v = a.v + kvh * HD + c * 8;
  const unsigned bs = static_cast<unsigned>(a.block_size);
  const int shift = (bs & (bs - 1)) == 0 ? __ffs(static_cast<int>(bs)) - 1 : -1;  // power of two: no division
#pragma unroll
  for (int i = 0; i < BN / ROWS; ++i) {
    const int key = kt + j0 + i * ROWS;
    const bool valid = key < k_end;
    int64_t row = 0;  // invalid rows still pass a mapped address (zero-filled copy)
    if (valid) {
      row = q_begin + key;
      if (table != nullptr) {
        const unsigned block =
            shift >= 0 ? static_cast<unsigned>(key) >> shift : static_cast<unsigned>(key) / bs;
        row = static_cast<int64_t>(table[block]) * bs + (static_cast<unsigned>(key) - block * bs);
      }
    }
    const int64_t off = row * stride;
    const uint32_t dst = dst0 + static_cast<uint32_t>(i * ROWS * HD * 2);
    cp_async16(sk + dst, k + off, valid);
    cp_async16(sv + dst, v + off, valid);
  }
}

// Lane roles in the ldmatrix x4 loads (matrix i is addressed by lanes 8i .. 8i+7), as in
// flash_kernel:
//   Q, the A fragment a0..a3: rows 0-7 × k 0-7, rows 8-15 × k 0-7, rows 0-7 × k 8-15,
//     rows 8-15 × k 8-15;
//   K, the B fragments of two n-tiles: keys 0-7 × d 0-7, keys 0-7 × d 8-15, keys 8-15 × d 0-7,
//     keys 8-15 × d 8-15;
//   V (transposed), the B fragments of two n-tiles: keys 0-7 × d 0-7, keys 8-15 × d 0-7,
//     keys 0-7 × d 8-15, keys 8-15 × d 8-15.
template <int HD>
__device__ inline SwizzledLane<HD> q_lane(int row0, int lane) {
  return SwizzledLane<HD>(row0 + (lane & 15), lane >> 4);
}
template <int HD>
__device__ inline SwizzledLane<HD> k_lane(int lane) {
  return SwizzledLane<HD>((lane & 7) + ((lane >> 4) << 3), (lane >> 3) & 1);
}
template <int HD>
__device__ inline SwizzledLane<HD> v_lane(int lane) {
  return SwizzledLane<HD>((lane & 7) + (((lane >> 3) & 1) << 3), lane >> 4);
}

// s[i] = Q(m-tile i) · Kᵀ for the BN keys of the tile at kb: each K fragment feeds both m-tiles.
// Q comes from registers (qf) or, when Q_REGS is false, from the Q tile at sq (the warp's rows,
// m-tile 1 16 rows below m-tile 0).
template <int HD, int BN, bool Q_REGS, int QK>
__device__ __forceinline__ void tile_scores(float (&s)[2][BN / 8][4], const uint32_t (&qf)[2][QK][4],
                                            uint32_t sq, const SwizzledLane<HD>& ql, uint32_t kb,
                                            const SwizzledLane<HD>& kl) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) s[i][n][0] = s[i][n][1] = s[i][n][2] = s[i][n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    uint32_t q0[4], q1[4];
    if constexpr (Q_REGS) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        q0[j] = qf[0][kk][j];
        q1[j] = qf[1][kk][j];
      }
    } else {
      ldsm_x4(sq + ql.at(0, kk * 2), q0[0], q0[1], q0[2], q0[3]);
      ldsm_x4(sq + ql.at(16, kk * 2), q1[0], q1[1], q1[2], q1[3]);
    }
#pragma unroll
    for (int nn = 0; nn < BN / 16; ++nn) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4(kb + kl.at(nn * 16, kk * 2), b0, b1, b2, b3);
      mma_16816(s[0][2 * nn], q0, b0, b1);
      mma_16816(s[0][2 * nn + 1], q0, b2, b3);
      mma_16816(s[1][2 * nn], q1, b0, b1);
      mma_16816(s[1][2 * nn + 1], q1, b2, b3);
    }
  }
}

// o[i] += P(m-tile i) · V for the BN keys of the tile at vb; P = s rounded to bf16. The S
// accumulators of n-tiles 2kk, 2kk+1 are exactly the A fragment of P[:, 16kk..16kk+15]; each V
// fragment feeds both m-tiles.
template <int HD, int BN>
__device__ __forceinline__ void tile_pv(float (&o)[2][HD / 8][4], const float (&s)[2][BN / 8][4], uint32_t vb,
                                        const SwizzledLane<HD>& vl) {
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    uint32_t pa[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      pa[i][0] = pack_bf16(s[i][2 * kk][0], s[i][2 * kk][1]);
      pa[i][1] = pack_bf16(s[i][2 * kk][2], s[i][2 * kk][3]);
      pa[i][2] = pack_bf16(s[i][2 * kk + 1][0], s[i][2 * kk + 1][1]);
      pa[i][3] = pack_bf16(s[i][2 * kk + 1][2], s[i][2 * kk + 1][3]);
    }
#pragma unroll
    for (int dd = 0; dd < HD / 16; ++dd) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_t(vb + vl.at(kk * 16, dd * 2), b0, b1, b2, b3);
      mma_16816(o[0][2 * dd], pa[0], b0, b1);
      mma_16816(o[0][2 * dd + 1], pa[0], b2, b3);
      mma_16816(o[1][2 * dd], pa[1], b0, b1);
      mma_16816(o[1][2 * dd + 1], pa[1], b2, b3);
    }
  }
}

// Online softmax step over one key tile. Element (i, n, e) of s is row 16i + lane/4 + 8(e/2) of
// the warp, key kt + 8n + 2(lane%4) + e%2. rel[i][h]: the row's key limit minus this thread's
// first key column (keys at or past the limit are masked; only when `mask`). m holds raw-score
// maxima; on return s holds the unnormalized probabilities 2^(s·sl2 − m·sl2), lsum the
// quad-partial row sums and o is rescaled to the new maxima (by exactly 1 where a row's maximum
// did not change, so a warp whose maxima all stayed skips the rescale).
template <int HD, int BN>
__device__ __forceinline__ void tile_softmax(float (&s)[2][BN / 8][4], float (&o)[2][HD / 8][4],
                                             float (&m)[2][2], float (&lsum)[2][2], bool mask,
                                             const int (&rel)[2][2], float sl2) {
  if (mask) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int n = 0; n < BN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (n * 8 + (e & 1) >= rel[i][e >> 1]) s[i][n][e] = -INFINITY;
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[i][n][e]);
    float base[2], corr[2];
    bool grew = false;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      const float m_new = fmaxf(m[i][h], mx[h]);
      base[h] = m_new == -INFINITY ? 0.0f : m_new * sl2;  // a row fully masked so far: 2^−inf = 0
      corr[h] = m_new == m[i][h] ? 1.0f : fast_exp2(fmaf(m[i][h], sl2, -base[h]));
      grew |= m_new != m[i][h];
      m[i][h] = m_new;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[i][n][e] = fast_exp2(fmaf(s[i][n][e], sl2, -base[e >> 1]));
        rs[e >> 1] += s[i][n][e];
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) lsum[i][h] = lsum[i][h] * corr[h] + rs[h];
    // Once the running maxima settle most tiles leave them unchanged: skip the HD/2 multiplies.
    if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
      for (int d = 0; d < HD / 8; ++d) {
        o[i][d][0] *= corr[0];
        o[i][d][1] *= corr[0];
        o[i][d][2] *= corr[1];
        o[i][d][3] *= corr[1];
      }
    }
  }
}

// grid: x = tiles_per_seq · num_seqs · num_kv_heads (heaviest first, see the file comment),
// y = 1, z = splits; WARPS · 32 threads; prefill_smem_bytes() of dynamic shared memory.
template <int HD, int WARPS, int BN, int STAGES>
__global__ void __launch_bounds__(WARPS * 32) prefill_kernel(AttentionArgs a, FlashLaunch l, float* partial) {
  constexpr int BM = 32 * WARPS, CH = HD / 8, THREADS = WARPS * 32, DT = HD / 8;
  constexpr bool kQRegs = HD <= 64;
  constexpr int kQk = kQRegs ? HD / 16 : 1;
  constexpr float kLog2e = 1.4426950408889634f;
  static_assert(STAGES >= 2 && BN % 16 == 0 && (HD == 64 || HD == 128), "prefill_kernel shape");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sq = reinterpret_cast<bf16*>(smem_raw);  // [BM][HD]
  bf16* sk = sq + BM * HD;                       // [STAGES][BN][HD]
  bf16* sv = sk + STAGES * BN * HD;              // [STAGES][BN][HD]

  const int kvh = static_cast<int>(blockIdx.x % a.num_kv_heads);
  const int64_t rest = blockIdx.x / a.num_kv_heads;
  const int64_t seq = rest % a.num_seqs, rank = rest / a.num_seqs;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int64_t pairs = static_cast<int64_t>(q_len) * group;
  const int64_t tile = (pairs + BM - 1) / BM - 1 - rank;
  if (tile < 0) return;
  const int64_t p0 = tile * BM;
  // Keys are int: kv_len and q_start are int32 in device memory.
  const int kv = a.causal ? a.kv_len[seq] : q_len;
  const int diag = kv - q_len;  // causal: query row r sees keys 0 .. diag + r
  const int last_row = static_cast<int>((min(pairs, p0 + BM) - 1) / group);
  const int tile_end = a.causal ? diag + last_row + 1 : kv;
  const int split_len = static_cast<int>(split_len_for(kv, l.splits, BN, l.min_split));
  const int k_begin = static_cast<int>(blockIdx.z) * split_len;
  // Splits past this tile's keys write nothing: combine_kernel stops at the last split below each
  // row's own key limit, which is at most tile_end.
  if (k_begin >= tile_end) return;
  const int k_end = min(tile_end, k_begin + split_len);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float sl2 = a.scale * kLog2e;

  // This warp's pairs wp0 .. wp0 + 31: its keys end at warp_end, its per-row mask starts at
  // warp_mask_from (a warp without pairs has no keys).
  const int64_t wp0 = p0 + 32 * warp;
  int warp_end = k_begin, warp_mask_from = k_begin;
  if (wp0 < pairs) {
    const int first = static_cast<int>(wp0 / group),
              last = static_cast<int>((min(pairs, wp0 + 32) - 1) / group);
    warp_end = a.causal ? min(k_end, diag + last + 1) : k_end;
    warp_mask_from = a.causal ? min(k_end, diag + first + 1) : k_end;
  }
  // Pair of this thread's row 0 (lane / 4; rows 8h + 16i below it): the masked tiles recompute
  // the row limits from it instead of keeping four of them live through the loop.
  const int pair0 = static_cast<int>(wp0) + (lane >> 2);

  const uint32_t sq_addr = smem_u32(sq), sk_addr = smem_u32(sk), sv_addr = smem_u32(sv);
  constexpr uint32_t kSlotBytes = BN * HD * 2;
  {
    // Q rows of pairs p0 .. p0 + BM − 1 (zeros past the sequence), in load_kv's thread layout.
    constexpr int ROWS = THREADS / CH;
    const int c = threadIdx.x % CH, r0 = threadIdx.x / CH, g = static_cast<int>(group);
    const uint32_t dst0 = sq_addr + static_cast<uint32_t>(swz<HD>(r0, c)) * 2;
#pragma unroll 4
    for (int i = 0; i < BM / ROWS; ++i) {
      const int64_t p = p0 + r0 + i * ROWS;
      const bool valid = p < pairs;
      const bf16* src = a.q;
      if (valid) {
        const int pi = static_cast<int>(p), row = pi / g, head = kvh * g + (pi - row * g);
        src += ((q_begin + static_cast<int64_t>(row)) * a.num_heads + head) * HD + c * 8;
      }
      cp_async16(dst0 + static_cast<uint32_t>(i * ROWS * HD * 2), src, valid);
    }
  }
  const int32_t* table = a.block_tables != nullptr ? a.block_tables + seq * a.max_blocks : nullptr;
  auto load_tile = [&](int kt, uint32_t slot_off) {
    load_kv<HD, BN, THREADS>(a, sk_addr + slot_off, sv_addr + slot_off, table, q_begin, kvh, kt, k_end);
  };
  // Group s holds the tile at k_begin + s·BN (group 0 also Q); empty groups keep the count uniform.
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (k_begin + st * BN < k_end) load_tile(k_begin + st * BN, st * kSlotBytes);
    cp_async_commit();
  }

  const SwizzledLane<HD> ql = q_lane<HD>(32 * warp, lane), kl = k_lane<HD>(lane), vl = v_lane<HD>(lane);
  uint32_t qf[2][kQk][4];
  if constexpr (kQRegs) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kQk; ++kk)
#pragma unroll
      for (int i = 0; i < 2; ++i)
        ldsm_x4(sq_addr + ql.at(16 * i, kk * 2), qf[i][kk][0], qf[i][kk][1], qf[i][kk][2], qf[i][kk][3]);
  }

  float o[2][DT][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int d = 0; d < DT; ++d) o[i][d][0] = o[i][d][1] = o[i][d][2] = o[i][d][3] = 0.0f;
  float m[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}};
  float lsum[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};

  uint32_t slot_off = 0;  // byte offset of the slot holding the tile at kt
  for (int kt = k_begin; kt < k_end; kt += BN) {
    // This tile has landed (the next STAGES − 2 may still be in flight) and every warp is done
    // with the previous tile's slot, which the next load refills.
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    const uint32_t fill_off = slot_off == 0 ? (STAGES - 1) * kSlotBytes : slot_off - kSlotBytes;
    if (kt + (STAGES - 1) * BN < k_end) load_tile(kt + (STAGES - 1) * BN, fill_off);
    cp_async_commit();

    if (kt < warp_end) {
      float s[2][BN / 8][4];
      tile_scores<HD, BN, kQRegs, kQk>(s, qf, sq_addr, ql, sk_addr + slot_off, kl);
      int rel[2][2] = {{BN, BN}, {BN, BN}};  // no mask
      const bool mask = kt + BN > warp_mask_from;
      if (mask) {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = (pair0 + 16 * i + 8 * h) / static_cast<int>(group);
            rel[i][h] = (a.causal ? min(k_end, diag + row + 1) : k_end) - kt - 2 * (lane & 3);
          }
      }
      tile_softmax<HD, BN>(s, o, m, lsum, mask, rel, sl2);
      tile_pv<HD, BN>(o, s, sv_addr + slot_off, vl);
    }
    slot_off = slot_off == (STAGES - 1) * kSlotBytes ? 0 : slot_off + kSlotBytes;
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = lsum[i][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int64_t p = wp0 + 16 * i + (lane >> 2) + 8 * h;
      if (p >= pairs) continue;
      const int64_t item = (q_begin + p / group) * a.num_heads + kvh * group + p % group;  // (row, head)
      const int col = 2 * (lane & 3);
      if (l.splits == 1) {
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        bf16* dst = a.out + item * HD + col;
#pragma unroll
        for (int d = 0; d < DT; ++d)
          *reinterpret_cast<__nv_bfloat162*>(dst + d * 8) =
              __floats2bfloat162_rn(o[i][d][2 * h] * inv, o[i][d][2 * h + 1] * inv);
      } else {
        float* w = partial + (item * l.splits + blockIdx.z) * (HD + 2);
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          w[d * 8 + col] = o[i][d][2 * h];
          w[d * 8 + col + 1] = o[i][d][2 * h + 1];
        }
        if ((lane & 3) == 0) {
          w[HD] = m[i][h] * sl2;  // base-2 scaled units, as flash_kernel writes them (−inf stays)
          w[HD + 1] = sum;
        }
      }
    }
}

}  // namespace pixtral::backend::cuda::flash
