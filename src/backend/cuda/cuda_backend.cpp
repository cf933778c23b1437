// CudaBackend: construction, memory, host transfers, random fill, and the factory functions.
#include <cstring>
#include <cstdlib>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"

namespace pixtral::backend {

using cuda::bf16;

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: clear the sticky error, report none
    return 0;
  }
  return count;
}

namespace {

// The GEMV streaming variants (cuda_common.h, GemvTuning), to compare and test them:
// PIXTRAL_CUDA_GEMV_UNROLL "4" (default) or "8"; _PIPE "0" (registers, default), "1" (cp.async
// ring, block barriers) or "2" (ring, barriers per column); _STAGES ring depth "2".."8" (default
// 3); _WARP "1" (the warp kernel: whole outputs per warp, no barriers; ring); _GRID "persistent"
// (default) or "full"; _EVICT "1" (ring kernels read the weights L2 evict-first).
void read_gemv_variants(cuda::GemvTuning& t) {
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_UNROLL"); v != nullptr) {
    t.unroll = std::atoi(v);
    PX_CHECK_MSG(t.unroll == 4 || t.unroll == 8, "PIXTRAL_CUDA_GEMV_UNROLL is 4 or 8");
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_PIPE"); v != nullptr) {
    const int pipe = std::atoi(v);
    PX_CHECK_MSG(pipe >= 0 && pipe <= 2 && v[0] != '\0' && v[1] == '\0', "PIXTRAL_CUDA_GEMV_PIPE is 0, 1 or 2");
    t.pipe = static_cast<cuda::GemvPipe>(pipe);
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_STAGES"); v != nullptr) {
    t.stages = std::atoi(v);
    PX_CHECK_MSG(t.stages >= 2 && t.stages <= 8, "PIXTRAL_CUDA_GEMV_STAGES is 2 to 8");
  }
  // "0": never; "1": every M the GEMV takes; unset: M = 1 (GemvTuning::warp_max_m).
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_WARP"); v != nullptr)
    t.warp_max_m = std::strcmp(v, "0") == 0 ? 0 : static_cast<int>(cuda::kGemvMaxM);
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_GRID"); v != nullptr) {
    PX_CHECK_MSG(std::strcmp(v, "full") == 0 || std::strcmp(v, "persistent") == 0,
                 "PIXTRAL_CUDA_GEMV_GRID is persistent or full");
    t.full_grid = std::strcmp(v, "full") == 0;
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_EVICT"); v != nullptr) t.evict_first = std::strcmp(v, "0") != 0;
}

}  // namespace

Result<std::unique_ptr<Backend>> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (count == 0) return unimplemented("--backend cuda: no CUDA device or driver found");
  if (device < 0 || device >= count)
    return invalid_argument("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                            " found)");
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(device));
}

