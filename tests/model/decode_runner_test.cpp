// DecodeRunner (persistent buffers, graph-capturable) computes the same decode steps as the
// allocating forward() path, for a batch of sequences with different contexts and scattered blocks.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "golden_util.h"
#include "model/pixtral_model.h"

namespace pixtral::model::testing {
namespace {

TEST(DecodeRunner, EqualsForwardForABatchOfSequences) {
  auto cpu = backend::make_cpu_backend();
  auto model = PixtralModel::load(golden_model("gqa_f32").mistral_dir, *cpu);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  std::vector<int32_t> text(64);  // text ids only (no [IMG] rows)
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<int32_t>(20 + (i * 37) % 480);
  // Three sequences (text prefixes of the long case) with scattered, interleaved blocks.
  const std::vector<int64_t> lengths = {37, 5, 64};
  const std::vector<std::vector<int32_t>> tables = {{9, 2, 14, 30}, {7}, {1, 20, 3, 11, 25}};
  KvCache caches[2] = {(*model)->make_kv_cache(32, 16), (*model)->make_kv_cache(32, 16)};
  for (auto& cache : caches)
    for (size_t s = 0; s < lengths.size(); ++s) {
      DecoderBatch prefill;
      prefill.seqs.push_back({.token_ids = std::vector<int32_t>(text.begin(), text.begin() + lengths[s]),
                              .start_pos = 0, .block_table = tables[s]});
      ASSERT_TRUE((*model)->forward(prefill, cache).is_ok());
    }
  auto runner = (*model)->make_decode_runner(caches[1], 4, 6);
  std::vector<int64_t> pos = lengths;
  for (int step = 0; step < 3; ++step) {
    DecoderBatch batch;
    for (size_t s = 0; s < lengths.size(); ++s)
      batch.seqs.push_back({.token_ids = {static_cast<int32_t>(100 + 7 * step + static_cast<int32_t>(s))},
                            .start_pos = pos[s], .block_table = tables[s]});
    auto expected = (*model)->forward(batch, caches[0]);
    ASSERT_TRUE(expected.is_ok()) << expected.status().to_string();
    auto got = runner->step(batch);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    const int64_t vocab = (*model)->config().text.vocab_size;
    const Comparison c = compare_logits(download_f32(*cpu, *got), download_f32(*cpu, *expected), vocab);
    EXPECT_LE(c.rel_error, 1e-6) << "step " << step;
    EXPECT_EQ(c.argmax_agree, 1.0);
    for (auto& p : pos) ++p;
  }
}

TEST(DecodeRunner, RejectsWhatIsNotADecodeStep) {
  auto cpu = backend::make_cpu_backend();
  auto model = PixtralModel::load(golden_model("gqa_f32").mistral_dir, *cpu);
  ASSERT_TRUE(model.is_ok());
  KvCache cache = (*model)->make_kv_cache(8, 16);
  auto runner = (*model)->make_decode_runner(cache, 2, 4);
  DecoderBatch two_tokens;
  two_tokens.seqs.push_back({.token_ids = {30, 31}, .start_pos = 0, .block_table = {0}});
  EXPECT_FALSE(runner->step(two_tokens).is_ok());
  DecoderBatch too_many;
  for (int i = 0; i < 3; ++i) too_many.seqs.push_back({.token_ids = {30}, .start_pos = 0, .block_table = {i}});
  EXPECT_FALSE(runner->step(too_many).is_ok());
  DecoderBatch long_table;
  long_table.seqs.push_back({.token_ids = {30}, .start_pos = 0, .block_table = {0, 1, 2, 3, 4}});
  EXPECT_FALSE(runner->step(long_table).is_ok());
}

}  // namespace
}  // namespace pixtral::model::testing
