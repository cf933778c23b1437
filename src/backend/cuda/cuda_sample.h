// Internal to backend/cuda: the sample op's kernel launcher (cuda_sample.cu) and the persistent
// workspace that holds penalised rows (cuda_backend_sample.cpp).
#pragma once

#include <vector>

#include "backend/cuda/cuda_common.h"

namespace pixtral::backend::cuda {

// One sample call (SampleParams as raw device pointers). Launch: one block of 1024 threads per
// row; no host synchronization, no allocation.
struct SampleArgs {
  const void* logits = nullptr;  // [rows, vocab] bf16 or f32
  bool logits_bf16 = true;
  int64_t rows = 0, vocab = 0;
  const float* temperature = nullptr;      // [rows]
  const int32_t* top_k = nullptr;          // [rows]
  const float* top_p = nullptr;            // [rows]
  const float* min_p = nullptr;            // [rows]
  const double* uniform = nullptr;         // [rows]
  const int32_t* penalty_row = nullptr;    // [num_entries], non-decreasing
  const int32_t* penalty_token = nullptr;  // [num_entries]
  const float* penalty_rep = nullptr;      // [num_entries]
  const float* penalty_sub = nullptr;      // [num_entries]
  int64_t num_entries = 0;
  float* workspace = nullptr;  // f32 [rows, vocab] when num_entries > 0: rows with entries, penalised
  int32_t* out_ids = nullptr;  // [rows]
};

inline size_t sample_workspace_bytes(const SampleArgs& a) {
  return a.num_entries > 0 ? static_cast<size_t>(a.rows) * static_cast<size_t>(a.vocab) * sizeof(float) : 0;
}

void launch_sample(const SampleArgs& a, cudaStream_t s);

// Device memory that only grows, outside graph capture: a buffer it outgrows stays allocated until
// destruction, since graphs captured earlier point at it.
class PersistentWorkspace {
 public:
  PersistentWorkspace() = default;
  ~PersistentWorkspace();
  PersistentWorkspace(const PersistentWorkspace&) = delete;
  PersistentWorkspace& operator=(const PersistentWorkspace&) = delete;

  // At least `bytes` (stream-ordered on `stream`), or nullptr when that would mean growing while
  // `stream` is being captured.
  void* get(size_t bytes, cudaStream_t stream);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  std::vector<void*> retired_;
};

}  // namespace pixtral::backend::cuda
