// Weight inventories (spec §1.4, §2.2), the q/k permutation (§2.3), and binding checkpoints.
#include "io/weight_map.h"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "io_test_util.h"

namespace pixtral::io {
namespace {

using testing::TempDir;

ModelConfig pixtral_12b() {
  auto c = parse_model_config(pixtral_12b_params_json(), "params.json");
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.value();
}

int64_t numel(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

TEST(WeightMap, Pixtral12bInventoryIs585TensorsAnd12_68BParams) {
  const ModelConfig config = pixtral_12b();
  for (CheckpointLayout layout : {CheckpointLayout::kMistral, CheckpointLayout::kHf}) {
    ModelConfig c = config;
    c.layout = layout;
    const auto specs = expected_weights(c);
    EXPECT_EQ(specs.size(), 585u);  // ref: spec/model.md §1.4
    int64_t total = 0;
    for (const auto& w : specs) total += numel(w.shape);
    EXPECT_EQ(total, 12'682'739'712);  // ref: spec/model.md §11
  }
}

TEST(WeightMap, MistralNamesAndShapesFollowSpec) {
  const auto specs = expected_weights(pixtral_12b());
  std::map<std::string, std::vector<int64_t>> by_name;
  for (const auto& w : specs) {
    EXPECT_EQ(w.name, w.stored_name);
    EXPECT_EQ(w.num_rope_heads, 0) << "mistral layout is stored in interleaved order: " << w.name;
    EXPECT_TRUE(by_name.emplace(w.name, w.shape).second) << "duplicate " << w.name;
  }
  using S = std::vector<int64_t>;
  EXPECT_EQ(by_name.at("tok_embeddings.weight"), (S{131072, 5120}));
  EXPECT_EQ(by_name.at("output.weight"), (S{131072, 5120}));
  EXPECT_EQ(by_name.at("layers.39.attention.wq.weight"), (S{4096, 5120}));
  EXPECT_EQ(by_name.at("layers.0.attention.wk.weight"), (S{1024, 5120}));
  EXPECT_EQ(by_name.at("layers.7.attention.wo.weight"), (S{5120, 4096}));
  EXPECT_EQ(by_name.at("layers.7.feed_forward.w2.weight"), (S{5120, 14336}));
  EXPECT_EQ(by_name.at("vision_encoder.patch_conv.weight"), (S{1024, 3, 16, 16}));
  EXPECT_EQ(by_name.at("vision_encoder.transformer.layers.23.feed_forward.w1.weight"), (S{4096, 1024}));
  EXPECT_EQ(by_name.at("vision_language_adapter.w_in.weight"), (S{5120, 1024}));
  EXPECT_EQ(by_name.at("vision_language_adapter.w_out.bias"), (S{5120}));
  // Every name is one of the allowed roots of mistral-inference's strict load (spec §1.4).
  const std::vector<std::string> roots = {"tok_embeddings.", "norm.", "output.", "layers.", "vision_encoder.",
                                          "vision_language_adapter."};
  for (const auto& w : specs) {
    EXPECT_TRUE(std::any_of(roots.begin(), roots.end(), [&](const std::string& r) { return w.name.starts_with(r); }))
        << w.name;
  }
}

TEST(WeightMap, HfNamesAndPermutedRows) {
  ModelConfig c = pixtral_12b();
  c.layout = CheckpointLayout::kHf;
  std::map<std::string, WeightSpec> by_name;
  for (const auto& w : expected_weights(c)) by_name[w.name] = w;
  EXPECT_EQ(by_name.at("tok_embeddings.weight").stored_name, "language_model.model.embed_tokens.weight");
  EXPECT_EQ(by_name.at("output.weight").stored_name, "language_model.lm_head.weight");
  const WeightSpec& q = by_name.at("layers.3.attention.wq.weight");
  EXPECT_EQ(q.stored_name, "language_model.model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(q.num_rope_heads, 32);
  EXPECT_EQ(q.rope_head_dim, 128);
  const WeightSpec& k = by_name.at("layers.3.attention.wk.weight");
  EXPECT_EQ(k.num_rope_heads, 8);
  EXPECT_EQ(k.rope_head_dim, 128);
  EXPECT_EQ(by_name.at("layers.3.attention.wv.weight").num_rope_heads, 0);
  const WeightSpec& vq = by_name.at("vision_encoder.transformer.layers.5.attention.wk.weight");
  EXPECT_EQ(vq.stored_name, "vision_tower.transformer.layers.5.attention.k_proj.weight");
  EXPECT_EQ(vq.num_rope_heads, 16);
  EXPECT_EQ(vq.rope_head_dim, 64);
  EXPECT_EQ(by_name.at("vision_language_adapter.w_out.bias").stored_name, "multi_modal_projector.linear_2.bias");
  EXPECT_EQ(by_name.at("layers.0.feed_forward.w1.weight").stored_name,
            "language_model.model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(by_name.at("vision_encoder.transformer.layers.0.feed_forward.w3.weight").stored_name,
            "vision_tower.transformer.layers.0.feed_forward.up_proj.weight");
}

// The torch expression of spec §2.3, written as index arithmetic:
// view(n_heads, hd/2, 2, cols).transpose(1, 2).reshape(n_heads * hd, cols).
std::vector<float> reference_permute(const std::vector<float>& w, int64_t heads, int64_t hd, int64_t cols) {
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)          // dim 1 after the transpose
      for (int64_t i = 0; i < hd / 2; ++i)   // dim 2 after the transpose
        for (int64_t c = 0; c < cols; ++c)
          out[((h * 2 + j) * (hd / 2) + i) * cols + c] = w[((h * (hd / 2) + i) * 2 + j) * cols + c];
  return out;
}

std::vector<float> iota_floats(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(RopePermutation, MatchesSpecFormulaAndRoundTrips) {
  for (auto [heads, hd, cols] : std::vector<std::array<int64_t, 3>>{{1, 2, 1}, {2, 8, 3}, {4, 64, 5}, {8, 128, 2}}) {
    const auto mi = iota_floats(static_cast<size_t>(heads * hd * cols), 0.5f);
    std::vector<float> hf(mi.size()), back(mi.size());
    permute_rope_rows(mi.data(), hf.data(), heads, hd, cols);
    EXPECT_EQ(hf, reference_permute(mi, heads, hd, cols));
    // W_hf[h*hd + j*(hd/2) + i, c] = W_mi[h*hd + 2*i + j, c]
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t c = 0; c < cols; ++c)
            ASSERT_EQ(hf[(h * hd + j * (hd / 2) + i) * cols + c], mi[(h * hd + 2 * i + j) * cols + c]);
    unpermute_rope_rows(hf.data(), back.data(), heads, hd, cols);
    EXPECT_EQ(back, mi);
    if (hd > 2) {
      EXPECT_NE(hf, mi);  // the permutation is not the identity
    }
  }
}

// ---- binding ---------------------------------------------------------------------------------

ModelConfig tiny_config(CheckpointLayout layout, bool vision) {
  nlohmann::json j = {{"dim", 16}, {"n_layers", 2}, {"head_dim", 8}, {"hidden_dim", 24}, {"n_heads", 4},
                      {"n_kv_heads", 2}, {"vocab_size", 32}, {"norm_eps", 1e-5}, {"rope_theta", 1e9}};
  if (vision) {
    j["vision_encoder"] = {{"hidden_size", 8}, {"num_channels", 3}, {"image_size", 16}, {"patch_size", 4},
                           {"rope_theta", 1e4}, {"intermediate_size", 12}, {"num_hidden_layers", 1},
                           {"num_attention_heads", 2}};
  }
  auto c = parse_model_config(j.dump(), "params.json");
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  ModelConfig config = c.value();
  config.layout = layout;
  return config;
}

// Deterministic distinct values per tensor: canonical name -> [numel] floats (mistral row order).
std::map<std::string, std::vector<float>> make_values(const std::vector<WeightSpec>& specs) {
  std::map<std::string, std::vector<float>> values;
  float start = 1.0f;
  for (const auto& w : specs) {
    values[w.name] = iota_floats(static_cast<size_t>(numel(w.shape)), start);
    start += 1000.0f;
  }
  return values;
}

// Writes every spec under its stored name (q/k rows permuted by the reference formula for HF),
// with `rename` applied to the stored names; BF16 for 2-D tensors (readers compare against the
// bf16-rounded values), F32 otherwise.
void write_checkpoint(const std::string& path, const std::vector<WeightSpec>& specs,
                      const std::map<std::string, std::vector<float>>& values,
                      const std::map<std::string, std::string>& rename = {}) {
  SafetensorsWriter w;
  for (const auto& s : specs) {
    std::vector<float> v = values.at(s.name);
    if (s.num_rope_heads > 0) v = reference_permute(v, s.num_rope_heads, s.rope_head_dim, s.shape[1]);
    std::string name = s.stored_name;
    for (const auto& [from, to] : rename) {
      if (name.starts_with(from)) name = to + name.substr(from.size());
    }
    if (s.shape.size() == 2) {
      std::vector<uint16_t> b(v.size());
      for (size_t i = 0; i < v.size(); ++i) b[i] = base::f32_to_bf16(v[i]);
      w.add(name, DType::kBF16, s.shape, b.data(), b.size() * 2);
    } else {
      w.add_f32(name, s.shape, v.data());
    }
  }
  ASSERT_TRUE(w.write(path).is_ok());
}

// Binds `dir` and checks every tensor reads back in mistral order with the written values.
void expect_binds_and_reads(const std::string& dir, const ModelConfig& config,
                            const std::map<std::string, std::vector<float>>& values) {
  auto files = CheckpointFiles::open_dir(dir);
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  auto bound = BoundWeights::bind(**files, config);
  ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
  EXPECT_EQ(bound->specs().size(), values.size());
  for (const auto& w : bound->specs()) {
    std::vector<float> got(static_cast<size_t>(numel(w.shape)));
    bound->read_f32(w.name, got.data());
    std::vector<float> want = values.at(w.name);
    if (w.shape.size() == 2) {
      for (float& x : want) x = base::round_bf16(x);
    }
    ASSERT_EQ(got, want) << w.name;
    EXPECT_EQ(bound->view(w.name).shape, w.shape);
  }
}

TEST(BindWeights, MistralLayout) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kMistral, true);
  const auto specs = expected_weights(c);
  const auto values = make_values(specs);
  write_checkpoint(tmp.file("consolidated.safetensors"), specs, values);
  expect_binds_and_reads(tmp.str(), c, values);
}

TEST(BindWeights, HfLegacyNamesUnpermuteQk) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kHf, true);
  const auto specs = expected_weights(c);
  const auto values = make_values(specs);
  write_checkpoint(tmp.file("model.safetensors"), specs, values);
  expect_binds_and_reads(tmp.str(), c, values);
}

