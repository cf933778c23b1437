// PixtralModel: config + weights on a backend + the two networks. The forward pass is written
// once, against backend::Backend (ref: spec/model.md §0 for the whole picture).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/text_decoder.h"
#include "model/vision_encoder.h"
#include "model/weights.h"

namespace pixtral::model {

class PixtralModel {
 public:
  // Reads the config and weights of a checkpoint directory (either layout).
  static Result<std::unique_ptr<PixtralModel>> load(const std::string& dir, backend::Backend& backend);
  // Random weights of the config's shape, initialised on the backend (benchmarks).
  static std::unique_ptr<PixtralModel> random(const io::ModelConfig& config, backend::Backend& backend, uint64_t seed);

  const io::ModelConfig& config() const { return config_; }
  backend::Backend& backend() const { return backend_; }

  // Adapter outputs for the images, [Σ rows·cols, D], in image order.
  Result<backend::TensorBuffer> encode_images(const std::vector<ImageInput>& images) const;
  // The same in steps (VisionJob): begin, advance up to max_layers at a time (returns how many
  // ran), finish once images_done; a serving loop spreads one encoding over several steps.
  Result<VisionJob> begin_images(const std::vector<ImageInput>& images) const;
  int64_t advance_images(VisionJob& job, int64_t max_layers) const { return vision_.advance(backend_, job, max_layers); }
  bool images_done(const VisionJob& job) const { return vision_.done(job); }
  backend::TensorBuffer finish_images(VisionJob& job) const { return vision_.finish(backend_, job); }
  // One decoder step over the paged cache; logits [R, V] (see TextDecoder::forward).
  Result<backend::TensorBuffer> forward(const DecoderBatch& batch, KvCache& cache) const;
  KvCache make_kv_cache(int64_t num_blocks, int64_t block_size) const;
  // Readies the backend's matmuls (Backend::prepare_matmul) for decoder steps of up to max_tokens
  // rows with up to max_logit_rows rows of logits, and for images of up to max_patches patches.
  void prepare_matmuls(int64_t max_tokens, int64_t max_logit_rows, int64_t max_patches) const;
  // Persistent-buffer decode steps over `cache` (graphs where the backend has them).
  std::unique_ptr<DecodeRunner> make_decode_runner(KvCache& cache, int64_t max_seqs, int64_t max_blocks_per_seq) const;

 private:
  PixtralModel(io::ModelConfig config, backend::Backend& backend, PixtralWeights weights);

  io::ModelConfig config_;
  backend::Backend& backend_;
  PixtralWeights weights_;
  TextDecoder decoder_;
  VisionEncoder vision_;
};

}  // namespace pixtral::model
