// CudaBackend: the Backend on one CUDA device (internal to backend/cuda; includes CUDA headers).
// Memory is stream-ordered (cudaMallocAsync/cudaFreeAsync on the backend's stream, from the
// device's default pool with an unbounded release threshold, so per-step alloc/free is cheap).
// Host transfers go through a ring of pinned staging slots, each guarded by an event.
#pragma once

#include <cublasLt.h>

#include <array>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_sample.h"
#include "base/thread_pool.h"

namespace pixtral::backend {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  DType activation_dtype() const override { return DType::kBF16; }
  DType weight_dtype() const override { return DType::kBF16; }

  TensorBuffer alloc(DType dtype, Shape shape) override;
  void free(Tensor& tensor) override;
  void upload(const void* host, DType host_dtype, const Tensor& dst) override;
  void download_f32(const Tensor& src, float* host) override;
  void download_i32(const Tensor& src, int32_t* host) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void synchronize() override;
  std::optional<std::pair<int64_t, int64_t>> memory_info() const override;
  void fill_random(const Tensor& dst, uint64_t seed, float mean, float stddev) override;

  bool supports_graphs() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<Graph> end_capture() override;

  void prepare_matmul(const Tensor& w, int64_t max_m, bool bias, bool accumulate) override;
  void matmul(const MatmulParams& p) override;
  void rms_norm(const RmsNormParams& p) override;
  void rope(const RopeParams& p) override;
  void silu_mul(const SiluMulParams& p) override;
  void gelu(const GeluParams& p) override;
  void embedding(const EmbeddingParams& p) override;
  void scatter_rows(const ScatterRowsParams& p) override;
  void gather_rows(const GatherRowsParams& p) override;
  void patchify(const PatchifyParams& p) override;
  void kv_write(const KvWriteParams& p) override;
  void paged_attention(const PagedAttentionParams& p) override;
  void paged_attention_pair(const PagedAttentionParams& first, const PagedAttentionParams& second) override;
  void varlen_attention(const VarlenAttentionParams& p) override;
  void sample(const SampleParams& p) override;  // cuda_backend_sample.cpp
  void norm_matmul(const NormMatmulParams& p) override;
  void qkv_rope(const QkvRopeParams& p) override;

