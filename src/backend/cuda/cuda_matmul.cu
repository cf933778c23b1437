// Small-M GEMV kernels (decode, M <= 8): bf16 weights streamed with 16-byte loads, fp32
// accumulation, and the work around the product fused in (cuda_common.h, GemvFusion):
//   - prologue: x staged in shared memory, RMS-normalized on the way (norm_matmul, qkv_rope);
//   - epilogue: store (+ bias, + residual), SwiGLU of the [gate | up] halves (norm_matmul with
//     swiglu), or RoPE on q/k and the paged K/V write (qkv_rope).
// Decode is bound by the weight read, so the kernels keep enough bytes in flight on every SM until
// the last column is done: each lane issues 4 independent 16-byte loads per step; when a matrix has
// too few output columns to fill the machine several warps share a column, each over a contiguous
// K slice. The grid is persistent (at most what is resident at once; blocks loop over column
// groups), so the prologue runs once per block. Launched with programmatic dependent launch: a
// block prefetches its first weights into L2, then waits for the previous kernel
// (griddepcontrol.wait) before it touches activations, and lets the next kernel launch at once.
// The cuBLASLt path for larger M lives in cuda_backend_matmul.cpp.
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 4;          // 16-byte weight loads in flight per lane
constexpr int kPrefetchChunks = 8;  // 16-byte chunks per lane prefetched into L2 before the wait

enum Epilogue : int { kStore = 0, kSwiglu = 1, kQkvRope = 2 };

__device__ inline void grid_dependency_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ inline void allow_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
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

__device__ inline float block_sum(float v, float* red) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
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

