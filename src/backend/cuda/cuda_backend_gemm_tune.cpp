// GEMM autotuning: cuBLASLt's heuristic ranks its algorithms by an estimate, and for some shapes
// its first choice is far from the best. Measured on the H100: the [gate | up] GEMM of a mixed
// step (M = 543, N = 28,672, K = 5,120) took a 512-row tile, i.e. two M tiles for 543 rows, and ran
// at 431 TFLOP/s; tuned, that step (31 decodes + a 512-token chunk) took 27.3 ms instead of 33.1.
// So the first GEMM of each M bucket (plan_bucket) can time the heuristic's candidates on its own operands, outside any capture, and every
// later GEMM of the bucket reuses the winner (after cuBLASLt confirms that it supports the exact
// shape). Opt-in: PIXTRAL_CUDA_GEMM_TUNE=N tunes every GEMM with M >= max(N, 256); unset or 0
// keeps the heuristic's first choice. Below 256 rows the GEMMs are bound by the weight read, and
// timing a candidate on the same operands over and over measures it with the weights in L2:
// tuned down to M = 16, the batch-64 decode step of the 64-request text load went from 12.4 to
// 18.6 ms. Not the default because it paid only at the M = 543 shape: the serving steps (the
// scheduler's budget counts the decodes, so M <= 512) and the 4,160-token prefill measured the
// same with and without it, and it has two costs:
//   - the first GEMM of a bucket stalls its step while the candidates run (a latency spike for the
//     running streams);
//   - which algorithm wins may differ between processes (timing noise between near-equal
//     candidates), and algorithms can differ in summation order (split-K), so logits could differ
//     at bf16 rounding level between two runs of the same request.
#include <cstdlib>
#include <cstring>
#include <limits>

#include "backend/cuda/cuda_backend_impl.h"

namespace pixtral::backend {
namespace {

}  // namespace

void CudaBackend::settle_algo(Plan& plan, const PlanKey& key, const MatmulParams& p) {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return;  // keep the heuristic's choice for now
  auto [m, n, k, accumulate, bias, align] = key;
  const PlanKey bucket{plan_bucket(m), n, k, accumulate, bias, align};
  plan.settled = true;
  if (auto it = tuned_.find(bucket); it != tuned_.end()) {
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(lt_, plan.desc, plan.a, plan.b, plan.c, plan.c, &it->second, &check) ==
            CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= kWorkspaceBytes) {
      plan.algo = it->second;
      return;
    }
  }
  // Time each candidate: one warm-up run, then kReps runs between two events. Accumulating GEMMs
  // write to a scratch copy of the output (y must be added to exactly once); the others write y,
  // which the real call then overwrites.
  constexpr int kReps = 2;
  if (tune_begin_ == nullptr) {
    CUDA_CHECK(cudaEventCreate(&tune_begin_));
    CUDA_CHECK(cudaEventCreate(&tune_end_));
  }
  void* out = p.y.data;
  void* tmp = nullptr;
  if (accumulate) {
    const size_t bytes = static_cast<size_t>(m * n) * sizeof(uint16_t);
    tmp = scratch(bytes);
    CUDA_CHECK(cudaMemsetAsync(tmp, 0, bytes, stream_));
    out = tmp;
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  float best_ms = std::numeric_limits<float>::max();
  for (const cublasLtMatmulAlgo_t& algo : plan.candidates) {
    auto run = [&] {
      return cublasLtMatmul(lt_, plan.desc, &alpha, p.w.data, plan.a, p.x.data, plan.b, &beta, out, plan.c, out,
                            plan.c, &algo, workspace_, kWorkspaceBytes, stream_);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;
    CUDA_CHECK(cudaEventRecord(tune_begin_, stream_));
    for (int r = 0; r < kReps; ++r) PX_CHECK_MSG(run() == CUBLAS_STATUS_SUCCESS, "cuBLASLt tuning run");
    CUDA_CHECK(cudaEventRecord(tune_end_, stream_));
    CUDA_CHECK(cudaEventSynchronize(tune_end_));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, tune_begin_, tune_end_));
    if (ms < best_ms) {
      best_ms = ms;
      plan.algo = algo;
    }
  }
  if (tmp != nullptr) free_scratch(tmp);
  tuned_.emplace(bucket, plan.algo);
}

}  // namespace pixtral::backend
