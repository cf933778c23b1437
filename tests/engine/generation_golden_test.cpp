// Greedy generation on the CPU backend equals transformers' greedy generate() on the same tiny
// models and inputs (tests/data/goldens/generation.json, made by tools/make_generation_goldens.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "engine/generator.h"
#include "golden_util.h"

namespace pixtral::engine {
namespace {

using model::testing::golden_model;
using model::testing::goldens_dir;
using model::testing::load_golden_case;

TEST(GenerationGolden, GreedyTokensEqualTransformers) {
  std::ifstream in(goldens_dir() + "/generation.json");
  const nlohmann::json golden = nlohmann::json::parse(in);
  auto cpu = backend::make_cpu_backend();
  ASSERT_FALSE(golden["cases"].empty());
  for (const auto& c : golden["cases"]) {
    const auto gc = load_golden_case(c["case"]);
    for (const std::string& dir : {golden_model(gc.model).mistral_dir, golden_model(gc.model).hf_dir}) {
      auto model = model::PixtralModel::load(dir, *cpu);
      ASSERT_TRUE(model.is_ok()) << model.status().to_string();
      GenerationRequest request{.prompt = gc.input_ids, .images = gc.images,
                                .max_tokens = c["max_new_tokens"].get<int64_t>(),
                                .stop_ids = {golden["eos_token_id"].get<int32_t>()}, .prefill_chunk = 5};
      auto result = generate(**model, request, [](int32_t) { return true; });
      ASSERT_TRUE(result.is_ok()) << result.status().to_string();
      EXPECT_EQ(result->tokens, c["greedy_tokens"].get<std::vector<int32_t>>()) << gc.name << " " << dir;
    }
  }
}

}  // namespace
}  // namespace pixtral::engine
