// The host-side layout of a decoder step: positions, KV slots through block tables, logit rows,
// image-row scatter, and the validation errors of a malformed batch.
#include "model/step_inputs.h"

#include <gtest/gtest.h>

namespace pixtral::model {
namespace {

TEST(StepInputs, LaysOutTwoSequencesThroughTheirBlockTables) {
  DecoderBatch batch;
  batch.seqs.push_back({.token_ids = {5, 6, 7}, .start_pos = 0, .block_table = {3}, .all_logits = true});
  batch.seqs.push_back({.token_ids = {9}, .start_pos = 5, .block_table = {1, 0}});
  auto in = build_step_inputs(batch, /*block_size=*/4, /*num_blocks=*/4, /*image_token_id=*/10);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  EXPECT_EQ(in->positions, (std::vector<int32_t>{0, 1, 2, 5}));
  EXPECT_EQ(in->slot_mapping, (std::vector<int32_t>{12, 13, 14, 1}));  // block 3 -> slots 12..; pos 5 -> block 0, offset 1
  EXPECT_EQ(in->q_start, (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(in->kv_len, (std::vector<int32_t>{3, 6}));
  EXPECT_EQ(in->logit_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(in->block_tables, (std::vector<int32_t>{3, 0, 1, 0}));
  EXPECT_EQ(in->max_kv_len, 6);
  EXPECT_EQ(in->num_decode_seqs, 0);  // the decode row comes after a prefill chunk
}

TEST(StepInputs, ImageRowsAreScatteredInOrder) {
  backend::Tensor feats;
  feats.data = reinterpret_cast<void*>(0x1000);  // never dereferenced here
  feats.shape = {6, 8};
  DecoderBatch batch;
  batch.seqs.push_back({.token_ids = {1, 10, 10, 12, 10, 13}, .start_pos = 0, .block_table = {0, 1},
                        .image_embeds = feats, .image_row_begin = 2});
  auto in = build_step_inputs(batch, 4, 2, 10);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  ASSERT_EQ(in->images.size(), 1u);
  EXPECT_EQ(in->images[0].src_begin, 2);
  EXPECT_EQ(in->images[0].dst_rows, (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(in->logit_rows, (std::vector<int32_t>{5}));
}

// A generated [IMG] id (at or past image_token_limit) is an ordinary token: no image row, and
// no features needed.
TEST(StepInputs, GeneratedImageTokenIsAnOrdinaryToken) {
  DecoderBatch batch;
  batch.seqs.push_back({.token_ids = {10}, .start_pos = 6, .block_table = {0, 1}, .image_token_limit = 6});
  auto in = build_step_inputs(batch, 4, 2, 10);
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  EXPECT_TRUE(in->images.empty());
  EXPECT_EQ(in->token_ids, (std::vector<int32_t>{10}));
  EXPECT_EQ(in->num_decode_seqs, 1);
}

TEST(StepInputs, RejectsMalformedBatches) {
  DecoderBatch short_table;
  short_table.seqs.push_back({.token_ids = {1, 2, 3, 4, 5}, .start_pos = 0, .block_table = {0}});
  EXPECT_FALSE(build_step_inputs(short_table, 4, 4, 10).is_ok());

  DecoderBatch bad_block;
  bad_block.seqs.push_back({.token_ids = {1}, .start_pos = 0, .block_table = {9}});
  auto r = build_step_inputs(bad_block, 4, 4, 10);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("block id 9"), std::string::npos);

  DecoderBatch missing_features;
  missing_features.seqs.push_back({.token_ids = {10, 10}, .start_pos = 0, .block_table = {0}});
  EXPECT_FALSE(build_step_inputs(missing_features, 4, 4, 10).is_ok());

  DecoderBatch empty;
  empty.seqs.push_back({.token_ids = {}, .start_pos = 0, .block_table = {0}});
  EXPECT_FALSE(build_step_inputs(empty, 4, 4, 10).is_ok());
}

}  // namespace
}  // namespace pixtral::model
