// ModelConfig: the typed hyper-parameters of a Pixtral-family model, read from either
// params.json (mistral layout, spec/model.md §1.2) or config.json (HF Llava layout, §2.1).
#pragma once

#include <cstdint>
#include <string>

#include "pixtral/status.h"

namespace pixtral::io {

enum class CheckpointLayout { kMistral, kHf };

// Decoder (Mistral-NeMo shape for Pixtral-12B).
struct TextConfig {
  int64_t hidden_dim = 0;     // dim: 5120
  int64_t num_layers = 0;     // n_layers: 40
  int64_t num_heads = 0;      // n_heads: 32
  int64_t num_kv_heads = 0;   // n_kv_heads: 8
  int64_t head_dim = 0;       // head_dim: 128 (need not be hidden_dim / num_heads)
  int64_t ffn_dim = 0;        // hidden_dim in params.json: 14336
  int64_t vocab_size = 0;     // 131072
  double rope_theta = 0;      // 1e9 for Pixtral
  double norm_eps = 1e-5;
  int64_t max_position_embeddings = 128000;
  bool tied_embeddings = false;  // unsupported when true (refused at load)
};

// Vision encoder (Pixtral-ViT). Present when has_vision.
struct VisionConfig {
  int64_t hidden_dim = 0;      // hidden_size: 1024
  int64_t num_layers = 0;      // num_hidden_layers: 24
  int64_t num_heads = 0;       // num_attention_heads: 16
  int64_t head_dim = 0;        // hidden_dim / num_heads unless given: 64
  int64_t ffn_dim = 0;         // intermediate_size: 4096
  int64_t num_channels = 3;
  int64_t image_size = 0;      // max side in pixels: 1024
  int64_t patch_size = 0;      // 16
  int64_t max_image_size = 0;  // params.json max_image_size; 0 when absent (then = image_size)
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;      // hard-coded 1e-5 in every reference
  int64_t image_token_id = 10;
  int64_t image_break_token_id = 12;
  int64_t image_end_token_id = 13;
  // Family keys (spec §1.2/§10). Only the Pixtral-12B values are supported by this build:
  int64_t spatial_merge_size = 1;
  std::string mm_projector_id;              // "" (no patch merger)
  bool add_pre_mm_projector_layer_norm = false;
  bool adapter_bias = true;
  std::string hidden_act = "silu";          // vision MLP activation; absent means SiLU
  std::string projector_hidden_act = "gelu";  // adapter activation: exact erf GELU
};

struct ModelConfig {
  CheckpointLayout layout = CheckpointLayout::kMistral;
  TextConfig text;
  bool has_vision = false;
  VisionConfig vision;
  std::string source_file;  // params.json or config.json that was read
};

// Reads params.json or config.json in `dir` (params.json wins when both exist) and validates it:
// a missing required key, a value of the wrong type, a non-positive size, or an option this build
// does not support returns an error naming the file and the key.
Result<ModelConfig> load_model_config(const std::string& dir);
// The same from JSON text already read (`file_name` is used in messages and picks the dialect:
// "params.json" or "config.json").
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& file_name);

// The params.json text of Pixtral-12B-2409 (spec/model.md §1.2), for `--config pixtral-12b` and
// for building full-size inventories without the checkpoint.
std::string pixtral_12b_params_json();

}  // namespace pixtral::io
