// Element-wise and row-copy kernels of the CUDA backend. Each reproduces the CPU reference
// (backend/cpu) with bf16 storage and fp32 arithmetic. The element-wise ops here are the scalar
// fallbacks of the 16-byte kernels in cuda_elementwise.cu (sizes or pointers that do not allow
// 8-element accesses).
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kThreads = 256;

// Same bits as base::splitmix64 / base::counter_normal (src/base/dtype.h).
__device__ inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__device__ inline float counter_normal(uint64_t seed, uint64_t index) {
  const uint64_t r = splitmix64(seed * 0x632be59bd9b4e019ull + index);
  const float u1 = (static_cast<float>(r >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = static_cast<float>((r >> 16) & 0xffffffu) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

template <typename T>
__global__ void fill_random_kernel(T* dst, int64_t n, uint64_t seed, float mean, float stddev) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = __fmul_rn(stddev, counter_normal(seed, static_cast<uint64_t>(i)));  // no FMA: as the CPU
    if constexpr (sizeof(T) == 2) {
      dst[i] = __float2bfloat16_rn(__fadd_rn(mean, v));
    } else {
      dst[i] = __fadd_rn(mean, v);
    }
  }
}

unsigned int grid_for(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 16));
}

// One block per row: fp32 sum of squares, then y = bf16(w · bf16(x·inv)).
__global__ void rms_norm_kernel(const bf16* x, const bf16* w, bf16* y, int64_t d, float eps) {
  const bf16* xr = x + blockIdx.x * d;
  bf16* yr = y + blockIdx.x * d;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = __bfloat162float(xr[j]);
    sum += v * v;
  }
  __shared__ float partial[32];
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) t += __shfl_xor_sync(0xffffffffu, t, off);
    if (threadIdx.x == 0) partial[0] = t;
  }
  __syncthreads();
  const float inv = 1.0f / sqrtf(partial[0] / static_cast<float>(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float normed = __bfloat162float(__float2bfloat16_rn(__bfloat162float(xr[j]) * inv));
    yr[j] = __float2bfloat16_rn(__bfloat162float(w[j]) * normed);
  }
}

// One thread per (token, pair); loops over heads. Angles as the CPU computes them.
__global__ void rope_kernel(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h,
                            int64_t hd, float theta) {
  const int64_t half = hd / 2;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= t * half) return;
  const int64_t i = idx / half, q = idx % half;
  int64_t k = q;
  float p = static_cast<float>(pos[i]);
  if (pos_col != nullptr) {
    if (q < hd / 4) {
      k = 2 * q;
    } else {
      k = 2 * (q - hd / 4) + 1;
      p = static_cast<float>(pos_col[i]);
    }
  }
  const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * k) / static_cast<float>(hd));
  float sn, cs;
  sincosf(p * inv_freq, &sn, &cs);
  for (int64_t head = 0; head < h; ++head) {
    bf16* v = x + (i * h + head) * hd + 2 * q;
    const float a = __bfloat162float(v[0]), c = __bfloat162float(v[1]);
    v[0] = __float2bfloat16_rn(a * cs - c * sn);
    v[1] = __float2bfloat16_rn(a * sn + c * cs);
  }
}

__global__ void silu_mul_kernel(const bf16* gu, bf16* out, int64_t t, int64_t f) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < t * f;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / f, j = idx % f;
    const float g = __bfloat162float(gu[i * 2 * f + j]);
    out[idx] = __float2bfloat16_rn((g / (1.0f + expf(-g))) * __bfloat162float(gu[i * 2 * f + f + j]));
  }
}

__global__ void gelu_kernel(bf16* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = __bfloat162float(x[i]);
    x[i] = __float2bfloat16_rn(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
  }
}

// One block per copied row; elements of type T (uint4 when rows allow 16-byte moves, else u16).
// blockIdx.y == 1 copies the second (src2, dst2) pair with the same indices (K and V of kv_write
// in one launch).
template <typename T>
__global__ void copy_rows_kernel(const T* src, const int32_t* src_index, int64_t src_rows, T* dst,
                                 const int32_t* dst_index, int64_t dst_rows, int64_t row_elems, const T* src2 = nullptr,
                                 T* dst2 = nullptr) {
  if (blockIdx.y == 1) {
    src = src2;
    dst = dst2;
  }
  const int64_t i = blockIdx.x;
  const int64_t s = src_index ? src_index[i] : i;
  const int64_t d = dst_index ? dst_index[i] : i;
  if (s < 0 || s >= src_rows || d < 0 || d >= dst_rows) __trap();  // index out of range: a bug
  for (int64_t j = threadIdx.x; j < row_elems; j += blockDim.x) dst[d * row_elems + j] = src[s * row_elems + j];
}

__global__ void patchify_kernel(const float* img, bf16* out, int64_t c, int64_t h, int64_t w, int64_t p) {
  const int64_t cols = w / p, elems = c * p * p, total = (h / p) * cols * elems;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t patch = idx / elems, e = idx % elems;
    const int64_t r = patch / cols, cc = patch % cols;
    const int64_t ch = e / (p * p), ky = (e / p) % p, kx = e % p;
    out[idx] = __float2bfloat16_rn(img[(ch * h + r * p + ky) * w + cc * p + kx]);
  }
}