TEST(BindWeights, HfNewNamesUnpermuteQk) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kHf, true);
  const auto specs = expected_weights(c);
  const auto values = make_values(specs);
  write_checkpoint(tmp.file("model.safetensors"), specs, values,
                   {{"language_model.model.", "model.language_model."}, {"language_model.lm_head.", "lm_head."},
                    {"vision_tower.", "model.vision_tower."},
                    {"multi_modal_projector.", "model.multi_modal_projector."}});
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok());
  EXPECT_NE((*files)->find("model.vision_tower.ln_pre.weight"), nullptr);
  expect_binds_and_reads(tmp.str(), c, values);
}

TEST(BindWeights, HfTextOnlyUsesModelPrefix) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kHf, false);
  const auto specs = expected_weights(c);
  EXPECT_EQ(specs.front().stored_name, "model.embed_tokens.weight");
  EXPECT_EQ(specs.back().stored_name, "lm_head.weight");
  const auto values = make_values(specs);
  write_checkpoint(tmp.file("model.safetensors"), specs, values);
  expect_binds_and_reads(tmp.str(), c, values);
}

// Writes the tiny mistral checkpoint with one change and expects bind() to fail naming it.
void expect_bind_error(const std::function<void(SafetensorsWriter*)>& edit, const std::vector<std::string>& needles) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kMistral, true);
  SafetensorsWriter w;
  for (const auto& s : expected_weights(c)) {
    std::vector<float> zeros(static_cast<size_t>(numel(s.shape)));
    w.add_f32(s.name, s.shape, zeros.data());
  }
  edit(&w);
  ASSERT_TRUE(w.write(tmp.file("consolidated.safetensors")).is_ok());
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  auto bound = BoundWeights::bind(**files, c);
  ASSERT_FALSE(bound.is_ok());
  const std::string& msg = bound.status().message();
  EXPECT_NE(msg.find("consolidated.safetensors"), std::string::npos) << msg;
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "want '" << n << "' in " << msg;
}