 private:
  // One cached cuBLASLt plan per (M, N, K, accumulate, bias, pointer alignment in bytes).
  using PlanKey = std::tuple<int64_t, int64_t, int64_t, bool, bool, int>;
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's, best-estimated first
    bool settled = false;  // algo final: timed, taken from its M bucket, or tuning not wanted
  };
  static constexpr int kTuneCandidates = 8;
  static constexpr int kStagingSlots = 8;
  static constexpr size_t kStagingBytes = 8u << 20;   // per slot
  static constexpr size_t kUploadChunk = 1u << 19;     // elements per upload chunk: 2 MiB of f32
  static constexpr int64_t kUploadMinSplit = 1 << 16;  // elements per copy thread, at least
  static constexpr int kUploadThreads = 4;             // staging copies of large uploads
  static constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLASLt

  // Row counts that share a heuristic query and a cuBLASLt algorithm: M rounded up to 8 up to 64
  // rows, to 32 up to 256, to 64 up to 1,024, to 256 up to 4,096, to 1,024 beyond.
  static int64_t plan_bucket(int64_t m);
  Plan& plan_for(const PlanKey& key);
  void matmul_cublaslt(const MatmulParams& p);
  // GEMM autotuning (cuda_backend_gemm_tune.cpp): the first GEMM of an M bucket with M >= the
  // tuning threshold times the heuristic's candidates on its own operands and keeps the fastest
  // for every M of the bucket; not during a capture (the plan then settles on a later call).
  void settle_algo(Plan& plan, const PlanKey& key, const MatmulParams& p);
  // qkv_rope / norm_matmul for shapes the fused GEMV does not take (M > 8): rms_norm, one GEMM,
  // then the split kernel / silu_mul, with their temporaries in the op workspace.
  void qkv_rope_batched(const QkvRopeParams& p);
  void norm_matmul_batched(const NormMatmulParams& p);
  // bf16 views [rows, cols_i] of one op's temporaries, laid out one after another (256-byte
  // aligned) in the op workspace; `owned` receives a fresh allocation when the workspace would
  // have to grow during a capture.
  std::vector<Tensor> op_temporaries(int64_t rows, std::initializer_list<int64_t> cols, TensorBuffer& owned);
  // Whether a small-M matmul of x [m, k] and w can take the GEMV kernels.
  bool gemv_fits(const Tensor& x, const Tensor& w) const;
  // 9 to skinny_.max_m rows on the skinny GEMM (cuda_skinny.cu): shapes and 16-byte alignment.
  bool skinny_fits(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias, bool swiglu) const;
  void launch_skinny(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias, bool accumulate,
                     bool swiglu);
  // Next staging slot, after its previous transfer has finished.
  int next_slot();
  void* scratch(size_t bytes);  // stream-ordered temporary, freed by the caller via free_scratch
  void free_scratch(void* ptr);
  // Attention's split-KV partials: one persistent buffer, grown outside capture (the warm-up run
  // before a capture sizes it), so a decode step pays no allocation per layer. Returns nullptr
  // when it would have to grow during a capture: the caller then takes a scratch allocation.
  float* split_workspace(size_t bytes);
  // The decode attention kernel's per-(sequence, KV head) counters: persistent, zeroed when
  // allocated (every launch leaves them zero), grown outside capture like split_workspace.
  uint32_t* decode_counters(size_t count);
  void attention_with_workspace(const cuda::AttentionArgs& a);
  // One op's temporaries (the M > 8 compositions): one persistent buffer, grown outside capture
  // (a larger step, e.g. a prefill, grows it first), so a decode step issues no allocation and its
  // graph holds no memory nodes. nullptr when it would have to grow during a capture.
  void* op_workspace(size_t bytes);
  // Decode-shaped paged calls on the decode kernel (cuda_attention_decode.cu); false when the call
  // does not fit it or PIXTRAL_CUDA_DECODE_ATTN=old.
  bool decode_attention(const cuda::AttentionArgs& a);

  // Side stream of paged_attention_pair: the first call runs there (forked from and joined back to
  // stream_ by events) with temporaries of its own (split_workspace / decode_counters return
  // nullptr while private_temporaries_ is set). PIXTRAL_CUDA_ATTN_OVERLAP=0 runs the two in order.
  cudaStream_t side_stream_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  bool overlap_attention_ = true;
  bool private_temporaries_ = false;
  int device_ = 0;
  int num_sms_ = 0;
  bool use_gemv_ = true;
  bool decode_kernel_ = true;  // PIXTRAL_CUDA_DECODE_ATTN: "new" (default) or "old" (the flash kernel)
  cuda::GemvTuning gemv_;  // PIXTRAL_CUDA_GEMV_WPC / _BLOCKS / _STAGE / _PREFETCH / _UNROLL / _PIPE / _STAGES /
                           // _WARP / _GRID / _EVICT, PIXTRAL_CUDA_PDL
  cuda::SkinnyTuning skinny_;   // PIXTRAL_CUDA_SKINNY, PIXTRAL_CUDA_SKINNY_SPLITS (PDL with PIXTRAL_CUDA_PDL)
  cuda::AttentionTuning attn_;  // PIXTRAL_CUDA_ATTN, PIXTRAL_CUDA_ATTN_WARPS
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  std::map<PlanKey, Plan> plans_;
  std::map<PlanKey, cublasLtMatmulAlgo_t> tuned_;  // key with M rounded up to its bucket
  int64_t gemm_tune_min_m_ = 0;  // PIXTRAL_CUDA_GEMM_TUNE=N: tune M >= max(N, 256); 0 (default): off
  cudaEvent_t tune_begin_ = nullptr, tune_end_ = nullptr;
  std::array<void*, kStagingSlots> staging_{};
  std::array<cudaEvent_t, kStagingSlots> staging_done_{};
  int staging_next_ = 0;
  std::unique_ptr<base::ThreadPool> copy_pool_;  // kUploadThreads threads for the staging copies
  void* split_ws_ = nullptr;
  size_t split_ws_bytes_ = 0;
  void* op_ws_ = nullptr;
  size_t op_ws_bytes_ = 0;
  void* counters_ = nullptr;
  size_t counters_count_ = 0;
  // Outgrown workspaces stay allocated until destruction: graphs captured earlier point at them.
  std::vector<void*> retired_ws_;
  cuda::PersistentWorkspace sample_ws_;  // the sample op's penalised rows
};

}  // namespace pixtral::backend
