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
// This file holds that register kernel (4 or 8 loads per lane: PIXTRAL_CUDA_GEMV_UNROLL) and the
// launcher, which also picks the streaming variants (GemvTuning): the cp.async-ring kernel
// (cuda_gemv_ring.cu), the warp kernel (cuda_gemv_warp.cu), a block per column group instead of
// the persistent grid. Shared device pieces: cuda_gemv.cuh.
// The cuBLASLt path for larger M lives in cuda_backend_matmul.cpp.
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cuda_gemv.cuh"

namespace pixtral::backend::cuda {
namespace {

using namespace gemv;  // NOLINT(google-build-using-namespace): the GEMV kernels' shared pieces

template <int kM, int kEpi, bool kStaged, int kUnroll>
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
    stage_x<kM>(a, xs, red);
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
          for (int u = 0; u < kUnroll; ++u) accumulate8(wv[u], x_chunk<kStaged>(a, xs, m, cc + 32 * u), acc[m]);
        }
      }
      for (; cc < c_end; cc += 32) {
        const uint4 w0 = __ldg(wrow + cc);
#pragma unroll
        for (int m = 0; m < kM; ++m) accumulate8(w0, x_chunk<kStaged>(a, xs, m, cc), acc[m]);
      }
    }
    finish_group_block<kM, kEpi, true>(a, g, acc, part, vals);
  }
}

struct RegisterFamily {
  template <int kM, int kEpi, bool kStaged, int kUnroll>
  static Kernel get() {
    return gemv_fused_kernel<kM, kEpi, kStaged, kUnroll>;
  }
};

// The dynamic shared memory `kernel` may use at most: the device's opt-in limit less its static
// arrays.
size_t max_dynamic_smem(Kernel kernel) {
  static std::mutex mu;
  static std::map<Kernel, size_t> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(kernel);
  if (it != cache.end()) return it->second;
  int device = 0, optin = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  const size_t bytes = static_cast<size_t>(optin) - attr.sharedSizeBytes;
  cache[kernel] = bytes;
  return bytes;
}

// Resident blocks per SM for a kernel and its dynamic shared memory (the first call of a kernel
// with dynamic shared memory raises its limit to `limit`: the largest staging, or for the ring
// kernels all there is; host side, so warm up before a graph capture).
int blocks_per_sm(Kernel kernel, size_t smem, size_t limit) {
  static std::mutex mu;
  static std::map<std::pair<Kernel, size_t>, int> cache;
  static std::map<Kernel, bool> raised;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({kernel, smem});
  if (it != cache.end()) return it->second;
  if (smem > 0 && !raised[kernel]) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(limit)));
    raised[kernel] = true;
  }
  int blocks = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kThreads, smem));
  cache[{kernel, smem}] = std::max(blocks, 1);
  return std::max(blocks, 1);
}

// The kernel a launch takes, its dynamic shared memory and the limit to raise it to.
struct KernelChoice {
  Kernel kernel = nullptr;
  size_t smem = 0, limit = kGemvMaxStagedBytes;
  bool warp_units = false;
};

// A ring kernel (the warp kernel, or a ring pipe) when its x staging and the warps' rings fit in
// shared memory (a plain GEMV then reads x through L1 instead), else the register kernel.
KernelChoice choose_kernel(const GemvArgs& a, int epilogue, bool staged, const GemvTuning& tuning) {
  const int unroll = tuning.unroll == 8 ? 8 : 4;
  const int warp_max_m = tuning.warp_max_m >= 0                                                  ? tuning.warp_max_m
                         : tuning.pipe == GemvPipe::kRegisters && tuning.warps_per_col == 0 ? 1
                                                                                             : 0;
  const bool warp_units = a.m <= warp_max_m;
  if (warp_units || tuning.pipe != GemvPipe::kRegisters) {
    const size_t ring = kWarps * ring_bytes_per_warp(tuning.stages, unroll);
    auto ring_kernel_for = [&](bool st) {
      return warp_units ? warp_kernel(a.m, epilogue, st, unroll) : ring_kernel(a.m, epilogue, st, unroll);
    };
    auto fits = [&](bool st, KernelChoice& out) {
      const Kernel kernel = ring_kernel_for(st);
      const size_t smem = (st ? gemv_staged_bytes(a.m, a.k) : 0) + ring, limit = max_dynamic_smem(kernel);
      out = {kernel, smem, limit, warp_units};
      return smem <= limit;
    };
    KernelChoice choice;
    if (fits(staged, choice)) return choice;
    if (staged && epilogue == kStore && a.norm_w == nullptr && fits(false, choice)) return choice;
  }
  return {register_kernel(a.m, epilogue, staged, unroll), staged ? gemv_staged_bytes(a.m, a.k) : 0,
          kGemvMaxStagedBytes, false};
}

}  // namespace

Kernel gemv::register_kernel(int64_t m, int epilogue, bool staged, int unroll) {
  return pick_kernel<RegisterFamily>(m, epilogue, staged, unroll);
}

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
  // SwiGLU blocks hold gate/up column pairs: at most kWarps / 2 warps per column (cpb / 2 >= 1).
  const int max_wpc = swiglu ? kWarps / 2 : kWarps;
  for (int wpc = 1; wpc <= max_wpc && (wpc == 1 || chunks / wpc >= 32 * 4); wpc *= 2) {
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
  const KernelChoice choice = choose_kernel(a, epilogue, staged, tuning);
  const size_t smem = choice.smem;
  const Kernel kernel = choice.kernel;
  // Persistent grid: at most what is resident at once (whole-model decode measured best so, with
  // x staged; a block per column group was slower in the graph); full_grid: every block with work.
  int per_sm = blocks_per_sm(kernel, smem, choice.limit);
  if (tuning.blocks_per_sm > 0) per_sm = std::min(per_sm, tuning.blocks_per_sm);
  const int64_t slots = static_cast<int64_t>(per_sm) * num_sms;
  int64_t work = 0;  // blocks with work: column groups, or (warp kernel) outputs / 8
  if (choice.warp_units) {
    a.wpc = 1;
    const int64_t units = epilogue == kStore ? a.n : a.n / 2;
    work = (units + kWarps - 1) / kWarps;
  } else {
    int wpc = tuning.warps_per_col > 0 ? tuning.warps_per_col
                                       : gemv_warps_per_col(a.n, a.k, epilogue == kSwiglu, slots);
    if (epilogue != kStore) wpc = std::min(wpc, 4);  // pairs of columns live in one block
    a.wpc = wpc;
    const int cpb = kWarps / wpc;
    work = epilogue == kSwiglu ? (a.n / 2 + cpb / 2 - 1) / (cpb / 2) : (a.n + cpb - 1) / cpb;
  }
  const int64_t grid = tuning.full_grid ? work : std::min<int64_t>(work, slots);
  a.prefetch_all = tuning.prefetch_all &&
                   static_cast<size_t>(a.n * a.k) * sizeof(bf16) <= kGemvL2PrefetchBytes;
  a.stages = tuning.stages;
  a.local_sync = tuning.pipe == GemvPipe::kRingLocal;
  a.evict_first = tuning.evict_first;

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
