// params.json (mistral) and config.json (HF Llava / Mistral) -> ModelConfig.
// ref: spec/model.md §1.2 (params.json keys and defaults), §2.1 (config.json), §10 (family keys)
#include "io/model_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace pixtral::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Typed access to the keys of one JSON object; every error names the file and the dotted key.
class Keys {
 public:
  Keys(const std::string& file, const json& obj, std::string prefix)
      : file_(file), obj_(obj), prefix_(std::move(prefix)) {}

  std::string where(const std::string& key) const { return file_ + ": key '" + prefix_ + key + "'"; }
  // Present and not null (null means "use the default" for optional keys).
  bool has(const std::string& key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }
  const json& at(const std::string& key) const { return obj_.at(key); }  // only after has(key)
  Keys sub(const std::string& key) const { return Keys(file_, obj_.at(key), prefix_ + key + "."); }

  Status missing(const std::string& key) const { return not_found(where(key) + " is required but missing"); }
  Status wrong_type(const std::string& key, const char* want) const {
    return invalid_argument(where(key) + ": expected " + want + ", got " + dump(key));
  }
  Status refuse(const std::string& key, const std::string& why) const {
    return unimplemented(where(key) + " = " + dump(key) + ": " + why);
  }
  // The value as JSON text (cut short: messages stay one line).
  std::string dump(const std::string& key) const {
    if (!obj_.is_object() || !obj_.contains(key)) return "(absent)";
    std::string s = obj_.at(key).dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  }

  Status get_int(const std::string& key, int64_t* out, bool required) const {
    if (!has(key)) return required ? missing(key) : Status::ok();
    const json& v = obj_.at(key);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX)) {
      return wrong_type(key, "an integer");
    }
    *out = v.get<int64_t>();
    return Status::ok();
  }
  // A size: an integer > 0.
  Status get_size(const std::string& key, int64_t* out, bool required) const {
    PX_RETURN_IF_ERROR(get_int(key, out, required));
    if (has(key) && *out <= 0) return invalid_argument(where(key) + " = " + std::to_string(*out) + ": must be > 0");
    return Status::ok();
  }
  Status get_double(const std::string& key, double* out, bool required) const {
    if (!has(key)) return required ? missing(key) : Status::ok();
    if (!obj_.at(key).is_number()) return wrong_type(key, "a number");
    *out = obj_.at(key).get<double>();
    return Status::ok();
  }
  Status get_positive(const std::string& key, double* out, bool required) const {
    PX_RETURN_IF_ERROR(get_double(key, out, required));
    if (has(key) && !(*out > 0)) return invalid_argument(where(key) + " = " + obj_.at(key).dump() + ": must be > 0");
    return Status::ok();
  }
  Status get_bool(const std::string& key, bool* out) const {
    if (!has(key)) return Status::ok();
    if (!obj_.at(key).is_boolean()) return wrong_type(key, "a boolean");
    *out = obj_.at(key).get<bool>();
    return Status::ok();
  }
  Status get_string(const std::string& key, std::string* out) const {
    if (!has(key)) return Status::ok();
    if (!obj_.at(key).is_string()) return wrong_type(key, "a string");
    *out = obj_.at(key).get<std::string>();
    return Status::ok();
  }
  Status get_object(const std::string& key) const {
    if (!has(key)) return missing(key);
    if (!obj_.at(key).is_object()) return wrong_type(key, "an object");
    return Status::ok();
  }
  // Keys for options of sibling models (spec §10) that this build does not implement.
  Status refuse_if_present(const std::string& key, const std::string& why) const {
    return has(key) ? refuse(key, why) : Status::ok();
  }

 private:
  const std::string& file_;
  const json& obj_;
  std::string prefix_;
};

// Consistency shared by both dialects: GQA grouping, divisibility.
Status check_text(const Keys& k, const TextConfig& t, const char* heads_key, const char* kv_key) {
  if (t.num_heads % t.num_kv_heads != 0) {
    return invalid_argument(k.where(heads_key) + " = " + std::to_string(t.num_heads) + " is not a multiple of " +
                            k.where(kv_key) + " = " + std::to_string(t.num_kv_heads));
  }
  if (t.head_dim % 2 != 0) return invalid_argument(k.where("head_dim") + ": RoPE needs an even head_dim");
  return Status::ok();
}

