#include "backend/cpu/cpu_backend.h"

#include <cblas.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/thread_pool.h"

namespace pixtral::backend {
namespace {

void check_f32(const Tensor& t, const char* what) {
  PX_CHECK_MSG(t.dtype == DType::kF32, what);
}

base::ThreadPool& pool() { return base::ThreadPool::global(); }

}  // namespace

CpuBackend::CpuBackend() = default;

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

TensorBuffer CpuBackend::alloc(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  const size_t bytes = std::max<size_t>(64, (t.nbytes() + 63) / 64 * 64);
  t.data = std::aligned_alloc(64, bytes);
  PX_CHECK_MSG(t.data != nullptr, "host allocation failed");
  std::memset(t.data, 0, bytes);
  return TensorBuffer(this, t);
}

void CpuBackend::free(Tensor& tensor) {
  std::free(tensor.data);
  tensor.data = nullptr;
}

void CpuBackend::upload(const void* host, DType host_dtype, const Tensor& dst) {
  if (dst.dtype == DType::kI32 || dst.dtype == DType::kI64) {
    PX_CHECK(host_dtype == dst.dtype);
    std::memcpy(dst.data, host, dst.nbytes());
    return;
  }
  check_f32(dst, "CPU tensors are f32");
  PX_CHECK(base::convert_to_f32(host_dtype, host, dst.as<float>(), static_cast<size_t>(dst.numel())));
}

void CpuBackend::download_f32(const Tensor& src, float* host) {
  check_f32(src, "CPU tensors are f32");
  std::memcpy(host, src.data, src.nbytes());
}

void CpuBackend::download_i32(const Tensor& src, int32_t* host) {
  PX_CHECK_MSG(src.dtype == DType::kI32, "download_i32 of an I32 tensor");
  std::memcpy(host, src.data, src.nbytes());
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  PX_CHECK(src.dtype == dst.dtype && src.numel() == dst.numel());
  std::memmove(dst.data, src.data, src.nbytes());
}

void CpuBackend::fill_random(const Tensor& dst, uint64_t seed, float mean, float stddev) {
  check_f32(dst, "CPU tensors are f32");
  float* x = dst.as<float>();
  pool().parallel_for(dst.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = mean + stddev * base::counter_normal(seed, static_cast<uint64_t>(i));
  }, 4096);
}

void CpuBackend::matmul(const MatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  PX_CHECK_MSG(p.w.dim(1) == k && p.y.dim(0) == m && p.y.dim(1) == n, "matmul shapes");
  float* y = p.y.as<float>();
  if (m == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, p.x.as<float>(), static_cast<int>(k), p.w.as<float>(),
              static_cast<int>(k), p.accumulate ? 1.0f : 0.0f, y, static_cast<int>(n));
  if (!p.bias.empty()) {
    const float* b = p.bias.as<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] += b[j];
  }
}

void CpuBackend::rms_norm(const RmsNormParams& p) {
  const int64_t t = p.x.dim(0), d = p.x.dim(1);
  const float* x = p.x.as<float>();
  const float* w = p.weight.as<float>();
  float* y = p.y.as<float>();
  pool().parallel_for(t, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double sum = 0;  // fp32 statistics in the reference; double here only tightens them
      for (int64_t j = 0; j < d; ++j) sum += static_cast<double>(x[i * d + j]) * x[i * d + j];
      const float inv = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(d)) + p.eps);
      for (int64_t j = 0; j < d; ++j) y[i * d + j] = w[j] * (x[i * d + j] * inv);
    }
  }, 16);
}

void CpuBackend::rope(const RopeParams& p) {
  const int64_t t = p.x.dim(0), h = p.x.dim(1), hd = p.x.dim(2);
  const bool two_d = !p.pos_col.empty();
  // ref: spec/model.md §4.3 / §7 — inverse frequencies in fp32, as the references compute them.
  std::vector<float> inv_freq(static_cast<size_t>(hd / 2));
  for (int64_t k = 0; k < hd / 2; ++k)
    inv_freq[k] = 1.0f / std::pow(p.theta, static_cast<float>(2 * k) / static_cast<float>(hd));
  const int32_t* pos = p.pos.as<int32_t>();
  const int32_t* pos_col = two_d ? p.pos_col.as<int32_t>() : nullptr;
  float* x = p.x.as<float>();
  pool().parallel_for(t, [&](int64_t b, int64_t e) {
    std::vector<float> cos_v(hd / 2), sin_v(hd / 2);
    for (int64_t i = b; i < e; ++i) {
      for (int64_t q = 0; q < hd / 2; ++q) {
        float angle;
        if (!two_d) {
          angle = static_cast<float>(pos[i]) * inv_freq[q];
        } else if (q < hd / 4) {
          angle = static_cast<float>(pos[i]) * inv_freq[2 * q];  // row · f_{2q}
        } else {
          angle = static_cast<float>(pos_col[i]) * inv_freq[2 * (q - hd / 4) + 1];  // col · f_{2q'+1}
        }
        cos_v[q] = std::cos(angle);
        sin_v[q] = std::sin(angle);
      }
      for (int64_t head = 0; head < h; ++head) {
        float* v = x + (i * h + head) * hd;
        for (int64_t q = 0; q < hd / 2; ++q) {
          const float a = v[2 * q], c = v[2 * q + 1];
          v[2 * q] = a * cos_v[q] - c * sin_v[q];
          v[2 * q + 1] = a * sin_v[q] + c * cos_v[q];
        }
      }
    }
  }, 4);
}

