#include "cli/tiny_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/dtype.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "io/weight_map.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::cli {
namespace {

using nlohmann::json;
constexpr int64_t kTinyVocab = 1256;  // 1000 special-token slots + 256 bytes

json params_json(const TinyModelOptions& o) {
  json p = {{"dim", o.dim}, {"n_layers", o.layers}, {"head_dim", o.head_dim}, {"hidden_dim", o.ffn},
            {"n_heads", o.heads}, {"n_kv_heads", o.kv_heads}, {"rope_theta", o.rope_theta}, {"norm_eps", 1e-5},
            {"vocab_size", kTinyVocab}};
  if (o.vision_layers > 0)
    p["vision_encoder"] = {{"hidden_size", o.vision_dim}, {"num_channels", 3}, {"image_size", o.image_size},
                           {"patch_size", o.patch_size}, {"rope_theta", 10000.0}, {"intermediate_size", o.vision_ffn},
                           {"num_hidden_layers", o.vision_layers}, {"num_attention_heads", o.vision_heads},
                           {"image_token_id", 10}, {"image_break_token_id", 12}, {"image_end_token_id", 13},
                           {"adapter_bias", true}};
  return p;
}

json hf_config_json(const TinyModelOptions& o) {
  json text = {{"model_type", "mistral"}, {"hidden_size", o.dim}, {"num_hidden_layers", o.layers},
               {"num_attention_heads", o.heads}, {"num_key_value_heads", o.kv_heads}, {"head_dim", o.head_dim},
               {"intermediate_size", o.ffn}, {"vocab_size", kTinyVocab}, {"rms_norm_eps", 1e-5},
               {"rope_theta", o.rope_theta}, {"max_position_embeddings", 131072}, {"sliding_window", nullptr},
               {"hidden_act", "silu"}, {"tie_word_embeddings", false}};
  if (o.vision_layers == 0) {
    text["architectures"] = {"MistralForCausalLM"};
    return text;
  }
  json vision = {{"model_type", "pixtral"}, {"hidden_size", o.vision_dim}, {"intermediate_size", o.vision_ffn},
                 {"num_hidden_layers", o.vision_layers}, {"num_attention_heads", o.vision_heads},
                 {"head_dim", o.vision_dim / o.vision_heads}, {"num_channels", 3}, {"image_size", o.image_size},
                 {"patch_size", o.patch_size}, {"rope_theta", 10000.0}, {"hidden_act", "silu"}};
  return {{"architectures", {"LlavaForConditionalGeneration"}}, {"model_type", "llava"}, {"image_token_index", 10},
          {"projector_hidden_act", "gelu"}, {"vision_feature_layer", -1}, {"vision_feature_select_strategy", "full"},
          {"multimodal_projector_bias", true}, {"text_config", text}, {"vision_config", vision}};
}

// Values of one tensor in mistral row order: norms near 1, biases small, matrices ~ N(0, 1/fan_in).
std::vector<float> random_values(const io::WeightSpec& spec, uint64_t seed) {
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  const bool is_vector = spec.shape.size() == 1;
  const bool is_norm = spec.name.find("norm") != std::string::npos || spec.name.find("ln_pre") != std::string::npos;
  const bool is_embedding = spec.name == "tok_embeddings.weight";
  const float fan_in = is_vector ? 1.0f : static_cast<float>(n / spec.shape[0]);
  const float stddev = is_vector ? 0.1f : (is_embedding ? 1.0f : 1.0f / std::sqrt(fan_in));
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    values[i] = (is_norm ? 1.0f : 0.0f) + stddev * base::counter_normal(seed, static_cast<uint64_t>(i));
  return values;
}

Status write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return io_error(path.string() + ": cannot write");
  return Status::ok();
}

}  // namespace

Status write_tiny_checkpoint(const std::string& dir, const TinyModelOptions& o) {
  if (o.layout != "mistral" && o.layout != "hf") return invalid_argument("--layout must be mistral or hf");
  base::DType dtype;
  if (o.dtype == "bf16") dtype = base::DType::kBF16;
  else if (o.dtype == "f16") dtype = base::DType::kF16;
  else if (o.dtype == "f32") dtype = base::DType::kF32;
  else return invalid_argument("--dtype must be bf16, f16 or f32");
  const bool hf = o.layout == "hf";
  const std::string config_text = hf ? hf_config_json(o).dump(2) : params_json(o).dump(2);
  PX_ASSIGN_OR_RETURN(io::ModelConfig config,
                      io::parse_model_config(config_text, hf ? "config.json" : "params.json"));

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create directory: " + ec.message());
  const std::filesystem::path root(dir);
  io::SafetensorsWriter writer;
  uint64_t tensor_seed = o.seed * 1000003u;
  for (const io::WeightSpec& spec : io::expected_weights(config)) {
    std::vector<float> values = random_values(spec, base::splitmix64(++tensor_seed));
    if (o.visible_output && spec.name == "output.weight")
      std::fill(values.begin() + 3 * o.dim, values.begin() + 1000 * o.dim, 0.0f);  // ids 3..999
    if (spec.num_rope_heads > 0) {  // HF stores q/k rows in rotate-half order (spec/model.md §2.3)
      std::vector<float> permuted(values.size());
      io::permute_rope_rows(values.data(), permuted.data(), spec.num_rope_heads, spec.rope_head_dim,
                            spec.shape.back());
      values.swap(permuted);
    }
    if (dtype == base::DType::kF32) {
      writer.add(spec.stored_name, dtype, spec.shape, values.data(), values.size() * sizeof(float));
    } else {
      std::vector<uint16_t> half(values.size());
      for (size_t i = 0; i < values.size(); ++i)
        half[i] = dtype == base::DType::kBF16 ? base::f32_to_bf16(values[i]) : base::f32_to_f16(values[i]);
      writer.add(spec.stored_name, dtype, spec.shape, half.data(), half.size() * sizeof(uint16_t));
    }
  }
  writer.set_metadata("format", "pt");
  PX_RETURN_IF_ERROR(writer.write((root / (hf ? "model.safetensors" : "consolidated.safetensors")).string()));
  PX_RETURN_IF_ERROR(write_text(root / (hf ? "config.json" : "params.json"), config_text));
  return write_text(root / "tekken.json", tokenizer::make_byte_level_tekken_json());
}

}  // namespace pixtral::cli