// head_dim when the file does not give it: hidden / heads, which must divide.
Status derive_head_dim(const Keys& k, const char* hidden_key, int64_t hidden, const char* heads_key, int64_t heads,
                       int64_t* head_dim) {
  if (*head_dim > 0) return Status::ok();
  if (hidden % heads != 0) {
    return invalid_argument(k.where("head_dim") + " is absent and " + k.where(hidden_key) + " = " +
                            std::to_string(hidden) + " is not divisible by " + heads_key + " = " +
                            std::to_string(heads));
  }
  *head_dim = hidden / heads;
  return Status::ok();
}

Status check_vision(const Keys& k, const VisionConfig& v) {
  if (v.head_dim % 4 != 0) return invalid_argument(k.where("head_dim") + ": 2D RoPE needs head_dim % 4 == 0");
  if (v.image_size % v.patch_size != 0) {
    return invalid_argument(k.where("image_size") + " = " + std::to_string(v.image_size) +
                            " is not a multiple of patch_size " + std::to_string(v.patch_size));
  }
  return Status::ok();
}

// ---- params.json ------------------------------------------------------------------------------

Status parse_params_vision(const Keys& k, VisionConfig* v) {
  PX_RETURN_IF_ERROR(k.get_size("hidden_size", &v->hidden_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("num_channels", &v->num_channels, true));
  PX_RETURN_IF_ERROR(k.get_size("image_size", &v->image_size, true));
  PX_RETURN_IF_ERROR(k.get_size("patch_size", &v->patch_size, true));
  PX_RETURN_IF_ERROR(k.get_positive("rope_theta", &v->rope_theta, true));
  PX_RETURN_IF_ERROR(k.get_size("intermediate_size", &v->ffn_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("num_hidden_layers", &v->num_layers, true));
  PX_RETURN_IF_ERROR(k.get_size("num_attention_heads", &v->num_heads, true));
  PX_RETURN_IF_ERROR(k.get_size("head_dim", &v->head_dim, false));
  PX_RETURN_IF_ERROR(derive_head_dim(k, "hidden_size", v->hidden_dim, "num_attention_heads", v->num_heads,
                                     &v->head_dim));
  PX_RETURN_IF_ERROR(k.get_int("image_token_id", &v->image_token_id, false));
  PX_RETURN_IF_ERROR(k.get_int("image_break_token_id", &v->image_break_token_id, false));
  PX_RETURN_IF_ERROR(k.get_int("image_end_token_id", &v->image_end_token_id, false));
  PX_RETURN_IF_ERROR(k.get_bool("adapter_bias", &v->adapter_bias));
  PX_RETURN_IF_ERROR(k.get_size("spatial_merge_size", &v->spatial_merge_size, false));
  PX_RETURN_IF_ERROR(k.get_string("mm_projector_id", &v->mm_projector_id));
  PX_RETURN_IF_ERROR(k.get_bool("add_pre_mm_projector_layer_norm", &v->add_pre_mm_projector_layer_norm));
  PX_RETURN_IF_ERROR(k.get_size("max_image_size", &v->max_image_size, false));
  // Options of the sibling models (spec §10): valid, but not implemented by this build.
  if (v->spatial_merge_size != 1) return k.refuse("spatial_merge_size", "only 1 (no patch merging) is supported");
  if (!v->mm_projector_id.empty()) return k.refuse("mm_projector_id", "only \"\" (no patch merger) is supported");
  if (v->add_pre_mm_projector_layer_norm) {
    return k.refuse("add_pre_mm_projector_layer_norm", "the pre-projector norm is not supported");
  }
  if (!v->adapter_bias) return k.refuse("adapter_bias", "an adapter without biases is not supported");
  return check_vision(k, *v);
}

Status parse_params(const Keys& k, ModelConfig* c) {
  c->layout = CheckpointLayout::kMistral;
  TextConfig& t = c->text;
  PX_RETURN_IF_ERROR(k.get_size("dim", &t.hidden_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("n_layers", &t.num_layers, true));
  PX_RETURN_IF_ERROR(k.get_size("hidden_dim", &t.ffn_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("n_heads", &t.num_heads, true));
  PX_RETURN_IF_ERROR(k.get_size("vocab_size", &t.vocab_size, true));
  PX_RETURN_IF_ERROR(k.get_positive("norm_eps", &t.norm_eps, true));
  PX_RETURN_IF_ERROR(k.get_size("head_dim", &t.head_dim, false));
  PX_RETURN_IF_ERROR(derive_head_dim(k, "dim", t.hidden_dim, "n_heads", t.num_heads, &t.head_dim));
  t.num_kv_heads = t.num_heads;  // mistral-inference: n_kv_heads absent => no GQA
  PX_RETURN_IF_ERROR(k.get_size("n_kv_heads", &t.num_kv_heads, false));
  t.rope_theta = 1e6;  // mistral-inference: `self.args.rope_theta or 1000000.0` (Pixtral gives 1e9)
  PX_RETURN_IF_ERROR(k.get_positive("rope_theta", &t.rope_theta, false));
  t.max_position_embeddings = 128000;  // mistral-inference precomputes RoPE for 128_000 positions
  PX_RETURN_IF_ERROR(k.get_size("max_seq_len", &t.max_position_embeddings, false));
  PX_RETURN_IF_ERROR(k.get_bool("tied_embeddings", &t.tied_embeddings));
  PX_RETURN_IF_ERROR(check_text(k, t, "n_heads", "n_kv_heads"));

  if (t.tied_embeddings) return k.refuse("tied_embeddings", "tied input/output embeddings are not supported yet");
  PX_RETURN_IF_ERROR(k.refuse_if_present("sliding_window", "sliding-window attention is not supported"));
  std::string model_type = "transformer";
  PX_RETURN_IF_ERROR(k.get_string("model_type", &model_type));
  if (model_type != "transformer") return k.refuse("model_type", "only \"transformer\" is supported");
  for (const char* key : {"moe", "lora", "yarn", "llama_4_scaling", "quantization"}) {
    PX_RETURN_IF_ERROR(k.refuse_if_present(key, std::string("'") + key + "' is not supported"));
  }
  c->has_vision = k.has("vision_encoder");
  if (!c->has_vision) return Status::ok();
  PX_RETURN_IF_ERROR(k.get_object("vision_encoder"));
  return parse_params_vision(k.sub("vision_encoder"), &c->vision);
}

// ---- config.json ------------------------------------------------------------------------------

// rope_theta, or (transformers >= 5) rope_parameters {rope_type: "default", rope_theta}.
// The vision config of transformers >= 5.17 says rope_type "axial": its 2D RoPE rewritten as axial
// (row, column) RoPE, numerically the same as before (spec/model.md §9.2), so it is accepted there.
Status parse_hf_rope(const Keys& k, double* theta, bool required, bool is_vision = false) {
  PX_RETURN_IF_ERROR(k.refuse_if_present("rope_scaling", "RoPE scaling is not supported"));
  if (k.has("rope_parameters")) {
    PX_RETURN_IF_ERROR(k.get_object("rope_parameters"));
    const Keys rp = k.sub("rope_parameters");
    std::string type = "default";
    PX_RETURN_IF_ERROR(rp.get_string("rope_type", &type));
    if (type != "default" && !(is_vision && type == "axial"))
      return rp.refuse("rope_type", is_vision ? "only \"default\" or \"axial\" 2D RoPE is supported"
                                              : "only \"default\" RoPE is supported");
    return rp.get_positive("rope_theta", theta, true);
  }
  return k.get_positive("rope_theta", theta, required);
}

Status parse_hf_text(const Keys& k, TextConfig* t) {
  PX_RETURN_IF_ERROR(k.get_size("hidden_size", &t->hidden_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("num_hidden_layers", &t->num_layers, true));
  PX_RETURN_IF_ERROR(k.get_size("num_attention_heads", &t->num_heads, true));
  PX_RETURN_IF_ERROR(k.get_size("num_key_value_heads", &t->num_kv_heads, true));
  PX_RETURN_IF_ERROR(k.get_size("head_dim", &t->head_dim, false));
  PX_RETURN_IF_ERROR(derive_head_dim(k, "hidden_size", t->hidden_dim, "num_attention_heads", t->num_heads,
                                     &t->head_dim));
  PX_RETURN_IF_ERROR(k.get_size("intermediate_size", &t->ffn_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("vocab_size", &t->vocab_size, true));
  PX_RETURN_IF_ERROR(k.get_positive("rms_norm_eps", &t->norm_eps, true));
  PX_RETURN_IF_ERROR(parse_hf_rope(k, &t->rope_theta, true));
  PX_RETURN_IF_ERROR(k.get_size("max_position_embeddings", &t->max_position_embeddings, false));
  PX_RETURN_IF_ERROR(k.get_bool("tie_word_embeddings", &t->tied_embeddings));
  PX_RETURN_IF_ERROR(check_text(k, *t, "num_attention_heads", "num_key_value_heads"));
  if (t->tied_embeddings) return k.refuse("tie_word_embeddings", "tied input/output embeddings are not supported yet");
  PX_RETURN_IF_ERROR(k.refuse_if_present("sliding_window", "sliding-window attention is not supported"));
  std::string act = "silu";
  PX_RETURN_IF_ERROR(k.get_string("hidden_act", &act));
  if (act != "silu") return k.refuse("hidden_act", "the decoder MLP is SwiGLU; only \"silu\" is supported");
  return Status::ok();
}

Status parse_hf_vision(const Keys& k, VisionConfig* v) {
  PX_RETURN_IF_ERROR(k.get_size("hidden_size", &v->hidden_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("intermediate_size", &v->ffn_dim, true));
  PX_RETURN_IF_ERROR(k.get_size("num_hidden_layers", &v->num_layers, true));
  PX_RETURN_IF_ERROR(k.get_size("num_attention_heads", &v->num_heads, true));
  PX_RETURN_IF_ERROR(k.get_size("head_dim", &v->head_dim, false));
  PX_RETURN_IF_ERROR(derive_head_dim(k, "hidden_size", v->hidden_dim, "num_attention_heads", v->num_heads,
                                     &v->head_dim));
  PX_RETURN_IF_ERROR(k.get_size("num_channels", &v->num_channels, false));
  PX_RETURN_IF_ERROR(k.get_size("image_size", &v->image_size, true));
  PX_RETURN_IF_ERROR(k.get_size("patch_size", &v->patch_size, true));
  v->rope_theta = 10000.0;  // PixtralVisionConfig default, the Pixtral value
  PX_RETURN_IF_ERROR(parse_hf_rope(k, &v->rope_theta, false, /*is_vision=*/true));
  // spec §2.1: Pixtral's vision MLP is SiLU; an absent hidden_act means SiLU here (HF's own
  // default "gelu" would be wrong), and an explicit "gelu" is refused rather than run.
  PX_RETURN_IF_ERROR(k.get_string("hidden_act", &v->hidden_act));
  if (v->hidden_act != "silu") {
    return k.refuse("hidden_act", "Pixtral's vision encoder uses SiLU (SwiGLU MLP, spec §2.1); other activations "
                                  "are not implemented");
  }
  return check_vision(k, *v);
}

// Llava keys outside text_config/vision_config that affect the vision path.
Status parse_hf_llava_top(const Keys& k, VisionConfig* v) {
  PX_RETURN_IF_ERROR(k.get_int("image_token_index", &v->image_token_id, false));
  PX_RETURN_IF_ERROR(k.get_string("projector_hidden_act", &v->projector_hidden_act));
  if (v->projector_hidden_act != "gelu") return k.refuse("projector_hidden_act", "only \"gelu\" (erf) is supported");
  PX_RETURN_IF_ERROR(k.get_bool("multimodal_projector_bias", &v->adapter_bias));
  if (!v->adapter_bias) return k.refuse("multimodal_projector_bias", "an adapter without biases is not supported");
  PX_RETURN_IF_ERROR(k.get_size("spatial_merge_size", &v->spatial_merge_size, false));
  if (v->spatial_merge_size != 1) return k.refuse("spatial_merge_size", "only 1 (no patch merging) is supported");
  if (k.has("vision_feature_layer") && !(k.at("vision_feature_layer").is_number_integer() &&
                                         k.at("vision_feature_layer").get<int64_t>() == -1)) {
    return k.refuse("vision_feature_layer", "only -1 (the last layer) is supported");
  }
  std::string strategy = "full";  // absent: Pixtral's value (Llava's own default "default" drops a patch)
  PX_RETURN_IF_ERROR(k.get_string("vision_feature_select_strategy", &strategy));
  if (strategy != "full") return k.refuse("vision_feature_select_strategy", "only \"full\" is supported");
  return Status::ok();
}

Status parse_config_json(const Keys& k, ModelConfig* c) {
  c->layout = CheckpointLayout::kHf;
  if (!k.has("text_config")) {  // a text-only HF model: the decoder keys are at the top level
    std::string model_type;
    PX_RETURN_IF_ERROR(k.get_string("model_type", &model_type));
    if (model_type != "mistral") {
      return k.has("model_type") ? k.refuse("model_type", "without text_config only \"mistral\" is supported")
                                 : k.missing("text_config");
    }
    c->has_vision = false;
    return parse_hf_text(k, &c->text);
  }
  PX_RETURN_IF_ERROR(k.get_object("text_config"));
  PX_RETURN_IF_ERROR(parse_hf_text(k.sub("text_config"), &c->text));
  c->has_vision = k.has("vision_config");
  if (!c->has_vision) return Status::ok();
  PX_RETURN_IF_ERROR(k.get_object("vision_config"));
  PX_RETURN_IF_ERROR(parse_hf_vision(k.sub("vision_config"), &c->vision));
  return parse_hf_llava_top(k, &c->vision);
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& file_name) {
  const std::string base = fs::path(file_name).filename().string();
  if (base != "params.json" && base != "config.json") {
    return invalid_argument(file_name + ": expected a file named params.json or config.json");
  }
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    return invalid_argument(file_name + ": not well-formed JSON: " + e.what());
  }
  if (!root.is_object()) return invalid_argument(file_name + ": expected a JSON object, got " + root.type_name());
  ModelConfig config;
  config.source_file = file_name;
  const Keys keys(file_name, root, "");
  PX_RETURN_IF_ERROR(base == "params.json" ? parse_params(keys, &config) : parse_config_json(keys, &config));
  return config;
}

Result<ModelConfig> load_model_config(const std::string& dir) {
  std::error_code ec;
  fs::path path = fs::path(dir) / "params.json";
  if (!fs::is_regular_file(path, ec)) path = fs::path(dir) / "config.json";
  if (!fs::is_regular_file(path, ec)) return not_found(dir + ": no params.json or config.json");
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path.string());
}

std::string pixtral_12b_params_json() {
  // ref: spec/model.md §1.2 (Pixtral-12B-2409 params.json)
  return R"({
  "dim": 5120,
  "n_layers": 40,
  "head_dim": 128,
  "hidden_dim": 14336,
  "n_heads": 32,
  "n_kv_heads": 8,
  "rope_theta": 1000000000.0,
  "norm_eps": 1e-05,
  "vocab_size": 131072,
  "vision_encoder": {
    "hidden_size": 1024,
    "num_channels": 3,
    "image_size": 1024,
    "patch_size": 16,
    "rope_theta": 10000.0,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_token_id": 10,
    "image_break_token_id": 12,
    "image_end_token_id": 13
  }
}
)";
}

}  // namespace pixtral::io
