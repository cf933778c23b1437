#include "model/text_decoder.h"

#include <cmath>

#include "model/layers.h"
#include "model/step_inputs.h"

namespace pixtral::model {

using backend::Tensor;
using backend::TensorBuffer;

namespace {

TensorBuffer upload_i32(backend::Backend& b, const std::vector<int32_t>& host) {
  TensorBuffer t = b.alloc(base::DType::kI32, {static_cast<int64_t>(host.size())});
  if (!host.empty()) b.upload(host.data(), base::DType::kI32, t);
  return t;
}

}  // namespace

Result<TensorBuffer> TextDecoder::forward(backend::Backend& b, const DecoderBatch& batch, KvCache& cache) const {
  const auto& t = config_.text;
  PX_ASSIGN_OR_RETURN(StepInputs in, build_step_inputs(batch, cache.block_size, cache.num_blocks,
                                                       static_cast<int32_t>(config_.vision.image_token_id)));
  for (int32_t id : in.token_ids)
    if (id < 0 || id >= t.vocab_size)
      return invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(t.vocab_size) + ")");
  const int64_t n = in.num_tokens, d = t.hidden_dim, h = t.num_heads, hkv = t.num_kv_heads, hd = t.head_dim;
  const auto dt = b.activation_dtype();

  TensorBuffer ids = upload_i32(b, in.token_ids), positions = upload_i32(b, in.positions);
  TensorBuffer slots = upload_i32(b, in.slot_mapping), q_start = upload_i32(b, in.q_start);
  TensorBuffer kv_len = upload_i32(b, in.kv_len);
  TensorBuffer tables = b.alloc(base::DType::kI32, {in.num_seqs, in.max_blocks_per_seq});
  b.upload(in.block_tables.data(), base::DType::kI32, tables);

  // h0 = token embeddings, with image features written over the [IMG] rows (ref: §6).
  TensorBuffer x = b.alloc(dt, {n, d});
  b.embedding({.table = weights_.tok_embeddings, .ids = ids, .out = x});
  for (const auto& img : in.images) {
    const Tensor& feats = batch.seqs[img.seq].image_embeds;
    const int64_t count = static_cast<int64_t>(img.dst_rows.size());
    TensorBuffer dst = upload_i32(b, img.dst_rows);
    b.scatter_rows({.src = feats.rows(img.src_begin, img.src_begin + count), .index = dst, .dst = x});
  }

  BlockScratch s = BlockScratch::create(b, n, d, h, hkv, hd, t.ffn_dim);
  const float eps = static_cast<float>(t.norm_eps), theta = static_cast<float>(t.rope_theta);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const auto& layer = weights_.layers[l];
    attention_inputs(b, layer, x, eps, s);
    const Tensor q = s.q.tensor().reshape({n, h, hd}), k = s.k.tensor().reshape({n, hkv, hd});
    const Tensor v = s.v.tensor().reshape({n, hkv, hd});
    b.rope({.x = q, .pos = positions, .theta = theta});  // ref: §7 1D RoPE, interleaved pairs
    b.rope({.x = k, .pos = positions, .theta = theta});
    b.kv_write({.k = k, .v = v, .k_cache = cache.k[l], .v_cache = cache.v[l], .slot_mapping = slots});
    b.paged_attention({.q = q, .k_cache = cache.k[l], .v_cache = cache.v[l], .q_start = q_start, .kv_len = kv_len,
                       .block_tables = tables, .out = s.attn.tensor().reshape({n, h, hd}), .scale = scale,
                       .num_seqs = in.num_seqs, .max_kv_len = in.max_kv_len, .max_q_len = in.max_q_len});
    attention_output_and_ffn(b, layer, x, eps, s);
  }

  // logits = RMSNorm(h_rows; norm) · outputᵀ for the selected rows only.
  const int64_t r = static_cast<int64_t>(in.logit_rows.size());
  TensorBuffer rows_index = upload_i32(b, in.logit_rows);
  TensorBuffer selected = b.alloc(dt, {r, d});
  b.gather_rows({.src = x, .index = rows_index, .out = selected});
  b.rms_norm({.x = selected, .weight = weights_.norm, .y = selected, .eps = eps});
  TensorBuffer logits = b.alloc(dt, {r, t.vocab_size});
  b.matmul({.x = selected, .w = weights_.output, .y = logits});
  return logits;
}

}  // namespace pixtral::model
