// Host-side index arrays of one decoder step (positions, slots, block tables, ...), built from a
// DecoderBatch; uploaded as I32 tensors. Kept separate so the layout logic is testable alone.
#pragma once

#include <string>
#include <vector>

#include "model/batch.h"
#include "pixtral/status.h"

namespace pixtral::model {

struct StepInputs {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t max_kv_len = 0;
  int64_t max_q_len = 0;
  int64_t max_blocks_per_seq = 0;
  int64_t num_decode_seqs = 0;         // leading sequences with one new token (decodes come first)
  std::vector<int32_t> token_ids;      // [T]
  std::vector<int32_t> positions;      // [T]
  std::vector<int32_t> slot_mapping;   // [T]
  std::vector<int32_t> q_start;        // [S + 1]
  std::vector<int32_t> kv_len;         // [S]
  std::vector<int32_t> block_tables;   // [S, max_blocks_per_seq], padded with 0
  std::vector<int32_t> logit_rows;     // [R] rows of the batch whose logits are computed
  struct ImageScatter {
    int64_t seq = 0;
    int64_t src_begin = 0;             // first feature row
    std::vector<int32_t> dst_rows;     // batch rows of the [IMG] tokens, in order
  };
  std::vector<ImageScatter> images;
};

// Validates the batch (block tables long enough, blocks in range, image rows available) and
// lays out the index arrays. image_token_id marks the rows that receive image features.
Result<StepInputs> build_step_inputs(const DecoderBatch& batch, int64_t block_size, int64_t num_blocks,
                                     int32_t image_token_id);

}  // namespace pixtral::model
