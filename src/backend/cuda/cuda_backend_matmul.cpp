// CudaBackend::matmul: small M (decode) through the GEMV kernel, the rest through cuBLASLt with
// bf16 inputs/outputs, fp32 accumulation, the bias in the epilogue and beta = 1 for the residual
// add. Row-major y[M,N] = x[M,K]·w[N,K]ᵀ is, column-major, yᵀ[N,M] = op(w)·xᵀ with op = transpose:
// A = w stored K×N (ld K) transposed, B = x stored K×M (ld K), C = D = y stored N×M (ld N).
#include <array>

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

int64_t CudaBackend::plan_bucket(int64_t m) {
  const int64_t step = m <= 64 ? 8 : m <= 256 ? 32 : m <= 1024 ? 64 : m <= 4096 ? 256 : 1024;
  return (m + step - 1) / step * step;
}

// A plan per exact key (its layouts hold M), its algorithm from the heuristic at the key's M
// bucket (plan_bucket): a step that meets a new M costs a descriptor, three layouts and one
// cublasLtMatmulAlgoCheck, not a heuristic query (about 2 ms each on the H100's host) and not a
// kernel loaded on first use; prepare_matmul makes the buckets' plans and loads their kernels
// before serving. When cuBLASLt rejects the bucket's algorithm for the exact shape, or tuning is
// on, the exact M gets its own heuristic query.
CudaBackend::Plan& CudaBackend::plan_for(const PlanKey& key) {
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
  const bool tune = gemm_tune_min_m_ > 0 && m >= gemm_tune_min_m_;
  const int64_t bucket = plan_bucket(m);
  if (!tune && bucket != m) {
    const cublasLtMatmulAlgo_t algo = plan_for({bucket, n, k, accumulate, bias, align}).algo;
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(lt_, plan.desc, plan.a, plan.b, plan.c, plan.c, &algo, &check) ==
            CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= kWorkspaceBytes) {
      plan.algo = algo;
      plan.candidates.push_back(algo);
      plan.settled = true;
      return plans_.emplace(key, plan).first->second;
    }
  }
  cublasLtMatmulPreference_t pref;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  const uint32_t a32 = static_cast<uint32_t>(align);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &a32, sizeof a32));
  // One algorithm unless this shape is to be tuned: 8 candidates cost more host time than 1.
  std::array<cublasLtMatmulHeuristicResult_t, kTuneCandidates> results{};
  int returned = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref,
                                          tune ? kTuneCandidates : 1, results.data(), &returned));
  cublasLtMatmulPreferenceDestroy(pref);
  PX_CHECK_MSG(returned > 0, "cuBLASLt found no algorithm for this matmul");
  for (int i = 0; i < returned; ++i)
    if (results[static_cast<size_t>(i)].state == CUBLAS_STATUS_SUCCESS)
      plan.candidates.push_back(results[static_cast<size_t>(i)].algo);
  PX_CHECK_MSG(!plan.candidates.empty(), "cuBLASLt found no usable algorithm for this matmul");
  plan.algo = plan.candidates.front();
  plan.settled = !tune || plan.candidates.size() == 1;
  return plans_.emplace(key, plan).first->second;
}

