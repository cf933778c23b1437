// Small-M GEMV kernel (decode): bf16 weights streamed with 16-byte loads, fp32 accumulation.
// The cuBLASLt path for larger M lives in cuda_backend_matmul.cpp.
// Decode is bound by the weight read, so the kernel's job is to keep enough bytes in flight on
// every SM until the last column is done: each lane issues 4 independent 16-byte loads per step,
// and when a matrix has too few output columns to fill the machine (wk/wv: 1024) several warps
// share a column, each over a contiguous K slice.
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 4;  // 16-byte weight loads in flight per lane

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

// kWpc warps per output column: warp w of a block takes column blockIdx.x·(8/kWpc) + w/kWpc and
// K slice w % kWpc; lanes stride over the slice in chunks of 8 bf16 (16 bytes). The slices'
// sums meet in shared memory and are added in slice order (deterministic). The kM rows of x are
// read through L1/L2 (they are small and shared by every column).
template <int kM, int kWpc>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
gemv_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,
            bf16* __restrict__ y, int64_t n, int64_t k, bool accumulate) {
  constexpr int kCols = kWarpsPerBlock / kWpc;
  __shared__ float part[kWarpsPerBlock][kM];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kCols + warp / kWpc;
  const int slice = warp % kWpc;
  const int64_t chunks = k / 8, per = (chunks + kWpc - 1) / kWpc;
  const int64_t c_end = min(chunks, (slice + 1) * per);
  float acc[kM];
#pragma unroll
  for (int m = 0; m < kM; ++m) acc[m] = 0.0f;
  if (col < n) {
    const uint4* wrow = reinterpret_cast<const uint4*>(w + col * k);
    int64_t c = slice * per + lane;
    for (; c + 32 * (kUnroll - 1) < c_end; c += 32 * kUnroll) {
      uint4 wv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) wv[u] = __ldg(wrow + c + 32 * u);
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        const uint4* xrow = reinterpret_cast<const uint4*>(x + m * k);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) accumulate8(wv[u], __ldg(xrow + c + 32 * u), acc[m]);
      }
    }
    for (; c < c_end; c += 32) {
      const uint4 w0 = __ldg(wrow + c);
#pragma unroll
      for (int m = 0; m < kM; ++m) accumulate8(w0, __ldg(reinterpret_cast<const uint4*>(x + m * k) + c), acc[m]);
    }
  }
#pragma unroll
  for (int m = 0; m < kM; ++m)
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  if constexpr (kWpc > 1) {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < kM; ++m) part[warp][m] = acc[m];
    __syncthreads();
    if (slice != 0) return;
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      acc[m] = part[warp][m];
#pragma unroll
      for (int j = 1; j < kWpc; ++j) acc[m] += part[warp + j][m];
    }
  }
  if (lane == 0 && col < n) {
    const float b = bias ? __bfloat162float(bias[col]) : 0.0f;
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      float v = acc[m] + b;
      if (accumulate) v += __bfloat162float(y[m * n + col]);
      y[m * n + col] = __float2bfloat16_rn(v);
    }
  }
}

template <int kM, int kWpc>
void launch_mw(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t n, int64_t k, bool acc,
               cudaStream_t s) {
  gemv_kernel<kM, kWpc><<<ceil_div(n, kWarpsPerBlock / kWpc), kWarpsPerBlock * 32, 0, s>>>(x, w, bias, y, n, k, acc);
}

template <int kM>
void launch_m(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t n, int64_t k, bool acc, int wpc,
              cudaStream_t s) {
  switch (wpc) {
    case 1: launch_mw<kM, 1>(x, w, bias, y, n, k, acc, s); break;
    case 2: launch_mw<kM, 2>(x, w, bias, y, n, k, acc, s); break;
    case 4: launch_mw<kM, 4>(x, w, bias, y, n, k, acc, s); break;
    case 8: launch_mw<kM, 8>(x, w, bias, y, n, k, acc, s); break;
    default: std::abort();
  }
}

}  // namespace

int gemv_warps_per_col(int64_t n, int64_t k, int num_sms) {
  // Measured on the H100 (cuda_bench, M = 1): one warp per column with 4 loads in flight is best
  // down to 4096 columns (K = 4096..14336); only a matrix with fewer columns than ~16 warps per SM
  // (wk/wv: 1024 × 5120, 10.5 → 7.2 µs at 4 warps per column) gains from splitting K. Each slice
  // keeps at least 4 loads per lane.
  const int64_t want = 16LL * num_sms;
  const int64_t chunks = k / 8;
  int wpc = 1;
  while (wpc < 8 && n * wpc < want && chunks / (2 * wpc) >= 32 * 4) wpc *= 2;
  return wpc;
}

void launch_gemv(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t m, int64_t n, int64_t k,
                 bool accumulate, int warps_per_col, int num_sms, cudaStream_t s) {
  const int wpc = warps_per_col > 0 ? warps_per_col : gemv_warps_per_col(n, k, num_sms);
  switch (m) {
    case 1: launch_m<1>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 2: launch_m<2>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 3: launch_m<3>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 4: launch_m<4>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 5: launch_m<5>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 6: launch_m<6>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 7: launch_m<7>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    case 8: launch_m<8>(x, w, bias, y, n, k, accumulate, wpc, s); break;
    default: std::abort();
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace pixtral::backend::cuda
