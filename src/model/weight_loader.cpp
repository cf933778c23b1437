#include "model/weight_loader.h"

#include <cmath>
#include <vector>

namespace pixtral::model {
namespace {

using backend::Backend;
using backend::Shape;

// Where one canonical tensor goes: the buffer and, for fused buffers (q/k/v, gate/up), the row offset.
struct Destination {
  TensorBuffer* buffer;
  int64_t row_offset = 0;
};

TensorBuffer alloc_weight(Backend& backend, Shape shape) { return backend.alloc(backend.weight_dtype(), shape); }

void alloc_layer(Backend& b, DecoderLayerWeights& l, int64_t d, int64_t h, int64_t hkv, int64_t hd, int64_t f) {
  l.attention_norm = alloc_weight(b, {d});
  l.wqkv = alloc_weight(b, {(h + 2 * hkv) * hd, d});
  l.q_rows = h * hd;
  l.kv_rows = hkv * hd;
  l.wo = alloc_weight(b, {d, h * hd});
  l.ffn_norm = alloc_weight(b, {d});
  l.w_gate_up = alloc_weight(b, {2 * f, d});
  l.w_down = alloc_weight(b, {d, f});
}

void add_layer_destinations(std::vector<std::pair<std::string, Destination>>& out, const std::string& prefix,
                            DecoderLayerWeights& l, int64_t f) {
  out.push_back({prefix + "attention_norm.weight", {&l.attention_norm}});
  out.push_back({prefix + "attention.wq.weight", {&l.wqkv, 0}});
  out.push_back({prefix + "attention.wk.weight", {&l.wqkv, l.q_rows}});
  out.push_back({prefix + "attention.wv.weight", {&l.wqkv, l.q_rows + l.kv_rows}});
  out.push_back({prefix + "attention.wo.weight", {&l.wo}});
  out.push_back({prefix + "ffn_norm.weight", {&l.ffn_norm}});
  out.push_back({prefix + "feed_forward.w1.weight", {&l.w_gate_up, 0}});
  out.push_back({prefix + "feed_forward.w3.weight", {&l.w_gate_up, f}});
  out.push_back({prefix + "feed_forward.w2.weight", {&l.w_down}});
}

// Allocates every buffer of `w` and lists the canonical name -> buffer mapping.
std::vector<std::pair<std::string, Destination>> allocate(const io::ModelConfig& config, Backend& b,
                                                          PixtralWeights& w) {
  std::vector<std::pair<std::string, Destination>> dest;
  const auto& t = config.text;
  w.decoder.tok_embeddings = alloc_weight(b, {t.vocab_size, t.hidden_dim});
  w.decoder.norm = alloc_weight(b, {t.hidden_dim});
  w.decoder.output = alloc_weight(b, {t.vocab_size, t.hidden_dim});
  dest.push_back({"tok_embeddings.weight", {&w.decoder.tok_embeddings}});
  dest.push_back({"norm.weight", {&w.decoder.norm}});
  dest.push_back({"output.weight", {&w.decoder.output}});
  w.decoder.layers.resize(static_cast<size_t>(t.num_layers));
  for (int64_t i = 0; i < t.num_layers; ++i) {
    auto& l = w.decoder.layers[i];
    alloc_layer(b, l, t.hidden_dim, t.num_heads, t.num_kv_heads, t.head_dim, t.ffn_dim);
    add_layer_destinations(dest, "layers." + std::to_string(i) + ".", l, t.ffn_dim);
  }
  if (!config.has_vision) return dest;
  const auto& v = config.vision;
  const int64_t patch_elems = v.num_channels * v.patch_size * v.patch_size;
  w.vision.patch_conv = alloc_weight(b, {v.hidden_dim, patch_elems});
  w.vision.ln_pre = alloc_weight(b, {v.hidden_dim});
  dest.push_back({"vision_encoder.patch_conv.weight", {&w.vision.patch_conv}});
  dest.push_back({"vision_encoder.ln_pre.weight", {&w.vision.ln_pre}});
  w.vision.layers.resize(static_cast<size_t>(v.num_layers));
  for (int64_t j = 0; j < v.num_layers; ++j) {
    auto& l = w.vision.layers[j];
    alloc_layer(b, l, v.hidden_dim, v.num_heads, v.num_heads, v.head_dim, v.ffn_dim);
    add_layer_destinations(dest, "vision_encoder.transformer.layers." + std::to_string(j) + ".", l, v.ffn_dim);
  }
  w.adapter.w_in = alloc_weight(b, {t.hidden_dim, v.hidden_dim});
  w.adapter.b_in = alloc_weight(b, {t.hidden_dim});
  w.adapter.w_out = alloc_weight(b, {t.hidden_dim, t.hidden_dim});
  w.adapter.b_out = alloc_weight(b, {t.hidden_dim});
  dest.push_back({"vision_language_adapter.w_in.weight", {&w.adapter.w_in}});
  dest.push_back({"vision_language_adapter.w_in.bias", {&w.adapter.b_in}});
  dest.push_back({"vision_language_adapter.w_out.weight", {&w.adapter.w_out}});
  dest.push_back({"vision_language_adapter.w_out.bias", {&w.adapter.b_out}});
  return dest;
}

// Uploads `rows` x `cols` host floats into the buffer at row `row_offset`.
void upload_rows(Backend& b, const Destination& d, const float* host, int64_t rows) {
  const backend::Tensor& t = d.buffer->tensor();
  const backend::Tensor target = t.shape.rank == 1 ? t : t.rows(d.row_offset, d.row_offset + rows);
  b.upload(host, base::DType::kF32, target);
}

}  // namespace

Result<PixtralWeights> load_weights(const std::string& dir, const io::ModelConfig& config, Backend& backend) {
  PX_ASSIGN_OR_RETURN(auto files, io::CheckpointFiles::open_dir(dir));
  PX_ASSIGN_OR_RETURN(io::BoundWeights bound, io::BoundWeights::bind(*files, config));
  PixtralWeights w;
  std::vector<float> host;
  for (auto& [name, dest] : allocate(config, backend, w)) {
    const io::TensorView& view = bound.view(name);
    host.resize(static_cast<size_t>(view.numel()));
    bound.read_f32(name, host.data());
    upload_rows(backend, dest, host.data(), view.shape.empty() ? 1 : view.shape[0]);
  }
  backend.synchronize();
  return w;
}

PixtralWeights random_weights(const io::ModelConfig& config, Backend& backend, uint64_t seed) {
  PixtralWeights w;
  uint64_t tensor_seed = seed;
  for (auto& [name, dest] : allocate(config, backend, w)) {
    if (dest.row_offset != 0) continue;  // fused buffers (q/k/v, gate/up: one fan-in) are filled once, whole
    const auto& t = dest.buffer->tensor();
    const bool is_vector = t.shape.rank == 1;
    const bool is_norm = name.find("norm") != std::string::npos || name.find("ln_pre") != std::string::npos;
    const float fan_in = is_vector ? 1.0f : static_cast<float>(t.dim(1));
    backend.fill_random(t, base::splitmix64(++tensor_seed), is_norm ? 1.0f : 0.0f,
                        is_vector ? 0.1f : 1.0f / std::sqrt(fan_in));
  }
  backend.synchronize();
  return w;
}

}  // namespace pixtral::model