__global__ void add_bias_kernel(bf16* y, const bf16* bias, int64_t m, int64_t n) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < m * n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[idx] = __float2bfloat16_rn(__bfloat162float(y[idx]) + __bfloat162float(bias[idx % n]));
}

}  // namespace

void launch_fill_random_bf16(bf16* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t s) {
  if (n == 0) return;
  fill_random_kernel<<<grid_for(n), kThreads, 0, s>>>(dst, n, seed, mean, stddev);
  CUDA_CHECK_LAUNCH();
}

void launch_fill_random_f32(float* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t s) {
  if (n == 0) return;
  fill_random_kernel<<<grid_for(n), kThreads, 0, s>>>(dst, n, seed, mean, stddev);
  CUDA_CHECK_LAUNCH();
}

void launch_rms_norm(const bf16* x, const bf16* w, bf16* y, int64_t t, int64_t d, float eps, cudaStream_t s) {
  if (t == 0 || launch_rms_norm_vectorized(x, w, y, t, d, eps, s)) return;
  const int threads = d >= 1024 ? 512 : 128;
  rms_norm_kernel<<<static_cast<unsigned int>(t), threads, 0, s>>>(x, w, y, d, eps);
  CUDA_CHECK_LAUNCH();
}

void launch_rope(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h, int64_t hd,
                 float theta, cudaStream_t s) {
  if (t == 0 || launch_rope_vectorized(x, pos, pos_col, t, h, hd, theta, s)) return;
  rope_kernel<<<ceil_div(t * (hd / 2), kThreads), kThreads, 0, s>>>(x, pos, pos_col, t, h, hd, theta);
  CUDA_CHECK_LAUNCH();
}

void launch_silu_mul(const bf16* gate_up, bf16* out, int64_t t, int64_t f, cudaStream_t s) {
  if (t * f == 0 || launch_silu_mul_vectorized(gate_up, out, t, f, s)) return;
  silu_mul_kernel<<<grid_for(t * f), kThreads, 0, s>>>(gate_up, out, t, f);
  CUDA_CHECK_LAUNCH();
}

void launch_gelu(bf16* x, int64_t n, cudaStream_t s) {
  if (n == 0 || launch_gelu_vectorized(x, n, s)) return;
  gelu_kernel<<<grid_for(n), kThreads, 0, s>>>(x, n);
  CUDA_CHECK_LAUNCH();
}

void launch_copy_rows(const void* src, const int32_t* src_index, int64_t src_rows, void* dst,
                      const int32_t* dst_index, int64_t dst_rows, int64_t n, int64_t row_bytes, cudaStream_t s) {
  if (n == 0 || row_bytes == 0) return;
  const bool wide = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(dst) % 16 == 0;
  if (wide) {
    const int64_t elems = row_bytes / 16;
    const int threads = static_cast<int>(std::min<int64_t>(256, (elems + 31) / 32 * 32));
    copy_rows_kernel<<<static_cast<unsigned int>(n), threads, 0, s>>>(
        static_cast<const uint4*>(src), src_index, src_rows, static_cast<uint4*>(dst), dst_index, dst_rows, elems);
  } else {
    const int64_t elems = row_bytes / 2;
    copy_rows_kernel<<<static_cast<unsigned int>(n), 256, 0, s>>>(static_cast<const uint16_t*>(src), src_index,
                                                                   src_rows, static_cast<uint16_t*>(dst), dst_index,
                                                                   dst_rows, elems);
  }
  CUDA_CHECK_LAUNCH();
}

void launch_kv_write(const void* k, const void* v, void* k_cache, void* v_cache, const int32_t* slots, int64_t num_slots,
                     int64_t n, int64_t row_bytes, cudaStream_t s) {
  if (n == 0 || row_bytes == 0) return;
  bool wide = row_bytes % 16 == 0;
  for (const void* p : {k, v, static_cast<const void*>(k_cache), static_cast<const void*>(v_cache)})
    wide = wide && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  if (!wide) {
    launch_copy_rows(k, nullptr, n, k_cache, slots, num_slots, n, row_bytes, s);
    launch_copy_rows(v, nullptr, n, v_cache, slots, num_slots, n, row_bytes, s);
    return;
  }
  const int64_t elems = row_bytes / 16;
  const int threads = static_cast<int>(std::min<int64_t>(256, (elems + 31) / 32 * 32));
  copy_rows_kernel<<<dim3(static_cast<unsigned int>(n), 2), threads, 0, s>>>(
      static_cast<const uint4*>(k), nullptr, n, static_cast<uint4*>(k_cache), slots, num_slots, elems,
      static_cast<const uint4*>(v), static_cast<uint4*>(v_cache));
  CUDA_CHECK_LAUNCH();
}

void launch_patchify(const float* image, bf16* patches, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s) {
  const int64_t total = (h / p) * (w / p) * c * p * p;
  if (total == 0) return;
  patchify_kernel<<<grid_for(total), kThreads, 0, s>>>(image, patches, c, h, w, p);
  CUDA_CHECK_LAUNCH();
}

void launch_add_bias(bf16* y, const bf16* bias, int64_t m, int64_t n, cudaStream_t s) {
  if (m * n == 0) return;
  add_bias_kernel<<<grid_for(m * n), kThreads, 0, s>>>(y, bias, m, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace pixtral::backend::cuda
