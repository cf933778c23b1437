// The element-wise kernels of a transformer layer: rms_norm, rope (1D and 2D), silu_mul, gelu,
// and qkv_split_rope (after one GEMM over the fused [wq; wk; wv] weight: q rotated, k rotated and
// v written to their cache slots). All are bound by memory bandwidth (one read and one write of
// the activations), so where sizes and pointers allow it each thread moves 8 bf16 per 16-byte
// access and keeps a whole row slice in registers (one pass over global memory); other shapes
// take the scalar kernels of cuda_kernels.cu. Arithmetic and rounding are the CPU reference's
// (backend/cpu): fp32 math on bf16 storage, rounded where the reference rounds.
#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kNormThreads = 128;   // one block per row
constexpr int kHeadsPerThread = 8;  // rope: heads rotated with one set of angles

__device__ inline void unpack8(const uint4& v, float (&f)[8]) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

__device__ inline uint4 pack8(const float (&f)[8]) {
  uint4 v;
  auto* h = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

// rms_norm: one block per row; thread i holds 16-byte chunks i, i + 128, ... (at most kChunks).
template <int kChunks>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_vec_kernel(const bf16* x, const bf16* w, bf16* y, int64_t d, float eps) {
  const int64_t chunks = d / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + blockIdx.x * d);
  uint4* yr = reinterpret_cast<uint4*>(y + blockIdx.x * d);
  const uint4* wr = reinterpret_cast<const uint4*>(w);
  uint4 v[kChunks];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t c = threadIdx.x + i * kNormThreads;
    if (c >= chunks) continue;
    v[i] = xr[c];
    float f[8];
    unpack8(v[i], f);
#pragma unroll
    for (int e = 0; e < 8; ++e) sum += f[e] * f[e];
  }
  __shared__ float partial[kNormThreads / 32];
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < kNormThreads / 32; ++i) total += partial[i];
  const float inv = 1.0f / sqrtf(total / static_cast<float>(d) + eps);
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t c = threadIdx.x + i * kNormThreads;
    if (c >= chunks) continue;
    float f[8], g[8];
    unpack8(v[i], f);
    unpack8(wr[c], g);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = g[e] * __bfloat162float(__float2bfloat16_rn(f[e] * inv));
    yr[c] = pack8(f);
  }
}

// The angle of pair j (0..hd/2-1) of a token: 1D uses pos and frequency index j; 2D (pos_col)
// gives the first hd/4 pairs the row position with frequencies 2j and the others the column
// position with frequencies 2(j - hd/4) + 1 (spec/model.md §4.3), as the CPU computes them.
__device__ inline void rope_angle(int64_t i, int64_t j, const int32_t* pos, const int32_t* pos_col,
                                  int64_t hd, float theta, float& sn, float& cs) {
  int64_t k = j;
  float p = static_cast<float>(pos[i]);
  if (pos_col != nullptr) {
    if (j < hd / 4) {
      k = 2 * j;
    } else {
      k = 2 * (j - hd / 4) + 1;
      p = static_cast<float>(pos_col[i]);
    }
  }
  const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * k) / static_cast<float>(hd));
  sincosf(p * inv_freq, &sn, &cs);
}

// The angles of the 4 pairs of 16-byte chunk c of token i.
__device__ inline void rope_angles4(int64_t i, int64_t c, const int32_t* pos, const int32_t* pos_col, int64_t hd,
                                    float theta, float (&sn)[4], float (&cs)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) rope_angle(i, 4 * c + j, pos, pos_col, hd, theta, sn[j], cs[j]);
}

__device__ inline uint4 rotate4(const uint4& v, const float (&sn)[4], const float (&cs)[4]) {
  float f[8];
  unpack8(v, f);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float a = f[2 * j], b = f[2 * j + 1];
    f[2 * j] = a * cs[j] - b * sn[j];
    f[2 * j + 1] = a * sn[j] + b * cs[j];
  }
  return pack8(f);
}

