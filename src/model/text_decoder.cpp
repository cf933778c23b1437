#include "model/text_decoder.h"

#include <cmath>

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

Status TextDecoder::check_tokens(const StepInputs& in) const {
  for (int32_t id : in.token_ids)
    if (id < 0 || id >= config_.text.vocab_size)
      return invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(config_.text.vocab_size) + ")");
  return Status::ok();
}

// A mixed step's decode rows in the many-rows (prefill) kernel would each fill a 128-pair tile with
// 4 pairs and stream their whole context through it; apart, they take the decode kernel. q_start
// stays absolute (q and out are the whole step's), so the second call reads the chunks' rows.
void TextDecoder::attend(backend::Backend& b, const StepTensors& t, const Tensor& q, const Tensor& out, KvCache& cache,
                         size_t layer) const {
  const float scale = 1.0f / std::sqrt(static_cast<float>(config_.text.head_dim));
  const int64_t d = t.num_decode_seqs, s = t.num_seqs;
  auto params = [&](int64_t first, int64_t end, int64_t max_q_len) {
    return backend::PagedAttentionParams{.q = q, .k_cache = cache.k[layer], .v_cache = cache.v[layer],
                                         .q_start = t.q_start.rows(first, end + 1), .kv_len = t.kv_len.rows(first, end),
                                         .block_tables = t.block_tables.rows(first, end), .out = out, .scale = scale,
                                         .num_seqs = end - first, .max_kv_len = t.max_kv_len, .max_q_len = max_q_len};
  };
  if (d == 0 || d == s || t.max_q_len == 1) return b.paged_attention(params(0, s, t.max_q_len));
  // A mixed step: the decode rows (bound by reading their contexts) and the prefill chunks (bound
  // by compute) on the kernels made for each, at the same time where the backend can.
  b.paged_attention_pair(params(0, d, 1), params(d, s, t.max_q_len));
}

void TextDecoder::compute(backend::Backend& b, const StepTensors& t, const std::vector<ImageScatterTensors>& images,
                          KvCache& cache) const {
  const auto& c = config_.text;
  const int64_t n = t.x.dim(0), h = c.num_heads, hd = c.head_dim;
  // h0 = token embeddings, with image features written over the [IMG] rows (ref: §6).
  b.embedding({.table = weights_.tok_embeddings, .ids = t.ids, .out = t.x});
  for (const auto& img : images) b.scatter_rows({.src = img.src, .index = img.dst, .dst = t.x});

  const float eps = static_cast<float>(c.norm_eps), theta = static_cast<float>(c.rope_theta);
  const BlockTensors& s = t.block;
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const auto& layer = weights_.layers[l];
    const Tensor q = s.q.reshape({n, h, hd});
    // ref: §7 — RMSNorm, q/k/v projections, 1D RoPE (interleaved pairs), K/V into the paged cache.
    b.qkv_rope({.x = t.x, .norm_weight = layer.attention_norm, .w_qkv = layer.wqkv, .pos = t.positions, .q = q,
                .k_cache = cache.k[l], .v_cache = cache.v[l], .slot_mapping = t.slots, .eps = eps, .theta = theta});
    attend(b, t, q, s.attn.reshape({n, h, hd}), cache, l);
    attention_output(b, layer, t.x, s);
    ffn(b, layer, t.x, eps, s);
  }
  // logits = RMSNorm(h_rows; norm) · outputᵀ for the selected rows only.
  b.gather_rows({.src = t.x, .index = t.logit_rows, .out = t.selected});
  b.norm_matmul({.x = t.selected, .norm_weight = weights_.norm, .w = weights_.output, .y = t.logits, .eps = eps});
}