CudaBackend::CudaBackend(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
  uint64_t threshold = UINT64_MAX;  // keep freed memory in the pool: per-step alloc/free stays cheap
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  PX_CHECK(cublasLtCreate(&lt_) == CUBLAS_STATUS_SUCCESS);
  CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
  for (int i = 0; i < kStagingSlots; ++i) {
    CUDA_CHECK(cudaMallocHost(&staging_[i], kStagingBytes));
    CUDA_CHECK(cudaEventCreateWithFlags(&staging_done_[i], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(staging_done_[i], stream_));
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&side_stream_, cudaStreamNonBlocking));
  copy_pool_ = std::make_unique<base::ThreadPool>(kUploadThreads);
  CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
  if (const char* v = std::getenv("PIXTRAL_CUDA_ATTN_OVERLAP"); v != nullptr) overlap_attention_ = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMM_TUNE"); v != nullptr)  // cuda_backend_gemm_tune.cpp
    gemm_tune_min_m_ = std::strcmp(v, "0") == 0 ? 0 : std::max(256, std::atoi(v));
  const char* gemv = std::getenv("PIXTRAL_CUDA_GEMV");  // "0": small-M matmuls through cuBLASLt too
  use_gemv_ = !(gemv != nullptr && std::strcmp(gemv, "0") == 0);
  // "1", "2", "4" or "8": force the warps per output column of the GEMV (benchmarks, tests).
  if (const char* wpc = std::getenv("PIXTRAL_CUDA_GEMV_WPC"); wpc != nullptr) {
    const int v = std::atoi(wpc);
    PX_CHECK_MSG(v == 0 || v == 1 || v == 2 || v == 4 || v == 8, "PIXTRAL_CUDA_GEMV_WPC is 0, 1, 2, 4 or 8");
    gemv_.warps_per_col = v;
  }
  // Cap on resident GEMV blocks per SM (0: occupancy), plain GEMVs' x read through L1 ("0";
  // default: staged in shared memory), programmatic dependent launch of the GEMVs ("0": off),
  // whole-matrix L2 prefetch of matrices that fit ("1"; default: first chunks only) — for
  // benchmarks and tests.
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_BLOCKS"); v != nullptr) gemv_.blocks_per_sm = std::atoi(v);
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_STAGE"); v != nullptr) gemv_.stage_x = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("PIXTRAL_CUDA_PDL"); v != nullptr) gemv_.pdl = std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("PIXTRAL_CUDA_GEMV_PREFETCH"); v != nullptr)
    gemv_.prefetch_all = std::strcmp(v, "0") != 0;
  read_gemv_variants(gemv_);
  // The skinny GEMM's rows ("0": off; "N": up to N), its K splits forced to N (1-8; "0": its plan)
  // and its tile geometry (0-2); either of the last two alone takes it up to 64 rows.
  if (const char* v = std::getenv("PIXTRAL_CUDA_SKINNY_SPLITS"); v != nullptr) {
    skinny_.splits = std::atoi(v);
    skinny_.max_m = cuda::kSkinnyMaxM;
    PX_CHECK_MSG(skinny_.splits >= 0 && skinny_.splits <= cuda::kSkinnyMaxSplits, "PIXTRAL_CUDA_SKINNY_SPLITS is 0 to 8");
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_SKINNY_GEOMETRY"); v != nullptr) {
    skinny_.geometry = std::atoi(v);
    skinny_.max_m = cuda::kSkinnyMaxM;
    PX_CHECK_MSG(skinny_.geometry >= 0 && skinny_.geometry <= 2, "PIXTRAL_CUDA_SKINNY_GEOMETRY is 0, 1 or 2");
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_SKINNY"); v != nullptr) {
    skinny_.max_m = std::atoi(v);
    PX_CHECK_MSG(skinny_.max_m >= 0 && skinny_.max_m <= cuda::kSkinnyMaxM, "PIXTRAL_CUDA_SKINNY is 0 to 64 (rows)");
  }
  skinny_.pdl = gemv_.pdl;
  // The attention kernel for many query rows ("wgmma": the sm_90a kernel, the default where the
  // device and the build support it; "mma32": prefill_kernel; "flash2": the first tensor-core
  // kernel) and mma32's warps per block ("4", "8"; "0": by head_dim).
  const bool wgmma_ok = cuda::wgmma_attention_supported(device_);
  if (wgmma_ok) attn_.prefill = cuda::PrefillAttention::kWgmma;
  if (const char* v = std::getenv("PIXTRAL_CUDA_ATTN"); v != nullptr) {
    const bool flash2 = std::strcmp(v, "flash2") == 0, wgmma = std::strcmp(v, "wgmma") == 0;
    PX_CHECK_MSG(flash2 || wgmma || std::strcmp(v, "mma32") == 0, "PIXTRAL_CUDA_ATTN is mma32, flash2 or wgmma");
    PX_CHECK_MSG(!wgmma || wgmma_ok, "PIXTRAL_CUDA_ATTN=wgmma needs an sm_90 device and a build with sm_90a code");
    attn_.prefill = flash2  ? cuda::PrefillAttention::kFlash2
                    : wgmma ? cuda::PrefillAttention::kWgmma
                            : cuda::PrefillAttention::kMma32;
  }
  if (const char* v = std::getenv("PIXTRAL_CUDA_ATTN_WARPS"); v != nullptr) {
    attn_.prefill_warps = std::atoi(v);
    PX_CHECK_MSG(attn_.prefill_warps == 0 || attn_.prefill_warps == 4 || attn_.prefill_warps == 8,
                 "PIXTRAL_CUDA_ATTN_WARPS is 0, 4 or 8");
  }
  // The wgmma kernel's KV splits forced to N (1-16; "0": its plan), to measure the plan's choice.
  if (const char* v = std::getenv("PIXTRAL_CUDA_ATTN_SPLITS"); v != nullptr) {
    attn_.wgmma_splits = std::atoi(v);
    PX_CHECK_MSG(attn_.wgmma_splits >= 0 && attn_.wgmma_splits <= 16, "PIXTRAL_CUDA_ATTN_SPLITS is 0 to 16");
  }
  // Decode-shaped paged attention on the decode kernel ("new") or the flash kernel + combine
  // ("old"), to compare and test both.
  if (const char* v = std::getenv("PIXTRAL_CUDA_DECODE_ATTN"); v != nullptr) {
    PX_CHECK_MSG(std::strcmp(v, "old") == 0 || std::strcmp(v, "new") == 0, "PIXTRAL_CUDA_DECODE_ATTN is old or new");
    decode_kernel_ = std::strcmp(v, "new") == 0;
  }
}

