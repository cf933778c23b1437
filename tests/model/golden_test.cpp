// The CPU forward pass against transformers' logits on tiny random models (tests/data/goldens,
// made by tools/make_goldens.py): both checkpoint layouts, fp32 and bf16 weights, text only, one
// and several images, a context spanning many KV blocks; and chunked prefill + decode == one pass.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "golden_util.h"
#include "model/pixtral_model.h"

namespace pixtral::model::testing {
namespace {

constexpr double kMaxRelError = 1e-4;       // issue acceptance: ‖ours − ref‖ / ‖ref‖
constexpr double kMinArgmaxAgree = 0.99;
constexpr double kChunkedVsFull = 1e-5;

backend::Backend& cpu() {
  static std::unique_ptr<backend::Backend> b = backend::make_cpu_backend();
  return *b;
}

const PixtralModel& load(const std::string& dir) {
  backend::Backend& backend = cpu();  // constructed before the cache, so destroyed after it
  static std::map<std::string, std::unique_ptr<PixtralModel>> cache;
  auto& slot = cache[dir];
  if (!slot) {
    auto m = PixtralModel::load(dir, backend);
    if (!m.is_ok()) {
      ADD_FAILURE() << m.status().to_string();
      std::abort();
    }
    slot = std::move(m).value();
  }
  return *slot;
}

class GoldenLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenLogits, MatchesTransformersInBothLayouts) {
  const GoldenCase gc = load_golden_case(GetParam());
  const GoldenModel& gm = golden_model(gc.model);
  std::vector<float> per_layout[2];
  const std::string dirs[2] = {gm.mistral_dir, gm.hf_dir};
  for (int l = 0; l < 2; ++l) {
    const PixtralModel& model = load(dirs[l]);
    auto logits = run_sequence(model, gc.input_ids, gc.images, {});
    ASSERT_TRUE(logits.is_ok()) << logits.status().to_string();
    const Comparison c = compare_logits(*logits, gc.logits, model.config().text.vocab_size);
    std::printf("[golden] %-24s %-7s rel %.3g  max_abs %.3g  argmax %.4f\n", gc.name.c_str(),
                l == 0 ? "mistral" : "hf", c.rel_error, c.max_abs, c.argmax_agree);
    EXPECT_LE(c.rel_error, kMaxRelError) << dirs[l];
    EXPECT_GE(c.argmax_agree, kMinArgmaxAgree) << dirs[l];
    per_layout[l] = std::move(logits).value();
  }
  // The two layouts hold the same model: the same logits up to summation order.
  const Comparison layouts = compare_logits(per_layout[1], per_layout[0], load(dirs[0]).config().text.vocab_size);
  EXPECT_LE(layouts.rel_error, 1e-6);
}

TEST_P(GoldenLogits, ChunkedPrefillAndDecodeEqualOnePass) {
  const GoldenCase gc = load_golden_case(GetParam());
  const PixtralModel& model = load(golden_model(gc.model).mistral_dir);
  auto full = run_sequence(model, gc.input_ids, gc.images, {});
  ASSERT_TRUE(full.is_ok()) << full.status().to_string();
  // Chunks of 7 cut through image rows; the last 6 tokens are decoded one by one; blocks of 4
  // tokens in shuffled order make the paged reads non-contiguous.
  SequenceRunOptions options{.block_size = 4, .chunk_size = 7, .decode_tail = 6, .shuffle_blocks = true, .seed = 7};
  auto chunked = run_sequence(model, gc.input_ids, gc.images, options);
  ASSERT_TRUE(chunked.is_ok()) << chunked.status().to_string();
  const Comparison c = compare_logits(*chunked, *full, model.config().text.vocab_size);
  std::printf("[chunked] %-24s rel %.3g vs one pass\n", gc.name.c_str(), c.rel_error);
  EXPECT_LE(c.rel_error, kChunkedVsFull);
  EXPECT_EQ(c.argmax_agree, 1.0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenLogits, ::testing::ValuesIn(golden_case_names()),
                         [](const auto& info) { return info.param; });

TEST(GoldenInputs, ImageTokenCountMismatchIsAnError) {
  GoldenCase gc = load_golden_case("gqa_f32_one_image");
  const PixtralModel& model = load(golden_model(gc.model).mistral_dir);
  gc.input_ids.push_back(10);  // one [IMG] too many
  auto logits = run_sequence(model, gc.input_ids, gc.images, {});
  ASSERT_FALSE(logits.is_ok());
  EXPECT_NE(logits.status().message().find("[IMG]"), std::string::npos) << logits.status().message();
}

TEST(GoldenInputs, TokenOutsideVocabularyIsAnError) {
  GoldenCase gc = load_golden_case("gqa_f32_text_only");
  const PixtralModel& model = load(golden_model(gc.model).mistral_dir);
  gc.input_ids[3] = 100000;
  auto logits = run_sequence(model, gc.input_ids, gc.images, {});
  ASSERT_FALSE(logits.is_ok());
  EXPECT_NE(logits.status().message().find("vocabulary"), std::string::npos) << logits.status().message();
}

}  // namespace
}  // namespace pixtral::model::testing
