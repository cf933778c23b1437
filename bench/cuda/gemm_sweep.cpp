// gemm_sweep: every cuBLASLt candidate for the model's many-row GEMM shapes, timed alone.
//
// The backend takes the heuristic's first algorithm (cuda_backend_matmul.cpp). This program asks
// the heuristic for up to 32 candidates per shape, times each on its own operands (bf16 in and
// out, fp32 accumulate, the backend's layouts: yᵀ[N,M] = wᵀ·xᵀ with A = w transposed) and prints
// them beside the 789 TFLOP/s bf16 ceiling (perf/targets.md), so that a shape whose first pick is
// far from the best shows up. The residual-add GEMMs (beta = 1) are timed with beta = 0 too.
//
// The operands are random normal bf16 (x ~ N(0, 1), w ~ N(0, 0.02), as the model's): tensor-core
// power depends on how many bits toggle, and the H100 runs these GEMMs at its 700 W cap, where its
// clock drops (1,980 MHz idle, 1,500-1,650 MHz under the prefill). Each candidate therefore runs
// back to back for `ms` milliseconds (default 300) and the figure is the mean over the second half:
// the sustained, power-limited rate, which is what a prefill sees.
//
// Usage: gemm_sweep [prefill|vision|chunk|decode64|all] [candidates] [ms]
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr double kBf16Flops = 789e12;  // measured dense bf16 GEMM rate of the H100 (perf/targets.md)
constexpr size_t kWorkspaceBytes = 32u << 20;

