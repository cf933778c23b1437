// params.json / config.json parsing: values, defaults, errors and refused options.
#include "io/model_config.h"

#include <nlohmann/json.hpp>

#include "io_test_util.h"

namespace pixtral::io {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::write_bytes;

json pixtral_params() { return json::parse(pixtral_12b_params_json()); }

// The HF conversion's config.json, as listed in spec/model.md §2.1.
json pixtral_hf_config() {
  return json::parse(R"({
    "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "torch_dtype": "bfloat16",
    "image_token_index": 10, "projector_hidden_act": "gelu", "vision_feature_layer": -1,
    "vision_feature_select_strategy": "full", "image_seq_length": 1, "multimodal_projector_bias": true,
    "text_config": {"model_type": "mistral", "hidden_size": 5120, "head_dim": 128, "intermediate_size": 14336,
      "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
      "rope_theta": 1000000000.0, "max_position_embeddings": 1024000, "sliding_window": null,
      "vocab_size": 131072, "hidden_act": "silu", "tie_word_embeddings": false},
    "vision_config": {"model_type": "pixtral", "hidden_size": 1024, "intermediate_size": 4096,
      "num_hidden_layers": 24, "num_attention_heads": 16, "head_dim": 64, "num_channels": 3,
      "image_size": 1024, "patch_size": 16, "rope_theta": 10000.0, "hidden_act": "silu"}
  })");
}

Result<ModelConfig> parse(const json& j, const std::string& file) { return parse_model_config(j.dump(), file); }

// Expects a failure with `code` whose message contains the file name and every needle.
void expect_error(const json& j, const std::string& file, StatusCode code, const std::vector<std::string>& needles) {
  auto c = parse(j, file);
  ASSERT_FALSE(c.is_ok()) << j.dump();
  EXPECT_EQ(c.status().code(), code) << c.status().to_string();
  EXPECT_NE(c.status().message().find(file), std::string::npos) << c.status().message();
  for (const auto& n : needles) {
    EXPECT_NE(c.status().message().find(n), std::string::npos) << "want '" << n << "' in " << c.status().message();
  }
}

void expect_pixtral_12b(const ModelConfig& c) {
  // ref: spec/model.md §1.2 / §2.1
  EXPECT_EQ(c.text.hidden_dim, 5120);
  EXPECT_EQ(c.text.num_layers, 40);
  EXPECT_EQ(c.text.num_heads, 32);
  EXPECT_EQ(c.text.num_kv_heads, 8);
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.ffn_dim, 14336);
  EXPECT_EQ(c.text.vocab_size, 131072);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 1e9);
  EXPECT_DOUBLE_EQ(c.text.norm_eps, 1e-5);
  EXPECT_FALSE(c.text.tied_embeddings);
  ASSERT_TRUE(c.has_vision);
  EXPECT_EQ(c.vision.hidden_dim, 1024);
  EXPECT_EQ(c.vision.num_layers, 24);
  EXPECT_EQ(c.vision.num_heads, 16);
  EXPECT_EQ(c.vision.head_dim, 64);
  EXPECT_EQ(c.vision.ffn_dim, 4096);
  EXPECT_EQ(c.vision.num_channels, 3);
  EXPECT_EQ(c.vision.image_size, 1024);
  EXPECT_EQ(c.vision.patch_size, 16);
  EXPECT_DOUBLE_EQ(c.vision.rope_theta, 10000.0);
  EXPECT_EQ(c.vision.image_token_id, 10);
  EXPECT_EQ(c.vision.image_break_token_id, 12);
  EXPECT_EQ(c.vision.image_end_token_id, 13);
  EXPECT_EQ(c.vision.hidden_act, "silu");
  EXPECT_EQ(c.vision.projector_hidden_act, "gelu");
  EXPECT_TRUE(c.vision.adapter_bias);
}