template <int kM, int kEpi, bool kStaged>
__global__ void __launch_bounds__(kThreads) gemv_fused_kernel(GemvArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* xs = reinterpret_cast<bf16*>(smem_raw);  // [kM, k] when kStaged
  __shared__ float part[kWarps][kM];
  __shared__ float vals[kM][kWarps];
  __shared__ float red[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wpc = a.wpc, cpb = kWarps / wpc;
  const int64_t n = a.n, k = a.k, chunks = k / 8, per = (chunks + wpc - 1) / wpc;
  const int64_t outputs = kEpi == kSwiglu ? n / 2 : n;
  const int64_t groups = kEpi == kSwiglu ? (outputs + cpb / 2 - 1) / (cpb / 2) : (n + cpb - 1) / cpb;
  const int c = warp / wpc, slice = warp % wpc;

  // Weights do not depend on the previous kernel: start streaming them into L2 before the wait
  // and the prologue: all of this block's columns when the matrix fits in L2 (then the previous
  // kernel, e.g. attention, hides the whole read), else the first group's first chunks.
  // (Loading them into registers instead measured no better.)
  if (a.prefetch_all) {
    const int64_t lines = (k * static_cast<int64_t>(sizeof(bf16)) + 127) / 128, per_group = cpb * lines;
    for (int64_t g = blockIdx.x; g < groups; g += gridDim.x)
      for (int64_t i = threadIdx.x; i < per_group; i += kThreads) {
        const int64_t col = column_of(kEpi, g, static_cast<int>(i / lines), cpb, n);
        if (col < n) prefetch_l2(a.w + col * k + (i % lines) * 64);
      }
  } else if (blockIdx.x < groups) {
    const int64_t col = column_of(kEpi, blockIdx.x, c, cpb, n);
    if (col < n) {
      const uint4* wrow = reinterpret_cast<const uint4*>(a.w + col * k);
      const int64_t c_end = min(chunks, (slice + 1) * per);
      for (int64_t cc = slice * per + lane, i = 0; cc < c_end && i < kPrefetchChunks; cc += 32, ++i)
        prefetch_l2(wrow + cc);
    }
  }
  grid_dependency_wait();
  allow_dependents();

  if constexpr (kStaged) {
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
    __syncthreads();
  }

  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t col = column_of(kEpi, g, c, cpb, n);
    float acc[kM];
#pragma unroll
    for (int m = 0; m < kM; ++m) acc[m] = 0.0f;
    if (col < n) {
      const uint4* wrow = reinterpret_cast<const uint4*>(a.w + col * k);
      const int64_t c_end = min(chunks, (slice + 1) * per);
      int64_t cc = slice * per + lane;
      for (; cc + 32 * (kUnroll - 1) < c_end; cc += 32 * kUnroll) {
        uint4 wv[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) wv[u] = __ldg(wrow + cc + 32 * u);
#pragma unroll
        for (int m = 0; m < kM; ++m) {
#pragma unroll
          for (int u = 0; u < kUnroll; ++u) {
            const uint4 xv = kStaged ? reinterpret_cast<const uint4*>(xs + m * k)[cc + 32 * u]
                                     : __ldg(reinterpret_cast<const uint4*>(a.x + m * k) + cc + 32 * u);
            accumulate8(wv[u], xv, acc[m]);
          }
        }
      }
      for (; cc < c_end; cc += 32) {
        const uint4 w0 = __ldg(wrow + cc);
#pragma unroll
        for (int m = 0; m < kM; ++m) {
          const uint4 xv = kStaged ? reinterpret_cast<const uint4*>(xs + m * k)[cc]
                                   : __ldg(reinterpret_cast<const uint4*>(a.x + m * k) + cc);
          accumulate8(w0, xv, acc[m]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
      if (lane == 0) part[warp][m] = acc[m];
    }
    __syncthreads();
    // The slices of a column are added in slice order (deterministic).
    for (int idx = threadIdx.x; idx < kM * cpb; idx += kThreads) {
      const int m = idx / cpb, lc = idx % cpb;
      float v = 0.0f;
      for (int j = 0; j < wpc; ++j) v += part[lc * wpc + j][m];
      if constexpr (kEpi == kStore) {
        const int64_t oc = g * cpb + lc;
        if (oc < n) {
          if (a.bias != nullptr) v += __bfloat162float(a.bias[oc]);
          if (a.accumulate) v += __bfloat162float(a.y[m * n + oc]);
          a.y[m * n + oc] = __float2bfloat16_rn(v);
        }
      } else {
        vals[m][lc] = __bfloat162float(__float2bfloat16_rn(v));  // the product in the activation dtype
      }
    }
    if constexpr (kEpi != kStore) {
      __syncthreads();
      const int half = cpb / 2;
      for (int idx = threadIdx.x; idx < kM * half; idx += kThreads) {
        const int m = idx / half, pc = idx % half;
        if constexpr (kEpi == kSwiglu) {
          const int64_t j = g * half + pc;
          if (j >= outputs) continue;
          const float gate = vals[m][pc], up = vals[m][pc + half];
          a.y[m * outputs + j] = __float2bfloat16_rn((gate / (1.0f + expf(-gate))) * up);
        } else {
          const int64_t col0 = g * cpb + 2 * pc;
          if (col0 >= n) continue;
          const float x0 = vals[m][2 * pc], x1 = vals[m][2 * pc + 1];
          const int64_t qc = a.q_cols, kvc = a.kv_cols;
          if (col0 < qc + kvc) {  // q or k: rotate the pair (the rope kernel's formula)
            const int64_t local = col0 < qc ? col0 : col0 - qc;
            const int64_t p = (local % a.head_dim) / 2;
            const float inv_freq =
                1.0f / powf(a.theta, static_cast<float>(2 * p) / static_cast<float>(a.head_dim));
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
      }
    }
    __syncthreads();  // part / vals are reused by the next group
  }
}

using Kernel = void (*)(GemvArgs);

template <int kM>
Kernel pick(int epilogue, bool staged) {
  if (epilogue == kSwiglu) return gemv_fused_kernel<kM, kSwiglu, true>;
  if (epilogue == kQkvRope) return gemv_fused_kernel<kM, kQkvRope, true>;
  return staged ? gemv_fused_kernel<kM, kStore, true> : gemv_fused_kernel<kM, kStore, false>;
}

Kernel kernel_for(int64_t m, int epilogue, bool staged) {
  switch (m) {
    case 1: return pick<1>(epilogue, staged);
    case 2: return pick<2>(epilogue, staged);
    case 3: return pick<3>(epilogue, staged);
    case 4: return pick<4>(epilogue, staged);
    case 5: return pick<5>(epilogue, staged);
    case 6: return pick<6>(epilogue, staged);
    case 7: return pick<7>(epilogue, staged);
    case 8: return pick<8>(epilogue, staged);
    default: std::abort();
  }
}

// Resident blocks per SM for a kernel and its dynamic shared memory (the first call of a staged
// kernel raises its shared-memory limit to the largest staging: host side, so warm up before a
// graph capture).
int blocks_per_sm(Kernel kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::pair<Kernel, size_t>, int> cache;
  static std::map<Kernel, bool> raised;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({kernel, smem});
  if (it != cache.end()) return it->second;
  if (smem > 0 && !raised[kernel]) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(kGemvMaxStagedBytes)));
    raised[kernel] = true;
  }
  int blocks = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kThreads, smem));
  cache[{kernel, smem}] = std::max(blocks, 1);
  return std::max(blocks, 1);
}

}  // namespace

