// The CUDA backend (sm_90a): bf16 activations and weights, fp32 accumulation, cuBLASLt GEMMs and
// hand-written kernels for the other ops. This header is the public face and includes no CUDA
// header, so code outside backend/cuda builds without the CUDA toolkit's include paths.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "pixtral/status.h"

namespace pixtral::backend {

// Number of usable CUDA devices; 0 (never an abort) when there is no driver or no GPU.
int cuda_device_count();

// A backend on device `device` with its own stream, memory pool and cuBLASLt handle.
Result<std::unique_ptr<Backend>> make_cuda_backend(int device);

}  // namespace pixtral::backend
