#include "bench_common.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"

namespace pixtral::bench {

double median_seconds(backend::Backend& b, int warmup, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  b.synchronize();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    b.synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::unique_ptr<backend::Backend> backend_with_env(const char* name, const char* value) {
  setenv(name, value, 1);
  auto b = std::move(pixtral::backend::make_cuda_backend(0)).value();
  unsetenv(name);
  return b;
}

}  // namespace pixtral::bench
