// Small-M GEMV kernel (decode): bf16 weights streamed with 16-byte loads, fp32 accumulation.
// The cuBLASLt path for larger M lives in cuda_backend_matmul.cpp.
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

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

// One warp per output column n: lanes stride over k in chunks of 8 bf16 (16 bytes), two chunks
// in flight; the kM rows of x are read from L1/L2 (they are small).
template <int kM>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
gemv_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,
            bf16* __restrict__ y, int64_t n, int64_t k, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (col >= n) return;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + col * k);
  const int64_t chunks = k / 8;
  float acc[kM];
#pragma unroll
  for (int m = 0; m < kM; ++m) acc[m] = 0.0f;
  int64_t c = lane;
  for (; c + 32 < chunks; c += 64) {
    const uint4 w0 = __ldg(wrow + c), w1 = __ldg(wrow + c + 32);
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      const uint4* xrow = reinterpret_cast<const uint4*>(x + m * k);
      accumulate8(w0, __ldg(xrow + c), acc[m]);
      accumulate8(w1, __ldg(xrow + c + 32), acc[m]);
    }
  }
  for (; c < chunks; c += 32) {
    const uint4 w0 = __ldg(wrow + c);
#pragma unroll
    for (int m = 0; m < kM; ++m) accumulate8(w0, __ldg(reinterpret_cast<const uint4*>(x + m * k) + c), acc[m]);
  }
#pragma unroll
  for (int m = 0; m < kM; ++m)
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  if (lane == 0) {
    const float b = bias ? __bfloat162float(bias[col]) : 0.0f;
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      float v = acc[m] + b;
      if (accumulate) v += __bfloat162float(y[m * n + col]);
      y[m * n + col] = __float2bfloat16_rn(v);
    }
  }
}

template <int kM>
void launch_m(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t n, int64_t k, bool acc,
              cudaStream_t s) {
  gemv_kernel<kM><<<ceil_div(n, kWarpsPerBlock), kWarpsPerBlock * 32, 0, s>>>(x, w, bias, y, n, k, acc);
}

}  // namespace

void launch_gemv(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t m, int64_t n, int64_t k,
                 bool accumulate, cudaStream_t s) {
  switch (m) {
    case 1: launch_m<1>(x, w, bias, y, n, k, accumulate, s); break;
    case 2: launch_m<2>(x, w, bias, y, n, k, accumulate, s); break;
    case 3: launch_m<3>(x, w, bias, y, n, k, accumulate, s); break;
    case 4: launch_m<4>(x, w, bias, y, n, k, accumulate, s); break;
    case 5: launch_m<5>(x, w, bias, y, n, k, accumulate, s); break;
    case 6: launch_m<6>(x, w, bias, y, n, k, accumulate, s); break;
    case 7: launch_m<7>(x, w, bias, y, n, k, accumulate, s); break;
    case 8: launch_m<8>(x, w, bias, y, n, k, accumulate, s); break;
    default: std::abort();
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace pixtral::backend::cuda
