// Backend: memory and ~15 ops that the model is written against (spec: design/architecture.md).
// One implementation per device kind (backend/cpu, backend/cuda). The model never sees anything
// else, so the forward pass exists once.
//
// Thread-safety: a Backend is used by one thread at a time. Ops are ordered; device backends run
// them asynchronously and synchronize() waits for completion.
// Lifetimes: free() is ordered after every op already issued (stream-ordered on devices), so a
// TensorBuffer may go out of scope right after the ops that use it are issued; upload() has
// finished reading the host memory when it returns.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "backend/ops.h"

namespace pixtral::backend {

class Backend;

// Checks the per-row and penalty tensors of SampleParams (dtypes, [R] / [E] shapes) for R rows of
// logits; returns E, the number of penalty entries. Shared by the backends' sample ops.
int64_t check_sample_params(const SampleParams& p, int64_t rows);

// Owns one allocation of backend memory; frees it on destruction.
class TensorBuffer {
 public:
  TensorBuffer() = default;
  TensorBuffer(Backend* backend, Tensor tensor) : backend_(backend), tensor_(tensor) {}
  ~TensorBuffer();
  TensorBuffer(TensorBuffer&& o) noexcept : backend_(o.backend_), tensor_(o.tensor_) { o.tensor_ = {}; }
  TensorBuffer& operator=(TensorBuffer&& o) noexcept;
  TensorBuffer(const TensorBuffer&) = delete;
  TensorBuffer& operator=(const TensorBuffer&) = delete;

  const Tensor& tensor() const { return tensor_; }
  operator const Tensor&() const { return tensor_; }  // NOLINT: a buffer is usable as its tensor

 private:
  Backend* backend_ = nullptr;
  Tensor tensor_;
};

// A recorded sequence of ops (CUDA graph) replayed with the same device pointers; the inputs are
// refreshed in place (upload() into the same tensors) between replays.
class Graph {
 public:
  virtual ~Graph() = default;
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // The dtype of activations (CPU: F32; CUDA: BF16) and of weights (as loaded).
  virtual DType activation_dtype() const = 0;
  virtual DType weight_dtype() const = 0;

  // ---- memory --------------------------------------------------------------------------
  virtual TensorBuffer alloc(DType dtype, Shape shape) = 0;
  virtual void free(Tensor& tensor) = 0;
  // Host f32 -> tensor of any float dtype (converted), or raw I32 upload when dtype is I32.
  virtual void upload(const void* host, DType host_dtype, const Tensor& dst) = 0;
  // Tensor (any float dtype) -> host f32.
  virtual void download_f32(const Tensor& src, float* host) = 0;
  // I32 tensor -> host, raw.
  virtual void download_i32(const Tensor& src, int32_t* host) = 0;
  // Copies rows between tensors of the same dtype and row size.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void synchronize() = 0;
  // Free and total bytes of the device's memory, for backends that know them (the CPU backend
  // reports nothing). Memory the backend keeps pooled for reuse counts as used.
  virtual std::optional<std::pair<int64_t, int64_t>> memory_info() const { return std::nullopt; }
  // Fills a float tensor with mean + std·N(0,1) values from a counter-based generator keyed by
  // `seed` (random weights at full size without files, initialised where the tensor lives).
  virtual void fill_random(const Tensor& dst, uint64_t seed, float mean, float stddev) = 0;

  // ---- optional: graph capture ------------------------------------------------------------
  // Ops issued between begin_capture() and end_capture() are recorded, not run. They must not
  // allocate, upload or download. Backends without graphs return false from supports_graphs().
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture() {}
  virtual std::unique_ptr<Graph> end_capture() { return nullptr; }

  // ---- ops (see ops.h for shapes and semantics) -----------------------------------------
  virtual void matmul(const MatmulParams& p) = 0;
  // Readies matmuls with this weight for every row count up to max_m (with a bias of its rows /
  // adding into y), so that no serving step pays for the first meeting of a row count: GEMM plans
  // chosen and kernels loaded now. A no-op where nothing depends on the row count (the default).
  virtual void prepare_matmul(const Tensor& w, int64_t max_m, bool bias, bool accumulate) {
    (void)w, (void)max_m, (void)bias, (void)accumulate;
  }
  virtual void rms_norm(const RmsNormParams& p) = 0;
  virtual void rope(const RopeParams& p) = 0;
  virtual void silu_mul(const SiluMulParams& p) = 0;
  virtual void gelu(const GeluParams& p) = 0;
  virtual void embedding(const EmbeddingParams& p) = 0;
  virtual void scatter_rows(const ScatterRowsParams& p) = 0;
  virtual void gather_rows(const GatherRowsParams& p) = 0;
  virtual void patchify(const PatchifyParams& p) = 0;
  virtual void kv_write(const KvWriteParams& p) = 0;
  virtual void paged_attention(const PagedAttentionParams& p) = 0;
  virtual void varlen_attention(const VarlenAttentionParams& p) = 0;
  virtual void sample(const SampleParams& p) = 0;

  // ---- fused ops: the default composes the ops above through temporaries (backend.cpp);
  // device backends override the shapes they fuse (decode) and fall back to it otherwise. ----
  virtual void norm_matmul(const NormMatmulParams& p);
  virtual void qkv_rope(const QkvRopeParams& p);
  // Two paged_attention calls over disjoint query rows of one step that read the cache only (a
  // mixed step's decode rows, then its prefill chunks): a device backend may run them at the same
  // time (the first is bound by memory, the second by compute). The default runs them in order.
  virtual void paged_attention_pair(const PagedAttentionParams& first, const PagedAttentionParams& second);
};

}  // namespace pixtral::backend
