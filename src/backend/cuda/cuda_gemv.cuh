// Device pieces shared by the small-M GEMV kernels: the register kernel and the launcher in
// cuda_matmul.cu, the cp.async-ring kernels in cuda_gemv_ring.cu (column groups, the register
// kernel's layout) and cuda_gemv_warp.cu (whole outputs per warp, no block barrier). One copy of
// the x staging (RMS-normalized when fused), the dot-product step and the epilogues' math, so every
// kernel adds the same products in the same order and rounds the same way: for one K split their
// outputs are bit-identical (cuda_conformance_test checks it).
// Internal to backend/cuda; included only by .cu files.
#pragma once

#include "backend/cuda/cuda_mma.cuh"

namespace pixtral::backend::cuda::gemv {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kPrefetchChunks = 8;  // 16-byte chunks per lane prefetched into L2 before the wait

enum Epilogue : int { kStore = 0, kSwiglu = 1, kQkvRope = 2 };

using Kernel = void (*)(GemvArgs);

// The kernel of each family for x [m, k] (m <= 8) with `epilogue`, x staged in shared memory or
// not (the fused epilogues always stage), `unroll` (4 or 8) 16-byte chunks per lane and step.
Kernel register_kernel(int64_t m, int epilogue, bool staged, int unroll);  // cuda_matmul.cu
Kernel ring_kernel(int64_t m, int epilogue, bool staged, int unroll);      // cuda_gemv_ring.cu
Kernel warp_kernel(int64_t m, int epilogue, bool staged, int unroll);      // cuda_gemv_warp.cu

// The instantiation table behind those: F has `template <int kM, int kEpi, bool kStaged, int
// kUnroll> static Kernel get()`.
template <class F, int kM, int kUnroll>
Kernel pick_epilogue(int epilogue, bool staged) {
  if (epilogue == kSwiglu) return F::template get<kM, kSwiglu, true, kUnroll>();
  if (epilogue == kQkvRope) return F::template get<kM, kQkvRope, true, kUnroll>();
  return staged ? F::template get<kM, kStore, true, kUnroll>() : F::template get<kM, kStore, false, kUnroll>();
}
template <class F, int kUnroll>
Kernel pick_m(int64_t m, int epilogue, bool staged) {
  switch (m) {
    case 1: return pick_epilogue<F, 1, kUnroll>(epilogue, staged);
    case 2: return pick_epilogue<F, 2, kUnroll>(epilogue, staged);
    case 3: return pick_epilogue<F, 3, kUnroll>(epilogue, staged);
    case 4: return pick_epilogue<F, 4, kUnroll>(epilogue, staged);
    case 5: return pick_epilogue<F, 5, kUnroll>(epilogue, staged);
    case 6: return pick_epilogue<F, 6, kUnroll>(epilogue, staged);
    case 7: return pick_epilogue<F, 7, kUnroll>(epilogue, staged);
    case 8: return pick_epilogue<F, 8, kUnroll>(epilogue, staged);
    default: std::abort();
  }
}
template <class F>
Kernel pick_kernel(int64_t m, int epilogue, bool staged, int unroll) {
  return unroll == 8 ? pick_m<F, 8>(m, epilogue, staged) : pick_m<F, 4>(m, epilogue, staged);
}

using mma::allow_dependents;
using mma::grid_dependency_wait;
__device__ inline void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

__device__ inline void accumulate8(const uint4& wv, const uint4& xv, float& acc) {
  const auto* w2 = reinterpret_cast<const __nv_bfloat162*>(&wv);
  const auto* x2 = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = __bfloat1622float2(w2[i]);
    const float2 b = __bfloat1622float2(x2[i]);
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
  }
}

// Sum over all lanes; after it every lane holds the total (same order in every kernel).
__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ inline float block_sum(float v, float* red) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // red may still be read by the previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = 0.0f;
#pragma unroll
  for (int i = 0; i < kWarps; ++i) t += red[i];
  return t;
}

// Output column of local column c (warp / wpc) of group g; n when past the end. Store/QkvRope:
// groups of cpb adjacent columns. Swiglu: the first cpb/2 local columns are gate columns, the
// others the matching up columns (n/2 further), so a block holds both halves of its outputs.
__device__ inline int64_t column_of(int epilogue, int64_t g, int c, int cpb, int64_t n) {
  if (epilogue != kSwiglu) return min(g * cpb + c, n);
  const int half = cpb / 2;
  const int64_t j = g * half + c % half;
  if (j >= n / 2) return n;
  return c < half ? j : n / 2 + j;
}

