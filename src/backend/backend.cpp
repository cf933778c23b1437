#include "backend/backend.h"

#include "base/check.h"

namespace pixtral::backend {

TensorBuffer::~TensorBuffer() {
  if (backend_ != nullptr && !tensor_.empty()) backend_->free(tensor_);
}

TensorBuffer& TensorBuffer::operator=(TensorBuffer&& o) noexcept {
  if (this != &o) {
    if (backend_ != nullptr && !tensor_.empty()) backend_->free(tensor_);
    backend_ = o.backend_;
    tensor_ = o.tensor_;
    o.tensor_ = {};
  }
  return *this;
}

namespace {

void check_vector(const Tensor& t, DType dtype, int64_t n, const char* what) {
  PX_CHECK_MSG(!t.empty() && t.dtype == dtype && t.numel() == n, what);
}

}  // namespace

int64_t check_sample_params(const SampleParams& p, int64_t rows) {
  check_vector(p.temperature, DType::kF32, rows, "sample temperature F32 [R]");
  check_vector(p.top_k, DType::kI32, rows, "sample top_k I32 [R]");
  check_vector(p.top_p, DType::kF32, rows, "sample top_p F32 [R]");
  check_vector(p.min_p, DType::kF32, rows, "sample min_p F32 [R]");
  check_vector(p.uniform, DType::kF64, rows, "sample uniform F64 [R]");
  check_vector(p.out_ids, DType::kI32, rows, "sample out_ids I32 [R]");
  const int64_t num_entries = p.penalty_row.empty() ? 0 : p.penalty_row.numel();
  if (num_entries > 0) {
    check_vector(p.penalty_row, DType::kI32, num_entries, "sample penalty_row I32 [E]");
    check_vector(p.penalty_token, DType::kI32, num_entries, "sample penalty_token I32 [E]");
    check_vector(p.penalty_rep, DType::kF32, num_entries, "sample penalty_rep F32 [E]");
    check_vector(p.penalty_sub, DType::kF32, num_entries, "sample penalty_sub F32 [E]");
  }
  return num_entries;
}

void Backend::norm_matmul(const NormMatmulParams& p) {
  const int64_t m = p.x.dim(0), k = p.x.dim(1), n = p.w.dim(0);
  PX_CHECK_MSG(p.norm_weight.numel() == k && p.w.dim(1) == k, "norm_matmul shapes");
  PX_CHECK_MSG(p.y.dim(0) == m && p.y.dim(1) == (p.swiglu ? n / 2 : n) && (!p.swiglu || n % 2 == 0),
               "norm_matmul output shape");
  const TensorBuffer normed = alloc(activation_dtype(), {m, k});
  rms_norm({.x = p.x, .weight = p.norm_weight, .y = normed, .eps = p.eps});
  if (!p.swiglu) return matmul({.x = normed, .w = p.w, .y = p.y});
  const TensorBuffer gate_up = alloc(activation_dtype(), {m, n});
  matmul({.x = normed, .w = p.w, .y = gate_up});
  silu_mul({.gate_up = gate_up, .out = p.y});
}

void Backend::qkv_rope(const QkvRopeParams& p) {
  const int64_t t = p.x.dim(0), d = p.x.dim(1), h = p.q.dim(1), hd = p.q.dim(2), hkv = p.k_cache.dim(2);
  PX_CHECK_MSG(p.q.dim(0) == t && p.k_cache.dim(3) == hd && p.w_qkv.dim(0) == (h + 2 * hkv) * hd &&
                   p.w_qkv.dim(1) == d && p.norm_weight.numel() == d,
               "qkv_rope shapes");
  const TensorBuffer normed = alloc(activation_dtype(), {t, d});
  const TensorBuffer k = alloc(activation_dtype(), {t, hkv, hd}), v = alloc(activation_dtype(), {t, hkv, hd});
  rms_norm({.x = p.x, .weight = p.norm_weight, .y = normed, .eps = p.eps});
  const Tensor& w = p.w_qkv;
  matmul({.x = normed, .w = w.rows(0, h * hd), .y = p.q.reshape({t, h * hd})});
  matmul({.x = normed, .w = w.rows(h * hd, (h + hkv) * hd), .y = k.tensor().reshape({t, hkv * hd})});
  matmul({.x = normed, .w = w.rows((h + hkv) * hd, (h + 2 * hkv) * hd), .y = v.tensor().reshape({t, hkv * hd})});
  rope({.x = p.q, .pos = p.pos, .theta = p.theta});
  rope({.x = k, .pos = p.pos, .theta = p.theta});
  kv_write({.k = k, .v = v, .k_cache = p.k_cache, .v_cache = p.v_cache, .slot_mapping = p.slot_mapping});
}

void Backend::paged_attention_pair(const PagedAttentionParams& first, const PagedAttentionParams& second) {
  paged_attention(first);
  paged_attention(second);
}

}  // namespace pixtral::backend