#define CHECK_CUDA(expr)                                                                    \
  do {                                                                                      \
    if (cudaError_t e_ = (expr); e_ != cudaSuccess) {                                       \
      std::fprintf(stderr, "gemm_sweep: %s: %s\n", #expr, cudaGetErrorString(e_));           \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
#define CHECK_LT(expr)                                                                      \
  do {                                                                                      \
    if (cublasStatus_t st_ = (expr); st_ != CUBLAS_STATUS_SUCCESS) {                         \
      std::fprintf(stderr, "gemm_sweep: %s: status %d\n", #expr, static_cast<int>(st_));    \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

struct Shape {
  const char* name;
  int64_t m, n, k;
  bool accumulate;  // the residual add through beta = 1
};

std::vector<Shape> shapes(const std::string& set) {
  std::vector<Shape> out;
  if (set == "prefill" || set == "all") {  // the decoder at 4,160 rows (perf/targets.md's prefill)
    out.push_back({"prefill wqkv", 4160, 6144, 5120, false});
    out.push_back({"prefill wo", 4160, 5120, 4096, true});
    out.push_back({"prefill gate|up", 4160, 28672, 5120, false});
    out.push_back({"prefill wdown", 4160, 5120, 14336, true});
  }
  if (set == "vision" || set == "all") {  // the vision encoder at 4,096 patches
    out.push_back({"vision wq (one of q/k/v)", 4096, 1024, 1024, false});
    out.push_back({"vision wqkv fused", 4096, 3072, 1024, false});
    out.push_back({"vision wo", 4096, 1024, 1024, true});
    out.push_back({"vision gate|up", 4096, 8192, 1024, false});
    out.push_back({"vision wdown", 4096, 1024, 4096, true});
  }
  if (set == "decode64" || set == "all") {  // a batch-64 decode step: bound by the weight read
    out.push_back({"decode64 wqkv", 64, 6144, 5120, false});
    out.push_back({"decode64 wo", 64, 5120, 4096, true});
    out.push_back({"decode64 gate|up", 64, 28672, 5120, false});
    out.push_back({"decode64 wdown", 64, 5120, 14336, true});
  }
  if (set == "chunk" || set == "all") {  // a serving step of 384 rows (the image load's budget)
    out.push_back({"step384 wqkv", 384, 6144, 5120, false});
    out.push_back({"step384 wo", 384, 5120, 4096, true});
    out.push_back({"step384 gate|up", 384, 28672, 5120, false});
    out.push_back({"step384 wdown", 384, 5120, 14336, true});
  }
  return out;
}

template <typename T>
T config_attr(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T v{};
  size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof v, &written) != CUBLAS_STATUS_SUCCESS) return T{};
  return v;
}

// n bf16 values ~ N(0, stddev) (Box-Muller over a 64-bit LCG, truncated to bf16) into dst.
void upload_normal(void* dst, size_t n, float stddev, uint64_t seed) {
  std::vector<uint16_t> host(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  for (size_t i = 0; i < n; ++i) {
    const float v = stddev * static_cast<float>(std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()));
    uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    host[i] = static_cast<uint16_t>(bits >> 16);
  }
  CHECK_CUDA(cudaMemcpy(dst, host.data(), n * 2, cudaMemcpyHostToDevice));
}

void sweep(cublasLtHandle_t lt, cudaStream_t stream, void* workspace, const Shape& s, int max_candidates,
           double run_ms) {
  const size_t x_bytes = static_cast<size_t>(s.m * s.k) * 2, w_bytes = static_cast<size_t>(s.n * s.k) * 2;
  const size_t y_bytes = static_cast<size_t>(s.m * s.n) * 2;
  void *x = nullptr, *w = nullptr, *y = nullptr;
  CHECK_CUDA(cudaMalloc(&x, x_bytes));
  // Weight-read-bound shapes (few rows) cycle through copies of w totalling at least 256 MB, so
  // that no candidate is timed with its weights in the 50 MB L2.
  const int copies = static_cast<int>(std::max<size_t>(1, ((256u << 20) + w_bytes - 1) / w_bytes));
  CHECK_CUDA(cudaMalloc(&w, w_bytes * static_cast<size_t>(copies)));
  CHECK_CUDA(cudaMalloc(&y, y_bytes));
  upload_normal(x, x_bytes / 2, 1.0f, 1);
  for (int i = 0; i < copies; ++i) upload_normal(static_cast<char*>(w) + w_bytes * static_cast<size_t>(i), w_bytes / 2, 0.02f, 2 + i);
  int next_copy = 0;
  upload_normal(y, y_bytes / 2, 1.0f, 3);

  cublasLtMatmulDesc_t desc;
  CHECK_LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CHECK_LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  cublasLtMatrixLayout_t a, b, c;
  CHECK_LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, static_cast<uint64_t>(s.k), static_cast<uint64_t>(s.n), s.k));
  CHECK_LT(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, static_cast<uint64_t>(s.k), static_cast<uint64_t>(s.m), s.k));
  CHECK_LT(cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, static_cast<uint64_t>(s.n), static_cast<uint64_t>(s.m), s.n));
  cublasLtMatmulPreference_t pref;
  CHECK_LT(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  CHECK_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(max_candidates));
  int returned = 0;
  CHECK_LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, max_candidates, results.data(), &returned));

  const double flops = 2.0 * static_cast<double>(s.m) * s.n * s.k;
  std::printf("== %s: M %lld N %lld K %lld%s, %.1f GFLOP, %d candidates\n", s.name, static_cast<long long>(s.m),
              static_cast<long long>(s.n), static_cast<long long>(s.k), s.accumulate ? " (+= y)" : "", flops / 1e9,
              returned);
  cudaEvent_t begin, end;
  CHECK_CUDA(cudaEventCreate(&begin));
  CHECK_CUDA(cudaEventCreate(&end));
  double first_us = 0, best_us = 1e30;
  int best = -1;
  for (int i = 0; i < returned; ++i) {
    const cublasLtMatmulAlgo_t& algo = results[static_cast<size_t>(i)].algo;
    double us_by_beta[2] = {0, 0};
    for (int accumulate = 0; accumulate < (s.accumulate ? 2 : 1); ++accumulate) {
      const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
      auto run = [&] {
        const void* wi = static_cast<const char*>(w) + w_bytes * static_cast<size_t>(next_copy);
        next_copy = (next_copy + 1) % copies;
        return cublasLtMatmul(lt, desc, &alpha, wi, a, x, b, &beta, y, c, y, c, &algo, workspace, kWorkspaceBytes,
                              stream);
      };
      if (run() != CUBLAS_STATUS_SUCCESS) break;
      CHECK_CUDA(cudaStreamSynchronize(stream));
      // Back to back for run_ms: batches of 8 calls, the first half heats the chip to its power
      // limit, the second half is timed.
      const auto start = std::chrono::steady_clock::now();
      auto elapsed_ms = [&] {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      };
      while (elapsed_ms() < run_ms / 2) {
        for (int r = 0; r < 8; ++r) run();
        CHECK_CUDA(cudaStreamSynchronize(stream));
      }
      int calls = 0;
      CHECK_CUDA(cudaEventRecord(begin, stream));
      while (elapsed_ms() < run_ms) {
        for (int r = 0; r < 8; ++r) run();
        calls += 8;
        CHECK_CUDA(cudaStreamSynchronize(stream));
      }
      CHECK_CUDA(cudaEventRecord(end, stream));
      CHECK_CUDA(cudaEventSynchronize(end));
      float ms = 0;
      CHECK_CUDA(cudaEventElapsedTime(&ms, begin, end));
      us_by_beta[accumulate] = ms * 1e3 / calls;
    }
    const double us = us_by_beta[s.accumulate ? 1 : 0];
    if (us <= 0) continue;
    if (i == 0) first_us = us;
    if (us < best_us) best_us = us, best = i;
    std::printf("  #%-2d tile %3d stages %3d cluster %2d splitK %2d swizzle %d algo %5d ws %6zu KiB: %8.1f us %5.0f TFLOP/s "
                "(%2.0f%% of 789)",
                i, config_attr<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                config_attr<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                config_attr<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID),
                config_attr<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                config_attr<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
                config_attr<int32_t>(algo, CUBLASLT_ALGO_CONFIG_ID), results[static_cast<size_t>(i)].workspaceSize >> 10,
                us, flops / us / 1e6, 100.0 * flops / us / 1e6 / (kBf16Flops / 1e12));
    std::printf(", %.2f TB/s of weights", static_cast<double>(w_bytes) / us / 1e6);
    if (s.accumulate) std::printf("; beta 0: %.1f us", us_by_beta[0]);
    std::printf("\n");
  }
  if (best >= 0)
    std::printf("  first pick %.1f us (%.0f TFLOP/s), best #%d %.1f us (%.0f TFLOP/s): %.1f%% faster\n", first_us,
                flops / first_us / 1e6, best, best_us, flops / best_us / 1e6, 100.0 * (first_us / best_us - 1.0));
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatmulDescDestroy(desc);
  cudaFree(x);
  cudaFree(w);
  cudaFree(y);
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gemm_sweep: no CUDA device\n");
    return 0;
  }
  const std::string set = argc > 1 ? argv[1] : "all";
  const int candidates = argc > 2 ? std::atoi(argv[2]) : 32;
  const double run_ms = argc > 3 ? std::atof(argv[3]) : 300.0;
  const std::vector<Shape> list = shapes(set);
  if (list.empty() || candidates < 1 || run_ms <= 0) {
    std::fprintf(stderr, "usage: gemm_sweep [prefill|vision|chunk|decode64|all] [candidates >= 1] [ms > 0]\n");
    return 2;
  }
  cublasLtHandle_t lt;
  CHECK_LT(cublasLtCreate(&lt));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  void* workspace = nullptr;
  CHECK_CUDA(cudaMalloc(&workspace, kWorkspaceBytes));
  for (const Shape& s : list) sweep(lt, stream, workspace, s, candidates, run_ms);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
  cublasLtDestroy(lt);
  return 0;
}