// x [kM, k] into xs (shared), RMS-normalized with norm_w when set (rms_norm's rounding). All
// threads of the block call it; the caller synchronizes before reading xs.
template <int kM>
__device__ inline void stage_x(const GemvArgs& a, bf16* xs, float* red) {
  const int64_t k = a.k, chunks = k / 8;
  for (int m = 0; m < kM; ++m) {
    const uint4* xr = reinterpret_cast<const uint4*>(a.x + m * k);
    uint4* dst = reinterpret_cast<uint4*>(xs + m * k);
    if (a.norm_w == nullptr) {
      for (int64_t j = threadIdx.x; j < chunks; j += kThreads) dst[j] = xr[j];
      continue;
    }
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < chunks; j += kThreads) {
      const uint4 v = xr[j];
      const auto* v2 = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(v2[i]);
        ss += f.x * f.x;
        ss += f.y * f.y;
      }
    }
    const float inv = 1.0f / sqrtf(block_sum(ss, red) / static_cast<float>(k) + a.eps);
    const uint4* wn = reinterpret_cast<const uint4*>(a.norm_w);
    for (int64_t j = threadIdx.x; j < chunks; j += kThreads) {
      const uint4 v = xr[j], g = wn[j];
      uint4 o;
      const auto* v2 = reinterpret_cast<const __nv_bfloat162*>(&v);
      const auto* g2 = reinterpret_cast<const __nv_bfloat162*>(&g);
      auto* o2 = reinterpret_cast<__nv_bfloat162*>(&o);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(v2[i]), gw = __bfloat1622float2(g2[i]);
        const float n0 = __bfloat162float(__float2bfloat16_rn(f.x * inv));
        const float n1 = __bfloat162float(__float2bfloat16_rn(f.y * inv));
        o2[i] = __floats2bfloat162_rn(gw.x * n0, gw.y * n1);
      }
      dst[j] = o;
    }
  }
}

// Chunk cc (8 values) of x row m: from shared memory when staged, else through L1.
template <bool kStaged>
__device__ inline uint4 x_chunk(const GemvArgs& a, const bf16* xs, int m, int64_t cc) {
  if constexpr (kStaged) return reinterpret_cast<const uint4*>(xs + m * a.k)[cc];
  return __ldg(reinterpret_cast<const uint4*>(a.x + m * a.k) + cc);
}

// ---- epilogues: v is the fp32 dot product of x row m with weight row(s) ----------------------
// kStore: y[m, col] = bf16(v (+ bias) (+ y)).
__device__ inline void store_output(const GemvArgs& a, int m, int64_t col, float v) {
  if (a.bias != nullptr) v += __bfloat162float(a.bias[col]);
  if (a.accumulate) v += __bfloat162float(a.y[m * a.n + col]);
  a.y[m * a.n + col] = __float2bfloat16_rn(v);
}

// The product in the activation dtype (the SwiGLU and RoPE epilogues start from it).
__device__ inline float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// kSwiglu: y[m, j] = silu(gate) · up (gate, up already rounded to bf16), y [m, n/2].
__device__ inline void store_swiglu(const GemvArgs& a, int m, int64_t j, float gate, float up) {
  a.y[m * (a.n / 2) + j] = __float2bfloat16_rn((gate / (1.0f + expf(-gate))) * up);
}

// kQkvRope: the pair of columns (col0, col0 + 1) (x0, x1 rounded to bf16): q or k rotated (the
// rope kernel's formula), q into y [m, q_cols], k and v into their cache rows at slots[m].
__device__ inline void store_rope_pair(const GemvArgs& a, int m, int64_t col0, float x0, float x1) {
  const int64_t qc = a.q_cols, kvc = a.kv_cols;
  if (col0 < qc + kvc) {
    const int64_t local = col0 < qc ? col0 : col0 - qc;
    const int64_t p = (local % a.head_dim) / 2;
    const float inv_freq = 1.0f / powf(a.theta, static_cast<float>(2 * p) / static_cast<float>(a.head_dim));
    float sn, cs;
    sincosf(static_cast<float>(a.pos[m]) * inv_freq, &sn, &cs);
    const bf16 r0 = __float2bfloat16_rn(x0 * cs - x1 * sn), r1 = __float2bfloat16_rn(x0 * sn + x1 * cs);
    bf16* dst;
    if (col0 < qc) {
      dst = a.y + m * qc + local;
    } else {
      const int64_t slot = a.slots[m];
      if (slot < 0 || slot >= a.num_slots) __trap();  // slot out of the cache: a bug
      dst = a.k_cache + slot * kvc + local;
    }
    dst[0] = r0;
    dst[1] = r1;
  } else {
    const int64_t slot = a.slots[m];
    if (slot < 0 || slot >= a.num_slots) __trap();
    bf16* dst = a.v_cache + slot * kvc + (col0 - qc - kvc);
    dst[0] = __float2bfloat16_rn(x0);
    dst[1] = __float2bfloat16_rn(x1);
  }
}

// ---- end of a column group (register kernel, ring kernel with block barriers) ----------------
// CTA barrier 0: __syncthreads, or its non-aligned form for warps that reach it from different
// iterations of their loop (the ring kernel: the slices of a group take different item counts).
template <bool kAligned>
__device__ inline void cta_sync() {
  if constexpr (kAligned) {
    __syncthreads();
  } else {
    asm volatile("barrier.sync 0;" ::: "memory");
  }
}