std::optional<std::pair<int64_t, int64_t>> CudaBackend::memory_info() const {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return std::make_pair(static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (void* p : retired_ws_) cudaFreeAsync(p, stream_);
  if (split_ws_ != nullptr) cudaFreeAsync(split_ws_, stream_);
  if (counters_ != nullptr) cudaFreeAsync(counters_, stream_);
  if (op_ws_ != nullptr) cudaFreeAsync(op_ws_, stream_);
  cudaStreamSynchronize(stream_);
  for (auto& [key, plan] : plans_) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  for (int i = 0; i < kStagingSlots; ++i) {
    cudaEventDestroy(staging_done_[i]);
    cudaFreeHost(staging_[i]);
  }
  cudaStreamSynchronize(side_stream_);
  cudaEventDestroy(fork_);
  cudaEventDestroy(join_);
  cudaStreamDestroy(side_stream_);
  if (tune_begin_ != nullptr) cudaEventDestroy(tune_begin_);
  if (tune_end_ != nullptr) cudaEventDestroy(tune_end_);
  cudaFree(workspace_);
  cublasLtDestroy(lt_);
  cudaStreamDestroy(stream_);
}

TensorBuffer CudaBackend::alloc(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  const size_t bytes = std::max<size_t>(256, (t.nbytes() + 255) / 256 * 256);
  CUDA_CHECK(cudaMallocAsync(&t.data, bytes, stream_));
  CUDA_CHECK(cudaMemsetAsync(t.data, 0, bytes, stream_));  // zeroed, as the CPU backend's memory
  return TensorBuffer(this, t);
}

void CudaBackend::free(Tensor& tensor) {
  if (tensor.data != nullptr) CUDA_CHECK(cudaFreeAsync(tensor.data, stream_));
  tensor.data = nullptr;
}

void* CudaBackend::scratch(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMallocAsync(&p, std::max<size_t>(bytes, 256), stream_));
  return p;
}

void CudaBackend::free_scratch(void* ptr) { CUDA_CHECK(cudaFreeAsync(ptr, stream_)); }

float* CudaBackend::split_workspace(size_t bytes) {
  if (private_temporaries_) return nullptr;
  if (bytes <= split_ws_bytes_) return static_cast<float*>(split_ws_);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  if (split_ws_ != nullptr) retired_ws_.push_back(split_ws_);
  split_ws_bytes_ = std::max<size_t>({bytes, 2 * split_ws_bytes_, size_t{4} << 20});
  CUDA_CHECK(cudaMallocAsync(&split_ws_, split_ws_bytes_, stream_));
  return static_cast<float*>(split_ws_);
}

void* CudaBackend::op_workspace(size_t bytes) {
  if (bytes <= op_ws_bytes_) return op_ws_;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  if (op_ws_ != nullptr) retired_ws_.push_back(op_ws_);
  op_ws_bytes_ = std::max<size_t>({bytes, op_ws_bytes_ + op_ws_bytes_ / 2, size_t{4} << 20});
  CUDA_CHECK(cudaMallocAsync(&op_ws_, op_ws_bytes_, stream_));
  return op_ws_;
}

uint32_t* CudaBackend::decode_counters(size_t count) {
  if (private_temporaries_) return nullptr;
  if (count <= counters_count_) return static_cast<uint32_t*>(counters_);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  if (counters_ != nullptr) retired_ws_.push_back(counters_);
  counters_count_ = std::max<size_t>({count, 2 * counters_count_, size_t{4096}});
  CUDA_CHECK(cudaMallocAsync(&counters_, counters_count_ * sizeof(uint32_t), stream_));
  CUDA_CHECK(cudaMemsetAsync(counters_, 0, counters_count_ * sizeof(uint32_t), stream_));
  return static_cast<uint32_t*>(counters_);
}

int CudaBackend::next_slot() {
  const int slot = staging_next_;
  staging_next_ = (staging_next_ + 1) % kStagingSlots;
  CUDA_CHECK(cudaEventSynchronize(staging_done_[slot]));
  return slot;
}

