// CudaBackend::matmul: small M (decode) through the GEMV kernel, the rest through cuBLASLt with
// bf16 inputs/outputs, fp32 accumulation, the bias in the epilogue and beta = 1 for the residual
// add. Row-major y[M,N] = x[M,K]·w[N,K]ᵀ is, column-major, yᵀ[N,M] = op(w)·xᵀ with op = transpose:
// A = w stored K×N (ld K) transposed, B = x stored K×M (ld K), C = D = y stored N×M (ld N).
#include "backend/cuda/cuda_backend_impl.h"

namespace pixtral::backend {
namespace {

#define LT_CHECK(expr) PX_CHECK_MSG((expr) == CUBLAS_STATUS_SUCCESS, #expr)

// Largest power of two (at most 256) dividing every address.
int common_alignment(std::initializer_list<const void*> ptrs) {
  int align = 256;
  for (const void* p : ptrs) {
    if (p == nullptr) continue;
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    while (align > 1 && a % static_cast<uintptr_t>(align) != 0) align /= 2;
  }
  return align;
}

}  // namespace

const CudaBackend::Plan& CudaBackend::plan_for(const PlanKey& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [m, n, k, accumulate, bias, align] = key;
  (void)accumulate;
  Plan plan;
  LT_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  if (bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
    const cudaDataType_t bias_type = CUDA_R_16BF;
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                            sizeof bias_type));
  }
  LT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  LT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
  LT_CHECK(cublasLtMatrixLayoutCreate(&plan.c, CUDA_R_16BF, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n));
  cublasLtMatmulPreference_t pref;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  const uint32_t a32 = static_cast<uint32_t>(align);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &a32, sizeof a32));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result,
                                          &returned));
  cublasLtMatmulPreferenceDestroy(pref);
  PX_CHECK_MSG(returned > 0, "cuBLASLt found no algorithm for this matmul");
  plan.algo = result.algo;
  return plans_.emplace(key, plan).first->second;
}

void CudaBackend::matmul_cublaslt(const MatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  const bool bias = !p.bias.empty();
  const int align = common_alignment({p.x.data, p.w.data, p.y.data, bias ? p.bias.data : nullptr});
  const Plan& plan = plan_for({m, n, k, p.accumulate, bias, align});
  if (bias)
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias.data,
                                            sizeof p.bias.data));
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  LT_CHECK(cublasLtMatmul(lt_, plan.desc, &alpha, p.w.data, plan.a, p.x.data, plan.b, &beta, p.y.data, plan.c,
                          p.y.data, plan.c, &plan.algo, workspace_, kWorkspaceBytes, stream_));
}

void CudaBackend::matmul(const MatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  PX_CHECK_MSG(p.x.shape.rank == 2 && p.w.shape.rank == 2 && p.y.shape.rank == 2, "matmul operands are 2-D");
  PX_CHECK_MSG(p.w.dim(1) == k && p.y.dim(0) == m && p.y.dim(1) == n, "matmul shapes");
  PX_CHECK_MSG(p.x.dtype == DType::kBF16 && p.w.dtype == DType::kBF16 && p.y.dtype == DType::kBF16, "matmul is bf16");
  if (!p.bias.empty()) PX_CHECK_MSG(p.bias.dtype == DType::kBF16 && p.bias.numel() == n, "matmul bias [N] bf16");
  if (m == 0 || n == 0) return;
  const bool gemv = use_gemv_ && m <= cuda::kGemvMaxM && k % 8 == 0 && common_alignment({p.x.data, p.w.data}) >= 16;
  if (gemv) {
    cuda::launch_gemv(p.x.as<cuda::bf16>(), p.w.as<cuda::bf16>(), p.bias.empty() ? nullptr : p.bias.as<cuda::bf16>(),
                      p.y.as<cuda::bf16>(), m, n, k, p.accumulate, gemv_wpc_, num_sms_, stream_);
    return;
  }
  matmul_cublaslt(p);
}

}  // namespace pixtral::backend
