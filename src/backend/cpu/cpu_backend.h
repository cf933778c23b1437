// CpuBackend: the reference backend. fp32 weights and activations, fp32 accumulation, GEMMs through
// OpenBLAS, other ops as clear loops over the base thread pool. Every GPU op is tested against it.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace pixtral::backend {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::kF32; }
  DType weight_dtype() const override { return DType::kF32; }

  TensorBuffer alloc(DType dtype, Shape shape) override;
  void free(Tensor& tensor) override;
  void upload(const void* host, DType host_dtype, const Tensor& dst) override;
  void download_f32(const Tensor& src, float* host) override;
  void download_i32(const Tensor& src, int32_t* host) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void synchronize() override {}
  void fill_random(const Tensor& dst, uint64_t seed, float mean, float stddev) override;

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
  void varlen_attention(const VarlenAttentionParams& p) override;
  void sample(const SampleParams& p) override;  // cpu_sample.cpp
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace pixtral::backend
