#include "model/pixtral_model.h"

#include "model/weight_loader.h"

namespace pixtral::model {

PixtralModel::PixtralModel(io::ModelConfig config, backend::Backend& backend, PixtralWeights weights)
    : config_(std::move(config)),
      backend_(backend),
      weights_(std::move(weights)),
      decoder_(config_, weights_.decoder),
      vision_(config_, weights_.vision, weights_.adapter) {}

Result<std::unique_ptr<PixtralModel>> PixtralModel::load(const std::string& dir, backend::Backend& backend) {
  PX_ASSIGN_OR_RETURN(io::ModelConfig config, io::load_model_config(dir));
  PX_ASSIGN_OR_RETURN(PixtralWeights weights, load_weights(dir, config, backend));
  return std::unique_ptr<PixtralModel>(new PixtralModel(std::move(config), backend, std::move(weights)));
}

std::unique_ptr<PixtralModel> PixtralModel::random(const io::ModelConfig& config, backend::Backend& backend,
                                                   uint64_t seed) {
  PixtralWeights weights = random_weights(config, backend, seed);
  return std::unique_ptr<PixtralModel>(new PixtralModel(config, backend, std::move(weights)));
}

Result<backend::TensorBuffer> PixtralModel::encode_images(const std::vector<ImageInput>& images) const {
  if (!config_.has_vision) return invalid_argument("this model has no vision encoder; images are not accepted");
  return vision_.encode(backend_, images);
}

Result<VisionJob> PixtralModel::begin_images(const std::vector<ImageInput>& images) const {
  if (!config_.has_vision) return invalid_argument("this model has no vision encoder; images are not accepted");
  return vision_.begin(backend_, images);
}

Result<backend::TensorBuffer> PixtralModel::forward(const DecoderBatch& batch, KvCache& cache) const {
  return decoder_.forward(backend_, batch, cache);
}

std::unique_ptr<DecodeRunner> PixtralModel::make_decode_runner(KvCache& cache, int64_t max_seqs,
                                                              int64_t max_blocks_per_seq) const {
  return std::make_unique<DecodeRunner>(backend_, decoder_, config_, cache, max_seqs, max_blocks_per_seq);
}

KvCache PixtralModel::make_kv_cache(int64_t num_blocks, int64_t block_size) const {
  return KvCache::create(backend_, config_.text, num_blocks, block_size);
}

}  // namespace pixtral::model
