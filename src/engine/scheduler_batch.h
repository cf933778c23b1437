// The bridge from a scheduler step to the model: one model::SequenceChunk per scheduled chunk.
// Thread-compatibility: reads the scheduler; call on the engine loop thread between schedule()
// and update().
#pragma once

#include <functional>

#include "engine/scheduler.h"
#include "model/batch.h"

namespace pixtral::engine {

// The image features of a sequence: [num_image_tokens_total, D] on the backend, rows in the
// order of its [IMG] tokens (all of its images, as PixtralModel::encode_images returns them), or an
// empty tensor when it has no image. The engine owns the memory (per sequence, or assembled from
// its image-embedding cache keyed by content hash) and keeps it alive until the step has run.
using ImageFeaturesLookup = std::function<backend::Tensor(SeqId)>;

struct DecoderBatchParams {
  const SchedulerOutput* step = nullptr;
  const Scheduler* scheduler = nullptr;
  ImageFeaturesLookup image_features;  // may be empty when no sequence has images
};

// Builds the decoder batch of the step, chunk for chunk (same order: row r of the logits belongs
// to chunk r). kInvalidArgument when a chunk holds [IMG] tokens and no features are given.
Result<model::DecoderBatch> build_decoder_batch(const DecoderBatchParams& params);

}  // namespace pixtral::engine