Result<TensorBuffer> TextDecoder::forward(backend::Backend& b, const DecoderBatch& batch, KvCache& cache) const {
  const auto& c = config_.text;
  PX_ASSIGN_OR_RETURN(StepInputs in, build_step_inputs(batch, cache.block_size, cache.num_blocks,
                                                       static_cast<int32_t>(config_.vision.image_token_id)));
  PX_RETURN_IF_ERROR(check_tokens(in));
  const int64_t n = in.num_tokens, d = c.hidden_dim, r = static_cast<int64_t>(in.logit_rows.size());
  const auto dt = b.activation_dtype();
  TensorBuffer ids = upload_i32(b, in.token_ids), positions = upload_i32(b, in.positions);
  TensorBuffer slots = upload_i32(b, in.slot_mapping), q_start = upload_i32(b, in.q_start);
  TensorBuffer kv_len = upload_i32(b, in.kv_len), rows = upload_i32(b, in.logit_rows);
  TensorBuffer tables = b.alloc(base::DType::kI32, {in.num_seqs, in.max_blocks_per_seq});
  b.upload(in.block_tables.data(), base::DType::kI32, tables);
  TensorBuffer x = b.alloc(dt, {n, d}), selected = b.alloc(dt, {r, d}), logits = b.alloc(dt, {r, c.vocab_size});
  const BlockScratch scratch = BlockScratch::create(b, n, d, c.num_heads, c.num_kv_heads, c.head_dim, c.ffn_dim);

  std::vector<TensorBuffer> dst_rows;
  std::vector<ImageScatterTensors> images;
  for (const auto& img : in.images) {
    const Tensor& feats = batch.seqs[img.seq].image_embeds;
    const int64_t count = static_cast<int64_t>(img.dst_rows.size());
    dst_rows.push_back(upload_i32(b, img.dst_rows));
    images.push_back({feats.rows(img.src_begin, img.src_begin + count), dst_rows.back()});
  }
  const StepTensors t{ids, positions, slots, q_start, kv_len, tables, rows, x, scratch.view(n), selected, logits,
                      in.num_seqs, in.max_kv_len, in.max_q_len, in.num_decode_seqs};
  compute(b, t, images, cache);
  return logits;
}

DecodeRunner::DecodeRunner(backend::Backend& b, const TextDecoder& decoder, const io::ModelConfig& config,
                           KvCache& cache, int64_t max_seqs, int64_t max_blocks_per_seq)
    : b_(b), decoder_(decoder), config_(config), cache_(cache), max_seqs_(max_seqs), max_blocks_(max_blocks_per_seq) {
  using base::DType;
  const auto& c = config.text;
  const auto dt = b.activation_dtype();
  ids_ = b.alloc(DType::kI32, {max_seqs});
  positions_ = b.alloc(DType::kI32, {max_seqs});
  slots_ = b.alloc(DType::kI32, {max_seqs});
  q_start_ = b.alloc(DType::kI32, {max_seqs + 1});
  kv_len_ = b.alloc(DType::kI32, {max_seqs});
  tables_ = b.alloc(DType::kI32, {max_seqs * max_blocks_per_seq});  // [S, width] views of any width
  rows_ = b.alloc(DType::kI32, {max_seqs});
  x_ = b.alloc(dt, {max_seqs, c.hidden_dim});
  selected_ = b.alloc(dt, {max_seqs, c.hidden_dim});
  logits_ = b.alloc(dt, {max_seqs, c.vocab_size});
  scratch_ = BlockScratch::create(b, max_seqs, c.hidden_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.ffn_dim);
}

int64_t DecodeRunner::width_for(int64_t blocks) const {
  int64_t width = 16;
  while (width < blocks) width *= 2;
  return std::min(width, max_blocks_);
}

StepTensors DecodeRunner::tensors_for(int64_t s, int64_t width) const {
  // Block tables padded to `width`: the tensor shapes (and a graph) depend on (S, width) only.
  return {ids_.tensor().rows(0, s),
          positions_.tensor().rows(0, s),
          slots_.tensor().rows(0, s),
          q_start_.tensor().rows(0, s + 1),
          kv_len_.tensor().rows(0, s),
          tables_.tensor().rows(0, s * width).reshape({s, width}),
          rows_.tensor().rows(0, s),
          x_.tensor().rows(0, s),
          scratch_.view(s),
          selected_.tensor().rows(0, s),
          logits_.tensor().rows(0, s),
          s,
          width * cache_.block_size,
          1};
}

