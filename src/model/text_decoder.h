// The Mistral-Nemo-shaped decoder over the paged KV cache (ref: spec/model.md §6, §7).
#pragma once

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace pixtral::model {

class TextDecoder {
 public:
  TextDecoder(const io::ModelConfig& config, const DecoderWeights& weights) : config_(config), weights_(weights) {}

  // Runs one step: writes the chunk's K/V into the cache and returns logits [R, V] for the rows
  // selected by each chunk (all rows, or the last one), in batch order.
  Result<backend::TensorBuffer> forward(backend::Backend& b, const DecoderBatch& batch, KvCache& cache) const;

 private:
  const io::ModelConfig& config_;
  const DecoderWeights& weights_;
};

}  // namespace pixtral::model