// Runs one GEMM of every bucket above the GEMV's rows up to max_m with this weight (scratch x and
// y, their values unused): the buckets' plans exist and their kernels are loaded afterwards.
void CudaBackend::prepare_matmul(const Tensor& w, int64_t max_m, bool bias, bool accumulate) {
  const int64_t n = w.dim(0), k = w.dim(1);
  if (max_m <= cuda::kGemvMaxM || w.dtype != DType::kBF16) return;
  const int64_t top = plan_bucket(max_m);
  TensorBuffer x = alloc(DType::kBF16, {top, k}), y = alloc(DType::kBF16, {top, n});
  TensorBuffer b = bias ? alloc(DType::kBF16, {n}) : TensorBuffer{};
  CUDA_CHECK(cudaMemsetAsync(x.tensor().data, 0, static_cast<size_t>(top * k) * 2, stream_));
  CUDA_CHECK(cudaMemsetAsync(y.tensor().data, 0, static_cast<size_t>(top * n) * 2, stream_));
  if (bias) CUDA_CHECK(cudaMemsetAsync(b.tensor().data, 0, static_cast<size_t>(n) * 2, stream_));
  for (int64_t m = plan_bucket(cuda::kGemvMaxM + 1); m <= top; m = plan_bucket(m + 1))
    matmul_cublaslt({.x = x.tensor().rows(0, m), .w = w, .bias = bias ? b.tensor() : Tensor{},
                     .y = y.tensor().rows(0, m), .accumulate = accumulate});
  synchronize();
}

void CudaBackend::matmul_cublaslt(const MatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  const bool bias = !p.bias.empty();
  const int align = common_alignment({p.x.data, p.w.data, p.y.data, bias ? p.bias.data : nullptr});
  const PlanKey key{m, n, k, p.accumulate, bias, align};
  Plan& plan = plan_for(key);
  if (bias)
    LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias.data,
                                            sizeof p.bias.data));
  if (!plan.settled) settle_algo(plan, key, p);
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  LT_CHECK(cublasLtMatmul(lt_, plan.desc, &alpha, p.w.data, plan.a, p.x.data, plan.b, &beta, p.y.data, plan.c,
                          p.y.data, plan.c, &plan.algo, workspace_, kWorkspaceBytes, stream_));
}

bool CudaBackend::skinny_fits(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias, bool swiglu) const {
  return x.dim(0) > cuda::kGemvMaxM && x.dim(0) <= skinny_.max_m && cuda::skinny_fits(x.dim(0), w.dim(0), x.dim(1), swiglu, skinny_.geometry) &&
         common_alignment({x.data, w.data, y.data, bias.empty() ? nullptr : bias.data}) >= 16;
}

void CudaBackend::launch_skinny(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias, bool accumulate,
                                bool swiglu) {
  const cuda::SkinnyArgs a{.x = x.as<cuda::bf16>(), .w = w.as<cuda::bf16>(),
                           .bias = bias.empty() ? nullptr : bias.as<cuda::bf16>(), .y = y.as<cuda::bf16>(),
                           .m = x.dim(0), .n = w.dim(0), .k = x.dim(1), .accumulate = accumulate};
  cuda::launch_skinny(a, swiglu, skinny_, num_sms_, stream_);
}

bool CudaBackend::gemv_fits(const Tensor& x, const Tensor& w) const {
  return use_gemv_ && x.dim(0) >= 1 && x.dim(0) <= cuda::kGemvMaxM && x.dim(1) % 8 == 0 &&
         common_alignment({x.data, w.data}) >= 16;
}

void CudaBackend::matmul(const MatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  PX_CHECK_MSG(p.x.shape.rank == 2 && p.w.shape.rank == 2 && p.y.shape.rank == 2, "matmul operands are 2-D");
  PX_CHECK_MSG(p.w.dim(1) == k && p.y.dim(0) == m && p.y.dim(1) == n, "matmul shapes");
  PX_CHECK_MSG(p.x.dtype == DType::kBF16 && p.w.dtype == DType::kBF16 && p.y.dtype == DType::kBF16, "matmul is bf16");
  if (!p.bias.empty()) PX_CHECK_MSG(p.bias.dtype == DType::kBF16 && p.bias.numel() == n, "matmul bias [N] bf16");
  if (m == 0 || n == 0) return;
  if (gemv_fits(p.x, p.w)) {
    cuda::launch_gemv(p.x.as<cuda::bf16>(), p.w.as<cuda::bf16>(), p.bias.empty() ? nullptr : p.bias.as<cuda::bf16>(),
                      p.y.as<cuda::bf16>(), m, n, k, p.accumulate, gemv_, num_sms_, stream_);
    return;
  }
  if (skinny_fits(p.x, p.w, p.y, p.bias, false)) return launch_skinny(p.x, p.w, p.y, p.bias, p.accumulate, false);
  matmul_cublaslt(p);
}