int gemv_warps_per_col(int64_t n, int64_t k, bool swiglu, int64_t slots) {
  // Warps per output column (1, 2, 4, 8; each K slice keeps at least 4 loads per lane): the
  // fewest whose column groups fill the persistent grid to 90 % (one warp per column: 70 %),
  // fill = groups / (rounds · slots) with rounds = ceil(groups / slots); else the best fill.
  // More warps per column cost a cross-warp reduction per group, so they only pay where one warp
  // per column leaves the grid badly unbalanced. Measured alone on the H100 (cuda_bench, 528
  // slots): w_o and w_down (640 groups of 8 columns: 2 rounds at 61 %) 23.4 → 20.7 µs and
  // 60.4 → 55.2 µs with four warps per column (97 %); the fused w_qkv (768 groups, 73 %) 27.0 µs
  // with one, 27.8 with two; the output matrix (97 %) 441 µs with one, 472 with four. Narrow
  // matrices (w_k, w_v: 1,024 columns) split K to fill the machine.
  const int64_t chunks = k / 8;
  int best = 1;
  double best_fill = -1.0;
  for (int wpc = 1; wpc <= kWarps && (wpc == 1 || chunks / wpc >= 32 * kUnroll); wpc *= 2) {
    const int64_t cpb = kWarps / wpc;
    const int64_t groups = swiglu ? (n / 2 + cpb / 2 - 1) / (cpb / 2) : (n + cpb - 1) / cpb;
    const int64_t rounds = (groups + slots - 1) / slots;
    const double fill = static_cast<double>(groups) / static_cast<double>(rounds * slots);
    if (fill >= 0.9 || (wpc == 1 && fill >= 0.7)) return wpc;
    if (fill > best_fill) {
      best = wpc;
      best_fill = fill;
    }
  }
  return best;
}

size_t gemv_staged_bytes(int64_t m, int64_t k) { return static_cast<size_t>(m * k) * sizeof(bf16); }

void launch_gemv_fused(GemvArgs a, GemvFusion fusion, const GemvTuning& tuning, int num_sms, cudaStream_t s) {
  const int epilogue = fusion == GemvFusion::kSwiglu ? kSwiglu : fusion == GemvFusion::kQkvRope ? kQkvRope : kStore;
  const bool staged = a.norm_w != nullptr || epilogue != kStore ||
                      (tuning.stage_x && gemv_staged_bytes(a.m, a.k) <= kGemvMaxStagedBytes);
  const size_t smem = staged ? gemv_staged_bytes(a.m, a.k) : 0;
  const Kernel kernel = kernel_for(a.m, epilogue, staged);
  // Persistent grid: at most what is resident at once (whole-model decode measured best so, with
  // x staged; a block per column group was slower in the graph).
  int per_sm = blocks_per_sm(kernel, smem);
  if (tuning.blocks_per_sm > 0) per_sm = std::min(per_sm, tuning.blocks_per_sm);
  const int64_t slots = static_cast<int64_t>(per_sm) * num_sms;
  int wpc = tuning.warps_per_col > 0 ? tuning.warps_per_col
                                     : gemv_warps_per_col(a.n, a.k, epilogue == kSwiglu, slots);
  if (epilogue != kStore) wpc = std::min(wpc, 4);  // pairs of columns live in one block
  a.wpc = wpc;
  const int cpb = kWarps / wpc;
  const int64_t groups = epilogue == kSwiglu ? (a.n / 2 + cpb / 2 - 1) / (cpb / 2) : (a.n + cpb - 1) / cpb;
  const int64_t grid = std::min<int64_t>(groups, slots);
  a.prefetch_all = tuning.prefetch_all &&
                   static_cast<size_t>(a.n * a.k) * sizeof(bf16) <= kGemvL2PrefetchBytes;

  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned int>(grid));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = smem;
  config.stream = s;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = tuning.pdl ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, a));
}

void launch_gemv(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t m, int64_t n, int64_t k,
                 bool accumulate, const GemvTuning& tuning, int num_sms, cudaStream_t s) {
  GemvArgs a;
  a.x = x;
  a.w = w;
  a.bias = bias;
  a.y = y;
  a.m = m;
  a.n = n;
  a.k = k;
  a.accumulate = accumulate;
  launch_gemv_fused(a, GemvFusion::kNone, tuning, num_sms, s);
}

}  // namespace pixtral::backend::cuda