TEST(BindWeights, Errors) {
  const std::vector<float> xs(256, 0.0f);
  const float* x = xs.data();
  // SafetensorsWriter has no remove: replace a tensor by one of a wrong shape or dtype instead.
  expect_bind_error([&](SafetensorsWriter* w) { w->add_f32("layers.1.attention.wk.weight", {8, 16}, x); },
                    {"tensor 'layers.1.attention.wk.weight'", "shape [8, 16]", "expected [16, 16]"});
  expect_bind_error([&](SafetensorsWriter* w) { w->add_f32("norm.weight", {2, 8}, x); },
                    {"tensor 'norm.weight'", "shape [2, 8]", "expected [16]"});
  expect_bind_error([&](SafetensorsWriter* w) { w->add("norm.weight", DType::kI32, {16}, x, 64); },
                    {"tensor 'norm.weight'", "dtype I32"});
  expect_bind_error([&](SafetensorsWriter* w) { w->add_f32("rope.freqs", {4}, x); },
                    {"unexpected tensor 'rope.freqs'"});
}

TEST(BindWeights, MissingTensor) {
  TempDir tmp;
  const ModelConfig c = tiny_config(CheckpointLayout::kMistral, true);
  SafetensorsWriter w;
  for (const auto& s : expected_weights(c)) {
    if (s.name == "vision_language_adapter.w_in.bias") continue;
    std::vector<float> zeros(static_cast<size_t>(numel(s.shape)));
    w.add_f32(s.name, s.shape, zeros.data());
  }
  ASSERT_TRUE(w.write(tmp.file("consolidated.safetensors")).is_ok());
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok());
  auto bound = BoundWeights::bind(**files, c);
  ASSERT_FALSE(bound.is_ok());
  EXPECT_EQ(bound.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bound.status().message().find("consolidated.safetensors: tensor 'vision_language_adapter.w_in.bias' is "
                                          "missing"),
            std::string::npos)
      << bound.status().message();
}

TEST(BindWeights, WrongLayoutGetsAHint) {
  TempDir tmp;
  const ModelConfig mistral = tiny_config(CheckpointLayout::kMistral, false);
  const auto specs = expected_weights(mistral);
  write_checkpoint(tmp.file("model.safetensors"), specs, make_values(specs));
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok());
  auto bound = BoundWeights::bind(**files, tiny_config(CheckpointLayout::kHf, false));
  ASSERT_FALSE(bound.is_ok());
  EXPECT_NE(bound.status().message().find("mistral (consolidated) names"), std::string::npos)
      << bound.status().message();
}

}  // namespace
}  // namespace pixtral::io