Result<Tensor> DecodeRunner::step(const DecoderBatch& batch) {
  const int64_t s = static_cast<int64_t>(batch.seqs.size());
  if (s == 0 || s > max_seqs_) return invalid_argument("decode batch of " + std::to_string(s) + " sequences (max " +
                                                       std::to_string(max_seqs_) + ")");
  for (const auto& seq : batch.seqs) {
    if (seq.token_ids.size() != 1) return invalid_argument("a decode step takes exactly one token per sequence");
    if (static_cast<int64_t>(seq.block_table.size()) > max_blocks_)
      return invalid_argument("block table longer than the runner's " + std::to_string(max_blocks_) + " blocks");
  }
  PX_ASSIGN_OR_RETURN(StepInputs in, build_step_inputs(batch, cache_.block_size, cache_.num_blocks,
                                                       static_cast<int32_t>(config_.vision.image_token_id)));
  PX_RETURN_IF_ERROR(decoder_.check_tokens(in));
  if (!in.images.empty()) return invalid_argument("a decode step carries no [IMG] tokens");
  return run(std::move(in), s);
}

int64_t DecodeRunner::padded_size(int64_t s) const {
  if (!b_.supports_graphs()) return s;
  const int64_t padded = s <= 8 ? (s <= 1 ? 1 : s <= 2 ? 2 : s <= 4 ? 4 : 8) : (s + 7) / 8 * 8;
  return std::min(padded, max_seqs_);
}

// Pads the step to its graph size (repeating the last sequence's row), uploads it and runs or
// replays the graph; returns the first num_seqs rows of logits.
Result<Tensor> DecodeRunner::run(StepInputs in, int64_t real) {
  const int64_t s = padded_size(real);
  for (int64_t i = real; i < s; ++i) {
    in.token_ids.push_back(in.token_ids.back());
    in.positions.push_back(in.positions.back());
    in.slot_mapping.push_back(in.slot_mapping.back());
    in.q_start.push_back(in.q_start.back() + 1);
    in.kv_len.push_back(in.kv_len.back());
    in.logit_rows.push_back(static_cast<int32_t>(i));
    const std::vector<int32_t> last(in.block_tables.end() - in.max_blocks_per_seq, in.block_tables.end());
    in.block_tables.insert(in.block_tables.end(), last.begin(), last.end());
  }
  const int64_t width = width_for(in.max_blocks_per_seq);
  padded_tables_.assign(static_cast<size_t>(s * width), 0);
  for (int64_t i = 0; i < s; ++i)
    for (int64_t j = 0; j < in.max_blocks_per_seq; ++j)
      padded_tables_[i * width + j] = in.block_tables[i * in.max_blocks_per_seq + j];
  const StepTensors t = tensors_for(s, width);
  b_.upload(in.token_ids.data(), base::DType::kI32, t.ids);
  b_.upload(in.positions.data(), base::DType::kI32, t.positions);
  b_.upload(in.slot_mapping.data(), base::DType::kI32, t.slots);
  b_.upload(in.q_start.data(), base::DType::kI32, t.q_start);
  b_.upload(in.kv_len.data(), base::DType::kI32, t.kv_len);
  b_.upload(in.logit_rows.data(), base::DType::kI32, t.logit_rows);
  b_.upload(padded_tables_.data(), base::DType::kI32, t.block_tables);
  if (!b_.supports_graphs()) {
    decoder_.compute(b_, t, {}, cache_);
    return t.logits;
  }
  auto& graph = graphs_[{s, width}];
  if (!graph) {
    decoder_.compute(b_, t, {}, cache_);  // warm-up: plans and lazy initialisation happen outside capture
    b_.synchronize();
    b_.begin_capture();
    decoder_.compute(b_, t, {}, cache_);
    graph = b_.end_capture();
    PX_CHECK_MSG(graph != nullptr, "graph capture failed");
  }
  graph->replay();
  return t.logits.rows(0, real);
}

void DecodeRunner::capture_graphs(int64_t max_width) {
  if (!b_.supports_graphs()) return;
  for (int64_t width = width_for(1);; width = width_for(2 * width)) {
    for (int64_t s = 1;; s = padded_size(s + 1)) {
      DecoderBatch batch;
      for (int64_t i = 0; i < s; ++i)
        batch.seqs.push_back({.token_ids = {0}, .start_pos = 0, .block_table = std::vector<int32_t>(width, 0)});
      PX_CHECK_MSG(step(batch).is_ok(), "graph warm-up step failed");
      if (s >= max_seqs_) break;
    }
    if (width >= std::min(max_width, max_blocks_)) break;
  }
  b_.synchronize();
}

}  // namespace pixtral::model
