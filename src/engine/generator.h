// Single-sequence generation over PixtralModel: encode the images, prefill the prompt (in chunks),
// then decode one token per step until EOS, a stop id, max_tokens or the callback says stop.
// The CLI's generate/chat use it until the serving engine (continuous batching) replaces it.
#pragma once

#include <functional>
#include <vector>

#include "engine/sampler.h"
#include "model/pixtral_model.h"
#include "model/sequence_runner.h"

namespace pixtral::engine {

struct GenerationRequest {
  std::vector<int32_t> prompt;              // token ids, [IMG] rows included
  std::vector<model::ImageData> images;     // preprocessed pixels, prompt order
  int64_t max_tokens = 256;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;            // e.g. EOS; the stop token is returned too
  int64_t prefill_chunk = 2048;
  int64_t block_size = 16;
};

// Called with each new token; return false to stop early.
using TokenCallback = std::function<bool(int32_t)>;

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (the stop token included when one ended it)
  enum class Finish { kStop, kLength, kCallback } finish = Finish::kLength;
};

Result<GenerationResult> generate(const model::PixtralModel& model, const GenerationRequest& request,
                                  const TokenCallback& on_token);

}  // namespace pixtral::engine
