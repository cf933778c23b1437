// What one decoder step computes: a batch of sequence chunks (prefill chunks and single decode
// tokens alike), described on the host. The model turns it into backend tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/tensor.h"

namespace pixtral::model {

struct SequenceChunk {
  std::vector<int32_t> token_ids;    // [q_len] the new tokens of this step
  int64_t start_pos = 0;             // tokens of this sequence already in the KV cache
  std::vector<int32_t> block_table;  // block ids covering positions [0, start_pos + q_len)
  // Image features of this sequence, [num_image_tokens_total, D] on the backend, and the index of
  // the feature row that the first [IMG] token of this chunk receives (spec/model.md §6).
  backend::Tensor image_embeds;
  int64_t image_row_begin = 0;
  // Positions at or past this hold generated tokens: an [IMG] id there is an ordinary token (its
  // embedding row), never an image row. The engine sets it to the prompt length.
  int64_t image_token_limit = INT64_MAX;
  bool all_logits = false;  // logits for every row of the chunk; otherwise for its last row only
};

struct DecoderBatch {
  std::vector<SequenceChunk> seqs;
};

}  // namespace pixtral::model