void CpuBackend::silu_mul(const SiluMulParams& p) {
  const int64_t t = p.out.dim(0), f = p.out.dim(1);
  PX_CHECK(p.gate_up.dim(1) == 2 * f);
  const float* gu = p.gate_up.as<float>();
  float* out = p.out.as<float>();
  pool().parallel_for(t, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t j = 0; j < f; ++j) {
        const float g = gu[i * 2 * f + j];
        out[i * f + j] = (g / (1.0f + std::exp(-g))) * gu[i * 2 * f + f + j];
      }
  }, 4);
}

void CpuBackend::gelu(const GeluParams& p) {
  float* x = p.x.as<float>();
  const int64_t n = p.x.numel();
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * static_cast<float>(M_SQRT1_2)));
}

void CpuBackend::embedding(const EmbeddingParams& p) {
  const int64_t t = p.ids.dim(0), d = p.table.dim(1), v = p.table.dim(0);
  const int32_t* ids = p.ids.as<int32_t>();
  for (int64_t i = 0; i < t; ++i) {
    PX_CHECK_MSG(ids[i] >= 0 && ids[i] < v, "token id out of the vocabulary");
    std::memcpy(p.out.as<float>() + i * d, p.table.as<float>() + ids[i] * d, d * sizeof(float));
  }
}

void CpuBackend::scatter_rows(const ScatterRowsParams& p) {
  const int64_t n = p.src.dim(0), d = p.src.dim(1);
  const int32_t* index = p.index.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    PX_CHECK(index[i] >= 0 && index[i] < p.dst.dim(0));
    std::memcpy(p.dst.as<float>() + index[i] * d, p.src.as<float>() + i * d, d * sizeof(float));
  }
}

void CpuBackend::gather_rows(const GatherRowsParams& p) {
  const int64_t n = p.out.dim(0), d = p.src.dim(1);
  const int32_t* index = p.index.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    PX_CHECK(index[i] >= 0 && index[i] < p.src.dim(0));
    std::memcpy(p.out.as<float>() + i * d, p.src.as<float>() + index[i] * d, d * sizeof(float));
  }
}

void CpuBackend::patchify(const PatchifyParams& p) {
  const int64_t c = p.image.dim(0), h = p.image.dim(1), w = p.image.dim(2), ps = p.patch_size;
  const int64_t rows = h / ps, cols = w / ps;
  PX_CHECK(p.patches.dim(0) == rows * cols && p.patches.dim(1) == c * ps * ps);
  const float* img = p.image.as<float>();
  float* out = p.patches.as<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t cc = 0; cc < cols; ++cc) {
      float* dst = out + (r * cols + cc) * c * ps * ps;
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t ky = 0; ky < ps; ++ky)
          for (int64_t kx = 0; kx < ps; ++kx)
            dst[(ch * ps + ky) * ps + kx] = img[(ch * h + r * ps + ky) * w + cc * ps + kx];
    }
}

void CpuBackend::kv_write(const KvWriteParams& p) {
  const int64_t t = p.k.dim(0), row = p.k.dim(1) * p.k.dim(2);
  const int64_t num_slots = p.k_cache.dim(0) * p.k_cache.dim(1);
  const int32_t* slots = p.slot_mapping.as<int32_t>();
  for (int64_t i = 0; i < t; ++i) {
    PX_CHECK_MSG(slots[i] >= 0 && slots[i] < num_slots, "KV slot out of the cache");
    std::memcpy(p.k_cache.as<float>() + slots[i] * row, p.k.as<float>() + i * row, row * sizeof(float));
    std::memcpy(p.v_cache.as<float>() + slots[i] * row, p.v.as<float>() + i * row, row * sizeof(float));
  }
}

}  // namespace pixtral::backend
