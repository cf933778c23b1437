// Tensor inventories of both checkpoint layouts, binding, and the q/k RoPE row permutation.
// ref: spec/model.md §1.4 (mistral names, shapes), §2.2 (HF names), §2.3 (permutation)
#include "io/weight_map.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "base/check.h"

namespace pixtral::io {

namespace {

// One weight: canonical (mistral) name, name in an HF Llava checkpoint (legacy spelling), shape,
// and the RoPE head split of q/k rows (0: not permuted).
void add(std::vector<WeightSpec>* out, bool hf, std::string mistral, std::string hf_name, std::vector<int64_t> shape,
         int64_t rope_heads = 0, int64_t rope_head_dim = 0) {
  WeightSpec w;
  w.stored_name = hf ? std::move(hf_name) : mistral;
  w.name = std::move(mistral);
  w.shape = std::move(shape);
  if (hf) {  // only HF stores q/k in rotate-half order
    w.num_rope_heads = rope_heads;
    w.rope_head_dim = rope_head_dim;
  }
  out->push_back(std::move(w));
}

void add_decoder(std::vector<WeightSpec>* out, const TextConfig& t, bool hf, const std::string& hp,
                 const std::string& head) {
  // hp: HF prefix of the decoder ("language_model.model." or "model."); head: lm_head name.
  const int64_t d = t.hidden_dim, q = t.num_heads * t.head_dim, kv = t.num_kv_heads * t.head_dim, f = t.ffn_dim;
  add(out, hf, "tok_embeddings.weight", hp + "embed_tokens.weight", {t.vocab_size, d});
  for (int64_t i = 0; i < t.num_layers; ++i) {
    const std::string m = "layers." + std::to_string(i) + ".";
    const std::string h = hp + "layers." + std::to_string(i) + ".";
    add(out, hf, m + "attention_norm.weight", h + "input_layernorm.weight", {d});
    add(out, hf, m + "attention.wq.weight", h + "self_attn.q_proj.weight", {q, d}, t.num_heads, t.head_dim);
    add(out, hf, m + "attention.wk.weight", h + "self_attn.k_proj.weight", {kv, d}, t.num_kv_heads, t.head_dim);
    add(out, hf, m + "attention.wv.weight", h + "self_attn.v_proj.weight", {kv, d});
    add(out, hf, m + "attention.wo.weight", h + "self_attn.o_proj.weight", {d, q});
    add(out, hf, m + "ffn_norm.weight", h + "post_attention_layernorm.weight", {d});
    add(out, hf, m + "feed_forward.w1.weight", h + "mlp.gate_proj.weight", {f, d});
    add(out, hf, m + "feed_forward.w2.weight", h + "mlp.down_proj.weight", {d, f});
    add(out, hf, m + "feed_forward.w3.weight", h + "mlp.up_proj.weight", {f, d});
  }
  add(out, hf, "norm.weight", hp + "norm.weight", {d});
  add(out, hf, "output.weight", head, {t.vocab_size, d});
}

void add_vision(std::vector<WeightSpec>* out, const VisionConfig& v, int64_t text_dim, bool hf) {
  const int64_t d = v.hidden_dim, a = v.num_heads * v.head_dim, f = v.ffn_dim, p = v.patch_size;
  add(out, hf, "vision_encoder.patch_conv.weight", "vision_tower.patch_conv.weight", {d, v.num_channels, p, p});
  add(out, hf, "vision_encoder.ln_pre.weight", "vision_tower.ln_pre.weight", {d});
  for (int64_t j = 0; j < v.num_layers; ++j) {
    const std::string m = "vision_encoder.transformer.layers." + std::to_string(j) + ".";
    const std::string h = "vision_tower.transformer.layers." + std::to_string(j) + ".";
    add(out, hf, m + "attention_norm.weight", h + "attention_norm.weight", {d});
    add(out, hf, m + "attention.wq.weight", h + "attention.q_proj.weight", {a, d}, v.num_heads, v.head_dim);
    add(out, hf, m + "attention.wk.weight", h + "attention.k_proj.weight", {a, d}, v.num_heads, v.head_dim);
    add(out, hf, m + "attention.wv.weight", h + "attention.v_proj.weight", {a, d});
    add(out, hf, m + "attention.wo.weight", h + "attention.o_proj.weight", {d, a});
    add(out, hf, m + "ffn_norm.weight", h + "ffn_norm.weight", {d});
    add(out, hf, m + "feed_forward.w1.weight", h + "feed_forward.gate_proj.weight", {f, d});
    add(out, hf, m + "feed_forward.w2.weight", h + "feed_forward.down_proj.weight", {d, f});
    add(out, hf, m + "feed_forward.w3.weight", h + "feed_forward.up_proj.weight", {f, d});
  }
  add(out, hf, "vision_language_adapter.w_in.weight", "multi_modal_projector.linear_1.weight", {text_dim, d});
  add(out, hf, "vision_language_adapter.w_in.bias", "multi_modal_projector.linear_1.bias", {text_dim});
  add(out, hf, "vision_language_adapter.w_out.weight", "multi_modal_projector.linear_2.weight", {text_dim, text_dim});
  add(out, hf, "vision_language_adapter.w_out.bias", "multi_modal_projector.linear_2.bias", {text_dim});
}

// Newer transformers spell the Llava names with a "model." root (spec §2.2, runtime renaming).
std::string to_new_hf_name(const std::string& legacy) {
  static const std::array<std::pair<std::string_view, std::string_view>, 4> kRenames = {{
      {"language_model.model.", "model.language_model."},
      {"language_model.lm_head.", "lm_head."},
      {"vision_tower.", "model.vision_tower."},
      {"multi_modal_projector.", "model.multi_modal_projector."},
  }};
  for (const auto& [from, to] : kRenames) {
    if (legacy.starts_with(from)) return std::string(to) + legacy.substr(from.size());
  }
  return legacy;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  TensorView v;
  v.shape = shape;
  return v.shape_string();
}

// When the tensors are spelled in the other layout's names, say so: the config file is the wrong one.
std::string layout_hint(const CheckpointFiles& files, const ModelConfig& config) {
  const bool hf = config.layout == CheckpointLayout::kHf;
  if (hf && files.find("tok_embeddings.weight") != nullptr) {
    return "; the checkpoint uses mistral (consolidated) names, which go with params.json";
  }
  if (!hf && (files.find("model.embed_tokens.weight") != nullptr ||
              files.find("language_model.model.embed_tokens.weight") != nullptr ||
              files.find("model.language_model.embed_tokens.weight") != nullptr)) {
    return "; the checkpoint uses Hugging Face names, which go with config.json";
  }
  return "";
}

}  // namespace

std::vector<WeightSpec> expected_weights(const ModelConfig& config) {
  const bool hf = config.layout == CheckpointLayout::kHf;
  std::vector<WeightSpec> out;
  // HF Llava checkpoints nest the decoder under language_model.*; a text-only HF Mistral uses model.*.
  const bool llava = hf && config.has_vision;
  add_decoder(&out, config.text, hf, llava ? "language_model.model." : "model.",
              llava ? "language_model.lm_head.weight" : "lm_head.weight");
  if (config.has_vision) add_vision(&out, config.vision, config.text.hidden_dim, hf);
  return out;
}

Result<BoundWeights> BoundWeights::bind(const CheckpointFiles& files, const ModelConfig& config) {
  BoundWeights bound;
  bound.specs_ = expected_weights(config);
  if (config.layout == CheckpointLayout::kHf && config.has_vision &&
      files.find("model.language_model.embed_tokens.weight") != nullptr) {
    for (WeightSpec& w : bound.specs_) w.stored_name = to_new_hf_name(w.stored_name);
  }
  std::map<std::string, size_t> by_stored;
  for (size_t i = 0; i < bound.specs_.size(); ++i) {
    const WeightSpec& w = bound.specs_[i];
    bound.index_[w.name] = i;
    by_stored[w.stored_name] = i;
    const TensorView* v = files.find(w.stored_name);
    if (v == nullptr) {
      const std::string where = files.files().size() == 1 ? files.files()[0]->path() : "checkpoint";
      return not_found(where + ": tensor '" + w.stored_name + "' is missing (" + config.source_file + " expects " +
                       std::to_string(bound.specs_.size()) + " tensors)" + layout_hint(files, config));
    }
    if (v->shape != w.shape) {
      return invalid_argument(v->file + ": tensor '" + w.stored_name + "' has shape " + v->shape_string() +
                              ", expected " + shape_str(w.shape) + " from " + config.source_file);
    }
    if (v->dtype != DType::kF32 && v->dtype != DType::kF16 && v->dtype != DType::kBF16) {
      return invalid_argument(v->file + ": tensor '" + w.stored_name + "' has dtype " +
                              std::string(base::dtype_name(v->dtype)) + "; weights must be F32, F16 or BF16");
    }
    bound.views_.push_back(v);
  }
  for (const std::string& name : files.names()) {
    if (by_stored.count(name) == 0) {
      return invalid_argument(files.find(name)->file + ": unexpected tensor '" + name + "' (not part of the model " +
                              "described by " + config.source_file + ")");
    }
  }
  return bound;
}

const TensorView& BoundWeights::view(const std::string& name) const {
  auto it = index_.find(name);
  PX_CHECK_MSG(it != index_.end(), name.c_str());
  return *views_[it->second];
}

const WeightSpec& BoundWeights::spec(const std::string& name) const {
  auto it = index_.find(name);
  PX_CHECK_MSG(it != index_.end(), name.c_str());
  return specs_[it->second];
}

void BoundWeights::read_f32(const std::string& name, float* out) const {
  const WeightSpec& w = spec(name);
  const TensorView& v = view(name);
  const auto n = static_cast<size_t>(v.numel());
  if (w.num_rope_heads == 0) {
    PX_CHECK(base::convert_to_f32(v.dtype, v.data, out, n));
    return;
  }
  std::vector<float> hf(n);  // [rows, cols] in HF rotate-half row order
  PX_CHECK(base::convert_to_f32(v.dtype, v.data, hf.data(), n));
  const int64_t rows = w.num_rope_heads * w.rope_head_dim;
  PX_CHECK(v.shape.size() == 2 && v.shape[0] == rows);
  unpermute_rope_rows(hf.data(), out, w.num_rope_heads, w.rope_head_dim, v.shape[1]);
}

// ref: spec/model.md §2.3: W_hf[h*hd + j*(hd/2) + i, c] = W_mi[h*hd + 2*i + j, c]
void unpermute_rope_rows(const float* hf, float* mistral, int64_t num_heads, int64_t head_dim, int64_t cols) {
  PX_CHECK(head_dim % 2 == 0 && num_heads >= 0 && cols >= 0);
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = hf + (h * head_dim + j * half + i) * cols;
        std::copy(src, src + cols, mistral + (h * head_dim + 2 * i + j) * cols);
      }
    }
  }
}

void permute_rope_rows(const float* mistral, float* hf, int64_t num_heads, int64_t head_dim, int64_t cols) {
  PX_CHECK(head_dim % 2 == 0 && num_heads >= 0 && cols >= 0);
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = mistral + (h * head_dim + 2 * i + j) * cols;
        std::copy(src, src + cols, hf + (h * head_dim + j * half + i) * cols);
      }
    }
  }
}

}  // namespace pixtral::io