// Host data goes to the device through the pinned staging ring in chunks of at most kUploadChunk
// elements: each chunk's copy (or conversion) into its slot is split over copy_pool_'s threads,
// and its DMA overlaps the next chunk's copy. One thread copying a 1024² image's 12.6 MB of f32
// pixels kept the device idle for about 2 ms before the vision encoder's first kernel.
void CudaBackend::upload(const void* host, DType host_dtype, const Tensor& dst) {
  const size_t n = static_cast<size_t>(dst.numel());
  if (n == 0) return;
  const bool raw = dst.dtype == DType::kI32 || dst.dtype == DType::kI64;
  if (raw) PX_CHECK_MSG(host_dtype == dst.dtype, "integer uploads are raw");
  if (!raw) PX_CHECK_MSG(dst.dtype == DType::kBF16 || dst.dtype == DType::kF32, "CUDA float tensors are bf16 or f32");
  const size_t host_size = base::dtype_size(host_dtype), dst_size = base::dtype_size(dst.dtype);
  for (size_t begin = 0; begin < n; begin += kUploadChunk) {
    const size_t count = std::min(kUploadChunk, n - begin);
    const int slot = next_slot();
    const char* src = static_cast<const char*>(host) + begin * host_size;
    auto* out = static_cast<char*>(staging_[slot]);
    auto copy = [&](int64_t b, int64_t e) {  // elements [b, e) of this chunk into the slot
      const size_t i0 = static_cast<size_t>(b), len = static_cast<size_t>(e - b);
      if (raw || host_dtype == dst.dtype) {
        std::memcpy(out + i0 * dst_size, src + i0 * host_size, len * dst_size);
      } else if (dst.dtype == DType::kF32) {
        PX_CHECK(base::convert_to_f32(host_dtype, src + i0 * host_size, reinterpret_cast<float*>(out) + i0, len));
      } else {  // to bf16, through f32 (read in place when the host holds f32)
        const float* f = reinterpret_cast<const float*>(src) + i0;
        std::vector<float> tmp;
        if (host_dtype != DType::kF32) {
          tmp.resize(len);
          PX_CHECK(base::convert_to_f32(host_dtype, src + i0 * host_size, tmp.data(), len));
          f = tmp.data();
        }
        uint16_t* o = reinterpret_cast<uint16_t*>(out) + i0;
        for (size_t i = 0; i < len; ++i) o[i] = base::f32_to_bf16(f[i]);
      }
    };
    if (count >= 2 * kUploadMinSplit)
      copy_pool_->parallel_for(static_cast<int64_t>(count), copy, kUploadMinSplit);
    else
      copy(0, static_cast<int64_t>(count));
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst.data) + begin * dst_size, staging_[slot], count * dst_size,
                               cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaEventRecord(staging_done_[slot], stream_));
  }
}

void CudaBackend::download_f32(const Tensor& src, float* host) {
  PX_CHECK_MSG(src.dtype == DType::kBF16 || src.dtype == DType::kF32, "download_f32 of a float tensor");
  const size_t n = static_cast<size_t>(src.numel()), size = base::dtype_size(src.dtype);
  const size_t chunk = kStagingBytes / 4;
  for (size_t begin = 0; begin < n; begin += chunk) {
    const size_t count = std::min(chunk, n - begin);
    const int slot = next_slot();
    CUDA_CHECK(cudaMemcpyAsync(staging_[slot], static_cast<const char*>(src.data) + begin * size, count * size,
                               cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaEventRecord(staging_done_[slot], stream_));
    CUDA_CHECK(cudaEventSynchronize(staging_done_[slot]));
    PX_CHECK(base::convert_to_f32(src.dtype, staging_[slot], host + begin, count));
  }
}

void CudaBackend::download_i32(const Tensor& src, int32_t* host) {
  PX_CHECK_MSG(src.dtype == DType::kI32, "download_i32 of an I32 tensor");
  const size_t n = static_cast<size_t>(src.numel());
  const size_t chunk = kStagingBytes / 4;
  for (size_t begin = 0; begin < n; begin += chunk) {
    const size_t count = std::min(chunk, n - begin);
    const int slot = next_slot();
    CUDA_CHECK(cudaMemcpyAsync(staging_[slot], src.as<int32_t>() + begin, count * 4, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaEventRecord(staging_done_[slot], stream_));
    CUDA_CHECK(cudaEventSynchronize(staging_done_[slot]));
    std::memcpy(host + begin, staging_[slot], count * 4);
  }
}

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  PX_CHECK(src.dtype == dst.dtype && src.numel() == dst.numel());
  if (src.nbytes() == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaBackend::fill_random(const Tensor& dst, uint64_t seed, float mean, float stddev) {
  if (dst.dtype == DType::kBF16) {
    cuda::launch_fill_random_bf16(dst.as<bf16>(), dst.numel(), seed, mean, stddev, stream_);
  } else {
    PX_CHECK_MSG(dst.dtype == DType::kF32, "fill_random of a bf16 or f32 tensor");
    cuda::launch_fill_random_f32(dst.as<float>(), dst.numel(), seed, mean, stddev, stream_);
  }
}

// ---- graphs ---------------------------------------------------------------------------------

namespace {

// An instantiated CUDA graph replayed on the backend's stream.
class CudaGraph final : public Graph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

}  // namespace

void CudaBackend::begin_capture() {
  // Relaxed: other threads may use unrelated CUDA APIs meanwhile (e.g. an HTTP thread's uploads).
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
}

std::unique_ptr<Graph> CudaBackend::end_capture() {
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));
  return std::make_unique<CudaGraph>(exec, stream_);
}

}  // namespace pixtral::backend