TEST(ParamsJson, Pixtral12b) {
  auto c = parse_model_config(pixtral_12b_params_json(), "params.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->layout, CheckpointLayout::kMistral);
  EXPECT_EQ(c->source_file, "params.json");
  EXPECT_EQ(c->text.max_position_embeddings, 128000);
  expect_pixtral_12b(*c);
}

TEST(ParamsJson, DefaultsOfOptionalKeys) {
  json j = pixtral_params();
  for (const char* k : {"head_dim", "n_kv_heads", "rope_theta"}) j.erase(k);
  for (const char* k : {"image_token_id", "image_break_token_id", "image_end_token_id"}) j["vision_encoder"].erase(k);
  j["unknown_future_key"] = {1, 2};
  j["moe"] = nullptr;  // null: same as absent
  j["vision_encoder"]["spatial_merge_size"] = 1;
  j["vision_encoder"]["mm_projector_id"] = "";
  j["vision_encoder"]["max_image_size"] = 1024;
  auto c = parse(j, "params.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->text.head_dim, 5120 / 32);  // dim / n_heads, as mistral-inference
  EXPECT_EQ(c->text.num_kv_heads, 32);     // = n_heads
  EXPECT_DOUBLE_EQ(c->text.rope_theta, 1e6);  // mistral-inference's `rope_theta or 1000000.0`
  EXPECT_EQ(c->vision.image_token_id, 10);
  EXPECT_EQ(c->vision.image_break_token_id, 12);
  EXPECT_EQ(c->vision.image_end_token_id, 13);
  EXPECT_EQ(c->vision.max_image_size, 1024);
}

TEST(ParamsJson, TextOnly) {
  json j = pixtral_params();
  j.erase("vision_encoder");
  j["max_seq_len"] = 4096;
  auto c = parse(j, "params.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_FALSE(c->has_vision);
  EXPECT_EQ(c->text.max_position_embeddings, 4096);
}

TEST(ParamsJson, MissingRequiredKeys) {
  for (const char* key : {"dim", "n_layers", "hidden_dim", "n_heads", "vocab_size", "norm_eps"}) {
    json j = pixtral_params();
    j.erase(key);
    expect_error(j, "params.json", StatusCode::kNotFound, {std::string("'") + key + "'", "missing"});
  }
  for (const char* key : {"hidden_size", "num_channels", "image_size", "patch_size", "rope_theta",
                          "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    json j = pixtral_params();
    j["vision_encoder"].erase(key);
    expect_error(j, "params.json", StatusCode::kNotFound, {std::string("'vision_encoder.") + key + "'"});
  }
}

TEST(ParamsJson, WrongTypesAndBadSizes) {
  json j = pixtral_params();
  j["dim"] = "5120";
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'dim'", "integer"});
  j = pixtral_params();
  j["norm_eps"] = "small";
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'norm_eps'", "number"});
  j = pixtral_params();
  j["vision_encoder"]["adapter_bias"] = 1;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'vision_encoder.adapter_bias'", "boolean"});
  j = pixtral_params();
  j["vision_encoder"] = 3;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'vision_encoder'", "object"});
  j = pixtral_params();
  j["n_layers"] = 0;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'n_layers'", "> 0"});
  j = pixtral_params();
  j["vision_encoder"]["patch_size"] = -16;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'vision_encoder.patch_size'", "> 0"});
  j = pixtral_params();
  j["rope_theta"] = 0.0;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'rope_theta'"});
}

TEST(ParamsJson, InconsistentSizes) {
  json j = pixtral_params();
  j["n_kv_heads"] = 7;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'n_heads'", "'n_kv_heads'"});
  j = pixtral_params();
  j.erase("head_dim");
  j["n_heads"] = 3;
  j["n_kv_heads"] = 1;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'head_dim'", "not divisible"});
  j = pixtral_params();
  j["vision_encoder"]["num_attention_heads"] = 5;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'vision_encoder.head_dim'", "not divisible"});
  j = pixtral_params();
  j["vision_encoder"]["image_size"] = 1000;
  expect_error(j, "params.json", StatusCode::kInvalidArgument, {"'vision_encoder.image_size'", "patch_size"});
}

TEST(ParamsJson, UnsupportedOptionsAreRefused) {
  struct Case {
    std::string key;  // dotted
    json value;
  };
  const std::vector<Case> cases = {
      {"vision_encoder.spatial_merge_size", 2}, {"vision_encoder.mm_projector_id", "patch_merge"},
      {"vision_encoder.add_pre_mm_projector_layer_norm", true}, {"vision_encoder.adapter_bias", false},
      {"sliding_window", 4096}, {"tied_embeddings", true}, {"model_type", "mamba"},
      {"moe", {{"num_experts", 8}}}, {"lora", {{"rank", 16}}}, {"yarn", {{"factor", 16}}},
      {"llama_4_scaling", {{"beta", 0.1}}}, {"quantization", {{"qformat_weight", "fp8_e4m3"}}},
  };
  for (const Case& c : cases) {
    json j = pixtral_params();
    const auto dot = c.key.find('.');
    if (dot == std::string::npos) {
      j[c.key] = c.value;
    } else {
      j[c.key.substr(0, dot)][c.key.substr(dot + 1)] = c.value;
    }
    expect_error(j, "params.json", StatusCode::kUnimplemented, {"'" + c.key + "'", c.value.dump()});
  }
}

TEST(ConfigJson, PixtralLlavaLegacyRopeTheta) {
  auto c = parse(pixtral_hf_config(), "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->layout, CheckpointLayout::kHf);
  EXPECT_EQ(c->text.max_position_embeddings, 1024000);
  expect_pixtral_12b(*c);
}

TEST(ConfigJson, RopeParametersAndDefaults) {
  json j = pixtral_hf_config();
  j["text_config"].erase("rope_theta");
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e9}};
  j["vision_config"].erase("rope_theta");
  // transformers >= 5.17 calls the (unchanged) vision 2D RoPE "axial" (spec §9.2).
  j["vision_config"]["rope_parameters"] = {{"rope_type", "axial"}, {"rope_theta", 5000.0}};
  j["vision_config"].erase("hidden_act");  // absent means SiLU (spec §2.1)
  j["vision_config"].erase("head_dim");    // = 1024 / 16
  j["text_config"].erase("head_dim");      // = 5120 / 32
  j.erase("multimodal_projector_bias");
  auto c = parse(j, "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_DOUBLE_EQ(c->text.rope_theta, 1e9);
  EXPECT_DOUBLE_EQ(c->vision.rope_theta, 5000.0);
  EXPECT_EQ(c->vision.hidden_act, "silu");
  EXPECT_EQ(c->vision.head_dim, 64);
  EXPECT_EQ(c->text.head_dim, 160);
  EXPECT_TRUE(c->vision.adapter_bias);
}

TEST(ConfigJson, TextOnlyMistral) {
  json j = pixtral_hf_config()["text_config"];
  auto c = parse(j, "config.json");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_FALSE(c->has_vision);
  EXPECT_EQ(c->text.num_kv_heads, 8);
  j["model_type"] = "gemma";
  expect_error(j, "config.json", StatusCode::kUnimplemented, {"'model_type'", "gemma"});
  j.erase("model_type");
  expect_error(j, "config.json", StatusCode::kNotFound, {"'text_config'"});
}

TEST(ConfigJson, MissingAndWrongKeys) {
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                          "intermediate_size", "vocab_size", "rms_norm_eps", "rope_theta"}) {
    json j = pixtral_hf_config();
    j["text_config"].erase(key);
    expect_error(j, "config.json", StatusCode::kNotFound, {std::string("'text_config.") + key + "'"});
  }
  json j = pixtral_hf_config();
  j["vision_config"]["num_attention_heads"] = 16.5;
  expect_error(j, "config.json", StatusCode::kInvalidArgument, {"'vision_config.num_attention_heads'", "integer"});
  j = pixtral_hf_config();
  j["text_config"]["num_key_value_heads"] = 5;
  expect_error(j, "config.json", StatusCode::kInvalidArgument, {"'text_config.num_attention_heads'"});
  j = pixtral_hf_config();
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}};
  expect_error(j, "config.json", StatusCode::kNotFound, {"'text_config.rope_parameters.rope_theta'"});
  j = pixtral_hf_config();
  j["text_config"] = "x";
  expect_error(j, "config.json", StatusCode::kInvalidArgument, {"'text_config'", "object"});
}