// rope on x [t, h, hd]: thread = (token, 16-byte chunk = 4 pairs) × a group of kHeadsPerThread
// heads (blockIdx.y): the 4 angles are computed once, the heads' chunks loaded together.
__global__ void rope_vec_kernel(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h,
                                int64_t hd, float theta) {
  const int64_t per_row = hd / 8;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= t * per_row) return;
  const int64_t i = idx / per_row, c = idx % per_row;
  float sn[4], cs[4];
  rope_angles4(i, c, pos, pos_col, hd, theta, sn, cs);
  const int64_t h0 = blockIdx.y * static_cast<int64_t>(kHeadsPerThread);
  uint4 v[kHeadsPerThread];
#pragma unroll
  for (int hh = 0; hh < kHeadsPerThread; ++hh)
    if (h0 + hh < h) v[hh] = reinterpret_cast<const uint4*>(x + (i * h + h0 + hh) * hd)[c];
#pragma unroll
  for (int hh = 0; hh < kHeadsPerThread; ++hh)
    if (h0 + hh < h) reinterpret_cast<uint4*>(x + (i * h + h0 + hh) * hd)[c] = rotate4(v[hh], sn, cs);
}

// After the fused QKV GEMM: qkv [t, (h + 2·hkv)·hd] → q [t, h, hd] rotated, k rotated into
// k_cache row slots[i], v into v_cache row slots[i] (cache rows of hkv·hd). Same threads as
// rope_vec_kernel over the h + 2·hkv heads of a row.
__global__ void qkv_split_rope_kernel(const bf16* qkv, bf16* q, bf16* k_cache, bf16* v_cache,
                                      const int32_t* pos, const int32_t* slots, int64_t num_slots, int64_t t,
                                      int64_t h, int64_t hkv, int64_t hd, float theta) {
  const int64_t per_row = hd / 8, heads = h + 2 * hkv;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= t * per_row) return;
  const int64_t i = idx / per_row, c = idx % per_row;
  const int64_t slot = slots[i];
  if (slot < 0 || slot >= num_slots) __trap();  // slot out of the cache: a bug
  float sn[4], cs[4];
  rope_angles4(i, c, pos, nullptr, hd, theta, sn, cs);
  const int64_t h0 = blockIdx.y * static_cast<int64_t>(kHeadsPerThread);
  uint4 v[kHeadsPerThread];
#pragma unroll
  for (int hh = 0; hh < kHeadsPerThread; ++hh)
    if (h0 + hh < heads) v[hh] = reinterpret_cast<const uint4*>(qkv + (i * heads + h0 + hh) * hd)[c];
#pragma unroll
  for (int hh = 0; hh < kHeadsPerThread; ++hh) {
    const int64_t head = h0 + hh;
    if (head >= heads) continue;
    if (head < h) {
      reinterpret_cast<uint4*>(q + (i * h + head) * hd)[c] = rotate4(v[hh], sn, cs);
    } else if (head < h + hkv) {
      reinterpret_cast<uint4*>(k_cache + (slot * hkv + head - h) * hd)[c] = rotate4(v[hh], sn, cs);
    } else {
      reinterpret_cast<uint4*>(v_cache + (slot * hkv + head - h - hkv) * hd)[c] = v[hh];
    }
  }
}

__global__ void silu_mul_vec_kernel(const bf16* gu, bf16* out, int64_t t, int64_t f) {
  const int64_t per_row = f / 8;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < t * per_row;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / per_row, c = idx % per_row;
    const uint4* row = reinterpret_cast<const uint4*>(gu + i * 2 * f);
    float g[8], u[8];
    unpack8(row[c], g);
    unpack8(row[per_row + c], u);
#pragma unroll
    for (int e = 0; e < 8; ++e) g[e] = (g[e] / (1.0f + expf(-g[e]))) * u[e];
    reinterpret_cast<uint4*>(out)[idx] = pack8(g);
  }
}