// Decode shapes (M <= 8, x staged in shared memory): one fused GEMV; otherwise the composition.
void CudaBackend::norm_matmul(const NormMatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  for (const Tensor* t : {&p.x, &p.norm_weight, &p.w, &p.y})
    PX_CHECK_MSG(t->dtype == DType::kBF16, "norm_matmul is bf16");
  PX_CHECK_MSG(p.norm_weight.numel() == k && p.w.dim(1) == k && p.y.dim(0) == m &&
                   p.y.dim(1) == (p.swiglu ? n / 2 : n) && (!p.swiglu || n % 2 == 0),
               "norm_matmul shapes");
  if (m == 0) return;
  if (!gemv_fits(p.x, p.w) || cuda::gemv_staged_bytes(m, k) > cuda::kGemvMaxStagedBytes ||
      common_alignment({p.norm_weight.data}) < 16)
    return norm_matmul_batched(p);
  cuda::GemvArgs a;
  a.x = p.x.as<cuda::bf16>();
  a.w = p.w.as<cuda::bf16>();
  a.y = p.y.as<cuda::bf16>();
  a.m = m;
  a.n = n;
  a.k = k;
  a.norm_w = p.norm_weight.as<cuda::bf16>();
  a.eps = p.eps;
  cuda::launch_gemv_fused(a, p.swiglu ? cuda::GemvFusion::kSwiglu : cuda::GemvFusion::kNone, gemv_, num_sms_, stream_);
}

// Prefill and batched decode shapes: rms_norm, one GEMM over the fused [wq; wk; wv] weight (not
// three: the narrow wk / wv GEMMs run far below bandwidth at small M), then one kernel that
// rotates q and k and writes k and v to their cache slots. Same rounding as the base class's
// composition (bf16 GEMM outputs, rope in fp32).
std::vector<Tensor> CudaBackend::op_temporaries(int64_t rows, std::initializer_list<int64_t> cols,
                                                TensorBuffer& owned) {
  std::vector<size_t> offsets;
  size_t bytes = 0;
  for (int64_t c : cols) {
    offsets.push_back(bytes);
    bytes += (static_cast<size_t>(rows * c) * sizeof(cuda::bf16) + 255) / 256 * 256;
  }
  void* base = op_workspace(bytes);
  if (base == nullptr) {
    owned = alloc(DType::kU8, {static_cast<int64_t>(bytes)});
    base = owned.tensor().data;
  }
  std::vector<Tensor> views;
  size_t i = 0;
  for (int64_t c : cols) {
    Tensor v;
    v.data = static_cast<char*>(base) + offsets[i++];
    v.dtype = DType::kBF16;
    v.shape = {rows, c};
    views.push_back(v);
  }
  return views;
}

void CudaBackend::norm_matmul_batched(const NormMatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  TensorBuffer owned;
  const bool fused = p.swiglu && skinny_fits(p.x, p.w, p.y, Tensor{}, true);  // SwiGLU in the GEMM's epilogue
  const std::vector<Tensor> tmp = op_temporaries(m, {k, p.swiglu && !fused ? n : 0}, owned);
  rms_norm({.x = p.x, .weight = p.norm_weight, .y = tmp[0], .eps = p.eps});
  if (fused) return launch_skinny(tmp[0], p.w, p.y, Tensor{}, false, true);
  if (!p.swiglu) return matmul({.x = tmp[0], .w = p.w, .y = p.y});
  matmul({.x = tmp[0], .w = p.w, .y = tmp[1]});
  silu_mul({.gate_up = tmp[1], .out = p.y});
}

