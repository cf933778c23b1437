// Shared utilities of the CUDA conformance tests: the two backends, uploads of the same (bf16-exact)
// host data to both, and the relative-error comparison ‖cuda − cpu‖ / ‖cpu‖.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"

namespace pixtral::backend::testing {

inline Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend();
  return *b;
}
inline Backend& gpu() {
  static std::unique_ptr<Backend> b = std::move(make_cuda_backend(0)).value();
  return *b;
}

#define SKIP_WITHOUT_CUDA() \
  if (::pixtral::backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// n normal values rounded to bf16 (so both backends start from the same numbers).
inline std::vector<float> random_bf16(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = base::round_bf16(dist(rng));
  return v;
}

// The same tensor on both backends (CPU f32, CUDA in `gpu_dtype`).
struct Both {
  TensorBuffer c, g;
};
inline Both upload_both(const std::vector<float>& host, Shape shape, DType gpu_dtype = DType::kBF16) {
  Both b{cpu().alloc(DType::kF32, shape), gpu().alloc(gpu_dtype, shape)};
  EXPECT_EQ(static_cast<int64_t>(host.size()), shape.numel());
  cpu().upload(host.data(), DType::kF32, b.c);
  gpu().upload(host.data(), DType::kF32, b.g);
  return b;
}
inline Both upload_i32_both(const std::vector<int32_t>& host, Shape shape) {
  Both b{cpu().alloc(DType::kI32, shape), gpu().alloc(DType::kI32, shape)};
  cpu().upload(host.data(), DType::kI32, b.c);
  gpu().upload(host.data(), DType::kI32, b.g);
  return b;
}
inline Both zeros_both(Shape shape) { return {cpu().alloc(DType::kF32, shape), gpu().alloc(DType::kBF16, shape)}; }

// Relative L2 error ‖got − want‖ / ‖want‖; fails on NaN/Inf in got.
inline double rel_error(const std::vector<float>& want, const std::vector<float>& got) {
  EXPECT_EQ(want.size(), got.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ADD_FAILURE() << "non-finite CUDA value at " << i;
      return 1e9;
    }
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// A float tensor of backend b as host f32.
inline std::vector<float> download(Backend& b, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  b.download_f32(t, host.data());
  return host;
}

// Relative L2 error of the CUDA result against the CPU one; fails on NaN/Inf.
inline double rel_error(const Both& b) { return rel_error(download(cpu(), b.c), download(gpu(), b.g)); }

// A CUDA backend made with `name` = `value` in the environment (its switches are read at
// construction); name == nullptr: the defaults.
struct EnvCase {
  const char* name;
  const char* value;
};
inline std::unique_ptr<Backend> cuda_with(const EnvCase& e) {
  if (e.name != nullptr) setenv(e.name, e.value, 1);
  std::unique_ptr<Backend> g = std::move(make_cuda_backend(0)).value();
  if (e.name != nullptr) unsetenv(e.name);
  return g;
}

constexpr double kOpTolerance = 1e-2;

}  // namespace pixtral::backend::testing