__global__ void gelu_vec_kernel(bf16* x, int64_t n8) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float f[8];
    unpack8(reinterpret_cast<const uint4*>(x)[i], f);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = 0.5f * f[e] * (1.0f + erff(f[e] * 0.70710678118654752f));
    reinterpret_cast<uint4*>(x)[i] = pack8(f);
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

unsigned int grid_for(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 132 * 16));
}

template <int kChunks>
void launch_rms_norm_vec(const bf16* x, const bf16* w, bf16* y, int64_t t, int64_t d, float eps,
                         cudaStream_t s) {
  rms_norm_vec_kernel<kChunks><<<static_cast<unsigned int>(t), kNormThreads, 0, s>>>(x, w, y, d, eps);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool launch_rms_norm_vectorized(const bf16* x, const bf16* w, bf16* y, int64_t t, int64_t d, float eps,
                                cudaStream_t s) {
  if (d % 8 != 0 || !aligned16(x) || !aligned16(w) || !aligned16(y)) return false;
  const int64_t per_thread = (d / 8 + kNormThreads - 1) / kNormThreads;
  if (per_thread <= 1)
    launch_rms_norm_vec<1>(x, w, y, t, d, eps, s);
  else if (per_thread <= 2)
    launch_rms_norm_vec<2>(x, w, y, t, d, eps, s);
  else if (per_thread <= 4)
    launch_rms_norm_vec<4>(x, w, y, t, d, eps, s);
  else if (per_thread <= 8)
    launch_rms_norm_vec<8>(x, w, y, t, d, eps, s);
  else
    return false;
  return true;
}

bool launch_rope_vectorized(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h,
                            int64_t hd, float theta, cudaStream_t s) {
  if (hd % 8 != 0 || !aligned16(x)) return false;
  const dim3 grid(ceil_div(t * (hd / 8), kThreads), ceil_div(h, kHeadsPerThread));
  rope_vec_kernel<<<grid, kThreads, 0, s>>>(x, pos, pos_col, t, h, hd, theta);
  CUDA_CHECK_LAUNCH();
  return true;
}

bool launch_silu_mul_vectorized(const bf16* gate_up, bf16* out, int64_t t, int64_t f, cudaStream_t s) {
  if (f % 8 != 0 || !aligned16(gate_up) || !aligned16(out)) return false;
  silu_mul_vec_kernel<<<grid_for(t * f / 8), kThreads, 0, s>>>(gate_up, out, t, f);
  CUDA_CHECK_LAUNCH();
  return true;
}

bool launch_gelu_vectorized(bf16* x, int64_t n, cudaStream_t s) {
  if (n % 8 != 0 || !aligned16(x)) return false;
  gelu_vec_kernel<<<grid_for(n / 8), kThreads, 0, s>>>(x, n / 8);
  CUDA_CHECK_LAUNCH();
  return true;
}

bool launch_qkv_split_rope(const bf16* qkv, bf16* q, bf16* k_cache, bf16* v_cache, const int32_t* pos,
                           const int32_t* slots, int64_t num_slots, int64_t t, int64_t h, int64_t hkv,
                           int64_t hd, float theta, cudaStream_t s) {
  for (const void* p : {static_cast<const void*>(qkv), static_cast<const void*>(q),
                        static_cast<const void*>(k_cache), static_cast<const void*>(v_cache)})
    if (!aligned16(p)) return false;
  if (hd % 8 != 0) return false;
  const dim3 grid(ceil_div(t * (hd / 8), kThreads), ceil_div(h + 2 * hkv, kHeadsPerThread));
  qkv_split_rope_kernel<<<grid, kThreads, 0, s>>>(qkv, q, k_cache, v_cache, pos, slots, num_slots, t, h, hkv,
                                                  hd, theta);
  CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace pixtral::backend::cuda
