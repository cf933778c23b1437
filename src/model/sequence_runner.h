// Runs one whole prompt through the model and returns the logits of every position: the path of
// `pixtral logits` and of the golden tests. Prefill may be split into chunks and the tail fed one
// token at a time, to prove that chunked prefill + decode equals one pass.
#pragma once

#include <vector>

#include "model/pixtral_model.h"

namespace pixtral::model {

struct SequenceRunOptions {
  int64_t block_size = 16;
  int64_t chunk_size = 0;        // 0: the whole prompt in one step
  int64_t decode_tail = 0;       // the last N tokens go one per step (decode)
  bool shuffle_blocks = false;   // give the sequence non-contiguous blocks (exercises paging)
  uint64_t seed = 0;             // for shuffle_blocks
};

struct ImageData {
  int64_t height = 0, width = 0;
  std::vector<float> pixels;  // [C, height, width]
};

// logits [T, V] row-major on the host.
Result<std::vector<float>> run_sequence(const PixtralModel& model, const std::vector<int32_t>& token_ids,
                                        const std::vector<ImageData>& images, const SequenceRunOptions& options);

}  // namespace pixtral::model