TEST(ConfigJson, UnsupportedOptionsAreRefused) {
  struct Case {
    std::vector<std::string> path;
    json value;
    std::string why;  // a word of the explanation
  };
  const std::vector<Case> cases = {
      {{"vision_config", "hidden_act"}, "gelu", "SiLU"},
      {{"text_config", "hidden_act"}, "gelu", "silu"},
      {{"text_config", "sliding_window"}, 4096, "sliding"},
      {{"text_config", "tie_word_embeddings"}, true, "tied"},
      {{"text_config", "rope_parameters"}, {{"rope_type", "yarn"}, {"rope_theta", 1e6}}, "default"},
      {{"text_config", "rope_scaling"}, {{"type", "linear"}}, "scaling"},
      {{"text_config", "rope_parameters"}, {{"rope_type", "axial"}, {"rope_theta", 1e9}}, "default"},
      {{"vision_config", "rope_parameters"}, {{"rope_type", "yarn"}, {"rope_theta", 1e4}}, "axial"},
      {{"projector_hidden_act"}, "gelu_pytorch_tanh", "gelu"},
      {{"multimodal_projector_bias"}, false, "bias"},
      {{"spatial_merge_size"}, 2, "merg"},
      {{"vision_feature_layer"}, -2, "-1"},
      {{"vision_feature_layer"}, {-1, -2}, "-1"},
      {{"vision_feature_select_strategy"}, "default", "full"},
  };
  for (const Case& c : cases) {
    json j = pixtral_hf_config();
    json* node = &j;
    for (size_t i = 0; i + 1 < c.path.size(); ++i) node = &(*node)[c.path[i]];
    (*node)[c.path.back()] = c.value;
    std::string key = c.path[0];
    for (size_t i = 1; i < c.path.size(); ++i) key += "." + c.path[i];
    if (key.ends_with(".rope_parameters")) key += ".rope_type";
    expect_error(j, "config.json", StatusCode::kUnimplemented, {"'" + key + "'", c.why});
  }
}

