// CudaBackend: shape checks on the host, then one kernel launch per op (cuda_kernels.cu,
// cuda_attention.cu). Nothing here synchronizes with the device.
#include <utility>

#include "backend/cuda/cuda_backend_impl.h"

namespace pixtral::backend {

using cuda::bf16;

namespace {

void check_bf16(const Tensor& t, const char* what) { PX_CHECK_MSG(t.dtype == DType::kBF16, what); }
void check_i32(const Tensor& t, int64_t n, const char* what) {
  PX_CHECK_MSG(t.dtype == DType::kI32 && t.numel() == n, what);
}

}  // namespace

void CudaBackend::rms_norm(const RmsNormParams& p) {
  check_bf16(p.x, "rms_norm x bf16");
  check_bf16(p.y, "rms_norm y bf16");
  check_bf16(p.weight, "rms_norm weight bf16");
  const int64_t t = p.x.dim(0), d = p.x.dim(1);
  PX_CHECK_MSG(p.y.shape == p.x.shape && p.weight.numel() == d, "rms_norm shapes");
  cuda::launch_rms_norm(p.x.as<bf16>(), p.weight.as<bf16>(), p.y.as<bf16>(), t, d, p.eps, stream_);
}

void CudaBackend::rope(const RopeParams& p) {
  check_bf16(p.x, "rope x bf16");
  PX_CHECK_MSG(p.x.shape.rank == 3, "rope x [T, H, hd]");
  const int64_t t = p.x.dim(0), h = p.x.dim(1), hd = p.x.dim(2);
  const bool two_d = !p.pos_col.empty();
  PX_CHECK_MSG(hd % (two_d ? 4 : 2) == 0, "rope head_dim must be even (2D: a multiple of 4)");
  check_i32(p.pos, t, "rope pos I32 [T]");
  if (two_d) check_i32(p.pos_col, t, "rope pos_col I32 [T]");
  cuda::launch_rope(p.x.as<bf16>(), p.pos.as<int32_t>(), two_d ? p.pos_col.as<int32_t>() : nullptr, t, h, hd, p.theta,
                    stream_);
}

void CudaBackend::silu_mul(const SiluMulParams& p) {
  check_bf16(p.gate_up, "silu_mul gate_up bf16");
  check_bf16(p.out, "silu_mul out bf16");
  const int64_t t = p.out.dim(0), f = p.out.dim(1);
  PX_CHECK_MSG(p.gate_up.dim(0) == t && p.gate_up.dim(1) == 2 * f, "silu_mul shapes");
  cuda::launch_silu_mul(p.gate_up.as<bf16>(), p.out.as<bf16>(), t, f, stream_);
}

void CudaBackend::gelu(const GeluParams& p) {
  check_bf16(p.x, "gelu x bf16");
  cuda::launch_gelu(p.x.as<bf16>(), p.x.numel(), stream_);
}

void CudaBackend::embedding(const EmbeddingParams& p) {
  check_bf16(p.table, "embedding table bf16");
  check_bf16(p.out, "embedding out bf16");
  const int64_t t = p.ids.numel(), d = p.table.dim(1);
  check_i32(p.ids, t, "embedding ids I32");
  PX_CHECK_MSG(p.out.dim(0) == t && p.out.dim(1) == d, "embedding shapes");
  cuda::launch_copy_rows(p.table.data, p.ids.as<int32_t>(), p.table.dim(0), p.out.data, nullptr, t, t, d * 2, stream_);
}

void CudaBackend::scatter_rows(const ScatterRowsParams& p) {
  PX_CHECK_MSG(p.src.dtype == p.dst.dtype && p.src.dtype == DType::kBF16, "scatter_rows bf16");
  const int64_t n = p.src.dim(0), d = p.src.dim(1);
  check_i32(p.index, n, "scatter_rows index I32 [N]");
  PX_CHECK_MSG(p.dst.dim(1) == d, "scatter_rows row sizes");
  cuda::launch_copy_rows(p.src.data, nullptr, n, p.dst.data, p.index.as<int32_t>(), p.dst.dim(0), n, d * 2, stream_);
}

void CudaBackend::gather_rows(const GatherRowsParams& p) {
  PX_CHECK_MSG(p.src.dtype == p.out.dtype && p.src.dtype == DType::kBF16, "gather_rows bf16");
  const int64_t n = p.out.dim(0), d = p.src.dim(1);
  check_i32(p.index, n, "gather_rows index I32 [N]");
  PX_CHECK_MSG(p.out.dim(1) == d, "gather_rows row sizes");
  cuda::launch_copy_rows(p.src.data, p.index.as<int32_t>(), p.src.dim(0), p.out.data, nullptr, n, n, d * 2, stream_);
}

void CudaBackend::patchify(const PatchifyParams& p) {
  PX_CHECK_MSG(p.image.dtype == DType::kF32 && p.image.shape.rank == 3, "patchify image F32 [C, H, W]");
  check_bf16(p.patches, "patchify patches bf16");
  const int64_t c = p.image.dim(0), h = p.image.dim(1), w = p.image.dim(2), ps = p.patch_size;
  PX_CHECK_MSG(ps > 0 && h % ps == 0 && w % ps == 0, "patchify: image not a multiple of the patch");
  PX_CHECK_MSG(p.patches.dim(0) == (h / ps) * (w / ps) && p.patches.dim(1) == c * ps * ps, "patchify shapes");
  cuda::launch_patchify(p.image.as<float>(), p.patches.as<bf16>(), c, h, w, ps, stream_);
}

void CudaBackend::kv_write(const KvWriteParams& p) {
  for (const Tensor* t : {&p.k, &p.v, &p.k_cache, &p.v_cache}) check_bf16(*t, "kv_write bf16");
  const int64_t t = p.k.dim(0), row = p.k.dim(1) * p.k.dim(2);
  const int64_t slots = p.k_cache.dim(0) * p.k_cache.dim(1);
  PX_CHECK_MSG(p.v.shape == p.k.shape && p.v_cache.shape == p.k_cache.shape, "kv_write shapes");
  PX_CHECK_MSG(p.k_cache.dim(2) * p.k_cache.dim(3) == row, "kv_write row size");
  check_i32(p.slot_mapping, t, "kv_write slot_mapping I32 [T]");
  cuda::launch_kv_write(p.k.data, p.v.data, p.k_cache.data, p.v_cache.data, p.slot_mapping.as<int32_t>(), slots, t,
                        row * 2, stream_);
}

void CudaBackend::paged_attention(const PagedAttentionParams& p) {
  for (const Tensor* t : {&p.q, &p.k_cache, &p.v_cache, &p.out}) check_bf16(*t, "paged_attention bf16");
  const int64_t rows = p.q.dim(0), h = p.q.dim(1), hd = p.q.dim(2), hkv = p.k_cache.dim(2);
  PX_CHECK_MSG(p.out.shape == p.q.shape && p.k_cache.dim(3) == hd && p.v_cache.shape == p.k_cache.shape,
               "paged_attention shapes");
  PX_CHECK_MSG(h % hkv == 0 && h / hkv <= 32, "paged_attention: H must be a multiple of Hkv, group <= 32");
  PX_CHECK_MSG(hd % 4 == 0 && hd <= 128, "paged_attention: head_dim a multiple of 4, at most 128");
  check_i32(p.q_start, p.num_seqs + 1, "q_start I32 [S+1]");
  check_i32(p.kv_len, p.num_seqs, "kv_len I32 [S]");
  PX_CHECK_MSG(p.block_tables.dtype == DType::kI32 && p.block_tables.dim(0) == p.num_seqs, "block_tables [S, B]");
  cuda::AttentionArgs a;
  a.q = p.q.as<bf16>();
  a.k = p.k_cache.as<bf16>();
  a.v = p.v_cache.as<bf16>();
  a.out = p.out.as<bf16>();
  a.q_start = p.q_start.as<int32_t>();
  a.kv_len = p.kv_len.as<int32_t>();
  a.block_tables = p.block_tables.as<int32_t>();
  a.max_blocks = p.block_tables.dim(1);
  a.block_size = p.k_cache.dim(1);
  a.num_seqs = p.num_seqs;
  a.num_heads = h;
  a.num_kv_heads = hkv;
  a.head_dim = hd;
  a.max_q_len = p.max_q_len;
  a.max_kv_len = p.max_kv_len;
  a.total_rows = rows;
  a.scale = p.scale;
  a.causal = true;
  attention_with_workspace(a);
}

// The first call on the side stream, launched first so that its blocks (few, bound by reading the
// contexts) spread over the SMs before the second call's (many, bound by the tensor cores) fill
// the rest; stream_ waits for both before the next op. Measured on the H100 (cuda_bench mixed
// steps of 31 decodes at 4,400 tokens of context and a prefill chunk): see docs/cuda.md.
void CudaBackend::paged_attention_pair(const PagedAttentionParams& first, const PagedAttentionParams& second) {
  if (!overlap_attention_) return Backend::paged_attention_pair(first, second);
  CUDA_CHECK(cudaEventRecord(fork_, stream_));
  CUDA_CHECK(cudaStreamWaitEvent(side_stream_, fork_, 0));
  std::swap(stream_, side_stream_);
  private_temporaries_ = true;
  paged_attention(first);
  private_temporaries_ = false;
  std::swap(stream_, side_stream_);
  CUDA_CHECK(cudaEventRecord(join_, side_stream_));
  paged_attention(second);
  CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
}

void CudaBackend::attention_with_workspace(const cuda::AttentionArgs& a) {
  if (decode_attention(a)) return;
  const size_t bytes = static_cast<size_t>(cuda::attention_workspace_floats(a, attn_, num_sms_)) * 4;
  float* workspace = bytes > 0 ? split_workspace(bytes) : nullptr;
  const bool temporary = bytes > 0 && workspace == nullptr;
  if (temporary) workspace = static_cast<float*>(scratch(bytes));
  cuda::launch_attention(a, attn_, workspace, num_sms_, stream_);
  if (temporary) free_scratch(workspace);
}

bool CudaBackend::decode_attention(const cuda::AttentionArgs& a) {
  if (!decode_kernel_ || !cuda::decode_attention_fits(a)) return false;
  const size_t bytes = static_cast<size_t>(cuda::decode_attention_workspace_floats(a, num_sms_)) * 4;
  const size_t count = bytes > 0 ? static_cast<size_t>(cuda::decode_attention_counters(a)) : 0;
  float* workspace = bytes > 0 ? split_workspace(bytes) : nullptr;
  uint32_t* counters = count > 0 ? decode_counters(count) : nullptr;
  // Growing during a capture: stream-ordered temporaries (the counters zeroed in the graph).
  const bool temp_workspace = bytes > 0 && workspace == nullptr, temp_counters = count > 0 && counters == nullptr;
  if (temp_workspace) workspace = static_cast<float*>(scratch(bytes));
  if (temp_counters) {
    counters = static_cast<uint32_t*>(scratch(count * sizeof(uint32_t)));
    CUDA_CHECK(cudaMemsetAsync(counters, 0, count * sizeof(uint32_t), stream_));
  }
  cuda::launch_decode_attention(a, workspace, counters, num_sms_, gemv_.pdl, stream_);
  if (temp_workspace) free_scratch(workspace);
  if (temp_counters) free_scratch(counters);
  return true;
}

void CudaBackend::varlen_attention(const VarlenAttentionParams& p) {
  for (const Tensor* t : {&p.q, &p.k, &p.v, &p.out}) check_bf16(*t, "varlen_attention bf16");
  const int64_t n = p.q.dim(0), h = p.q.dim(1), hd = p.q.dim(2);
  PX_CHECK_MSG(p.k.shape == p.q.shape && p.v.shape == p.q.shape && p.out.shape == p.q.shape, "varlen shapes");
  PX_CHECK_MSG(hd % 4 == 0 && hd <= 128, "varlen_attention: head_dim a multiple of 4, at most 128");
  check_i32(p.cu_seqlens, p.num_segments + 1, "cu_seqlens I32 [S+1]");
  cuda::AttentionArgs a;
  a.q = p.q.as<bf16>();
  a.k = p.k.as<bf16>();
  a.v = p.v.as<bf16>();
  a.out = p.out.as<bf16>();
  a.q_start = p.cu_seqlens.as<int32_t>();
  a.num_seqs = p.num_segments;
  a.num_heads = h;
  a.num_kv_heads = h;
  a.head_dim = hd;
  a.max_q_len = p.max_seqlen;
  a.max_kv_len = p.max_seqlen;
  a.total_rows = n;
  a.scale = p.scale;
  a.causal = false;
  attention_with_workspace(a);
}

}  // namespace pixtral::backend
