// CudaBackend::sample: shape checks on the host, the penalised-row workspace, one launch
// (cuda_sample.cu). Nothing here synchronizes with the device.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_sample.h"

namespace pixtral::backend {

namespace cuda {

PersistentWorkspace::~PersistentWorkspace() {
  // The owning backend has synchronized its stream; cudaFree waits for anything still pending.
  for (void* p : retired_) cudaFree(p);
  if (ptr_ != nullptr) cudaFree(ptr_);
}

void* PersistentWorkspace::get(size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_) return ptr_;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  if (ptr_ != nullptr) retired_.push_back(ptr_);
  bytes_ = std::max(bytes, 2 * bytes_);
  CUDA_CHECK(cudaMallocAsync(&ptr_, bytes_, stream));
  return ptr_;
}

}  // namespace cuda

void CudaBackend::sample(const SampleParams& p) {
  PX_CHECK_MSG((p.logits.dtype == DType::kBF16 || p.logits.dtype == DType::kF32) && p.logits.shape.rank == 2,
               "sample logits bf16 or f32 [R, V]");
  const int64_t rows = p.logits.dim(0), vocab = p.logits.dim(1);
  if (rows == 0) return;
  PX_CHECK_MSG(vocab > 0 && vocab < (int64_t{1} << 31) && rows < (int64_t{1} << 31), "sample: R, V < 2^31");
  const int64_t num_entries = check_sample_params(p, rows);
  cuda::SampleArgs a{.logits = p.logits.data,
                     .logits_bf16 = p.logits.dtype == DType::kBF16,
                     .rows = rows,
                     .vocab = vocab,
                     .temperature = p.temperature.as<float>(),
                     .top_k = p.top_k.as<int32_t>(),
                     .top_p = p.top_p.as<float>(),
                     .min_p = p.min_p.as<float>(),
                     .uniform = p.uniform.as<double>(),
                     .penalty_row = num_entries > 0 ? p.penalty_row.as<int32_t>() : nullptr,
                     .penalty_token = num_entries > 0 ? p.penalty_token.as<int32_t>() : nullptr,
                     .penalty_rep = num_entries > 0 ? p.penalty_rep.as<float>() : nullptr,
                     .penalty_sub = num_entries > 0 ? p.penalty_sub.as<float>() : nullptr,
                     .num_entries = num_entries,
                     .workspace = nullptr,
                     .out_ids = p.out_ids.as<int32_t>()};
  const size_t bytes = cuda::sample_workspace_bytes(a);
  void* scratch_ws = nullptr;
  if (bytes > 0) {
    a.workspace = static_cast<float*>(sample_ws_.get(bytes, stream_));
    if (a.workspace == nullptr) a.workspace = static_cast<float*>(scratch_ws = scratch(bytes));
  }
  cuda::launch_sample(a, stream_);
  if (scratch_ws != nullptr) free_scratch(scratch_ws);
}

}  // namespace pixtral::backend