TEST(ModelConfigFiles, LoadFromDirectory) {
  TempDir tmp;
  auto none = load_model_config(tmp.str());
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no params.json or config.json"), std::string::npos);

  write_bytes(tmp.file("config.json"), pixtral_hf_config().dump());
  auto hf = load_model_config(tmp.str());
  ASSERT_TRUE(hf.is_ok()) << hf.status().to_string();
  EXPECT_EQ(hf->layout, CheckpointLayout::kHf);
  EXPECT_EQ(hf->source_file, tmp.file("config.json"));

  write_bytes(tmp.file("params.json"), pixtral_12b_params_json());  // params.json wins
  auto mi = load_model_config(tmp.str());
  ASSERT_TRUE(mi.is_ok()) << mi.status().to_string();
  EXPECT_EQ(mi->layout, CheckpointLayout::kMistral);

  write_bytes(tmp.file("params.json"), "{\"dim\": ");
  auto bad = load_model_config(tmp.str());
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find(tmp.file("params.json")), std::string::npos);
  EXPECT_NE(bad.status().message().find("not well-formed JSON"), std::string::npos);

  write_bytes(tmp.file("params.json"), "[1]");
  EXPECT_FALSE(load_model_config(tmp.str()).is_ok());
  EXPECT_FALSE(parse_model_config("{}", "weights.json").is_ok());  // dialect comes from the name
}

}  // namespace
}  // namespace pixtral::io