void CudaBackend::qkv_rope_batched(const QkvRopeParams& p) {
  const int64_t t = p.x.dim(0), d = p.x.dim(1), h = p.q.dim(1), hd = p.q.dim(2), hkv = p.k_cache.dim(2);
  const int64_t n = p.w_qkv.dim(0);
  if (hd % 8 != 0 || common_alignment({p.q.data, p.k_cache.data, p.v_cache.data}) < 16) return Backend::qkv_rope(p);
  TensorBuffer owned;
  const std::vector<Tensor> tmp = op_temporaries(t, {d, n}, owned);
  const Tensor &normed = tmp[0], &qkv = tmp[1];
  rms_norm({.x = p.x, .weight = p.norm_weight, .y = normed, .eps = p.eps});
  matmul({.x = normed, .w = p.w_qkv, .y = qkv});
  const bool launched = cuda::launch_qkv_split_rope(
      qkv.as<cuda::bf16>(), p.q.as<cuda::bf16>(), p.k_cache.as<cuda::bf16>(), p.v_cache.as<cuda::bf16>(),
      p.pos.as<int32_t>(), p.slot_mapping.as<int32_t>(), p.k_cache.dim(0) * p.k_cache.dim(1), t, h, hkv, hd, p.theta,
      stream_);
  PX_CHECK_MSG(launched, "qkv_rope: the split kernel refused aligned operands");
}

void CudaBackend::qkv_rope(const QkvRopeParams& p) {
  const int64_t t = p.x.dim(0), d = p.x.dim(1), h = p.q.dim(1), hd = p.q.dim(2), hkv = p.k_cache.dim(2);
  for (const Tensor* x : {&p.x, &p.norm_weight, &p.w_qkv, &p.q, &p.k_cache, &p.v_cache})
    PX_CHECK_MSG(x->dtype == DType::kBF16, "qkv_rope is bf16");
  PX_CHECK_MSG(p.q.shape.rank == 3 && p.k_cache.shape.rank == 4 && p.v_cache.shape == p.k_cache.shape,
               "qkv_rope: q [T, H, hd], caches [blocks, block_size, Hkv, hd]");
  PX_CHECK_MSG(p.q.dim(0) == t && p.k_cache.dim(3) == hd && p.w_qkv.dim(0) == (h + 2 * hkv) * hd &&
                   p.w_qkv.dim(1) == d && p.norm_weight.numel() == d && hd % 2 == 0,
               "qkv_rope shapes");
  PX_CHECK_MSG(p.pos.dtype == DType::kI32 && p.pos.numel() == t && p.slot_mapping.dtype == DType::kI32 &&
                   p.slot_mapping.numel() == t,
               "qkv_rope pos / slot_mapping I32 [T]");
  if (t == 0) return;
  if (!gemv_fits(p.x, p.w_qkv) || cuda::gemv_staged_bytes(t, d) > cuda::kGemvMaxStagedBytes ||
      common_alignment({p.norm_weight.data}) < 16)
    return qkv_rope_batched(p);
  cuda::GemvArgs a;
  a.x = p.x.as<cuda::bf16>();
  a.w = p.w_qkv.as<cuda::bf16>();
  a.y = p.q.as<cuda::bf16>();
  a.m = t;
  a.n = p.w_qkv.dim(0);
  a.k = d;
  a.norm_w = p.norm_weight.as<cuda::bf16>();
  a.eps = p.eps;
  a.pos = p.pos.as<int32_t>();
  a.slots = p.slot_mapping.as<int32_t>();
  a.k_cache = p.k_cache.as<cuda::bf16>();
  a.v_cache = p.v_cache.as<cuda::bf16>();
  a.num_slots = p.k_cache.dim(0) * p.k_cache.dim(1);
  a.q_cols = h * hd;
  a.kv_cols = hkv * hd;
  a.head_dim = hd;
  a.theta = p.theta;
  cuda::launch_gemv_fused(a, cuda::GemvFusion::kQkvRope, gemv_, num_sms_, stream_);
}

}  // namespace pixtral::backend