// Every warp of the block calls it once per column group g with its partial sums acc (its column
// and K slice, one per x row): the slices of a column are added in slice order through shared
// part [kWarps][kM] (deterministic), then the epilogue (vals [kM][kWarps]: the products in bf16
// for the pairwise ones). Leaves part and vals free for the next group.
template <int kM, int kEpi, bool kAligned>
__device__ inline void finish_group_block(const GemvArgs& a, int64_t g, float (&acc)[kM], float (*part)[kM],
                                          float (*vals)[kWarps]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wpc = a.wpc, cpb = kWarps / wpc;
  const int64_t n = a.n;
#pragma unroll
  for (int m = 0; m < kM; ++m) {
    acc[m] = warp_sum(acc[m]);
    if (lane == 0) part[warp][m] = acc[m];
  }
  cta_sync<kAligned>();
  for (int idx = threadIdx.x; idx < kM * cpb; idx += kThreads) {
    const int m = idx / cpb, lc = idx % cpb;
    float v = 0.0f;
    for (int j = 0; j < wpc; ++j) v += part[lc * wpc + j][m];
    if constexpr (kEpi == kStore) {
      const int64_t oc = g * cpb + lc;
      if (oc < n) store_output(a, m, oc, v);
    } else {
      vals[m][lc] = round_bf16(v);
    }
  }
  if constexpr (kEpi != kStore) {
    cta_sync<kAligned>();
    const int half = cpb / 2;
    for (int idx = threadIdx.x; idx < kM * half; idx += kThreads) {
      const int m = idx / half, pc = idx % half;
      if constexpr (kEpi == kSwiglu) {
        const int64_t j = g * half + pc;
        if (j < n / 2) store_swiglu(a, m, j, vals[m][pc], vals[m][pc + half]);
      } else {
        const int64_t col0 = g * cpb + 2 * pc;
        if (col0 < n) store_rope_pair(a, m, col0, vals[m][2 * pc], vals[m][2 * pc + 1]);
      }
    }
  }
  cta_sync<kAligned>();  // part / vals are reused by the next group
}

// ---- the per-warp cp.async ring of the ring kernels ------------------------------------------
// A warp owns `stages` slots of kUnroll x 32 16-byte chunks (lane l's chunk u at [slot][u][l]);
// item t of the warp's stream lives in slot t % stages. A lane reads back only the chunks it
// copied itself, so its own cp.async.wait_group makes them visible, and a __syncwarp before each
// copy retires the reads of the slot it overwrites (as in the decode attention kernel's ring);
// every item commits one group (empty or not), so "item t landed" is "at most stages - 1 newer
// groups pending" once item t + stages - 1 was issued.
using mma::smem_u32;

__device__ inline void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ inline void cp_async16_evict_first(uint32_t dst, const void* src, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, 16, %2;\n" ::"r"(dst), "l"(src),
               "l"(policy)
               : "memory");
}
__device__ inline uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` (0..7; the ring depth minus one) of this thread's groups are
// still in flight (wait_group takes an immediate).
__device__ inline void cp_async_wait_pending(int pending) {
  switch (pending) {
    case 0: asm volatile("cp.async.wait_group 0;\n" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;\n" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;\n" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;\n" ::: "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;\n" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;\n" ::: "memory"); break;
    case 6: asm volatile("cp.async.wait_group 6;\n" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 7;\n" ::: "memory"); break;
  }
}

template <int kUnroll>
struct WarpRing {
  uint4* base;  // this warp's [stages][kUnroll][32] chunks
  int stages;
  bool evict_first;
  uint64_t policy;

  __device__ uint4* slot(int s) const { return base + s * (kUnroll * 32) + (threadIdx.x & 31); }
  __device__ int next(int s) const { return s + 1 == stages ? 0 : s + 1; }
  // Copies chunks first + 32·u (u < kUnroll; first includes the lane) of weight row w that are
  // below end into slot s, then commits the group (w == nullptr: an empty group).
  __device__ void issue(int s, const uint4* w, int64_t first, int64_t end) const {
    const uint32_t dst = smem_u32(slot(s));
    if (w != nullptr && evict_first) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (first + 32 * u < end) cp_async16_evict_first(dst + u * 32 * 16, w + first + 32 * u, policy);
    } else if (w != nullptr) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (first + 32 * u < end) cp_async16(dst + u * 32 * 16, w + first + 32 * u);
    }
    cp_async_commit();
  }
  // acc[m] += the chunks of slot s (those below end) times x's, in chunk order (the register
  // kernel's order).
  template <int kM, bool kStaged>
  __device__ void consume(int s, int64_t first, int64_t end, const GemvArgs& a, const bf16* xs,
                          float (&acc)[kM]) const {
    const uint4* src = slot(s);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (first + 32 * u < end) {
        const uint4 wv = src[u * 32];
#pragma unroll
        for (int m = 0; m < kM; ++m) accumulate8(wv, x_chunk<kStaged>(a, xs, m, first + 32 * u), acc[m]);
      }
  }
};

// Bytes of one warp's ring.
inline size_t ring_bytes_per_warp(int stages, int unroll) {
  return static_cast<size_t>(stages) * unroll * 32 * sizeof(uint4);
}

}  // namespace pixtral::backend::cuda::gemv
