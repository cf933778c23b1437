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

void PixtralModel::prepare_matmuls(int64_t max_tokens, int64_t max_logit_rows, int64_t max_patches) const {
  // One layer stands for all (every layer's weights have its shapes); the calls' flags as the
  // forward passes make them (layers.cpp, text_decoder.cpp, vision_encoder.cpp).
  auto prepare_layer = [&](const DecoderLayerWeights& l, int64_t rows, bool split_qkv) {
    // The vision blocks multiply by wq, wk and wv apart (one shape: no GQA), the decoder by wqkv.
    backend_.prepare_matmul(split_qkv ? l.wq() : l.wqkv.tensor(), rows, false, false);
    backend_.prepare_matmul(l.wo, rows, false, true);
    backend_.prepare_matmul(l.w_gate_up, rows, false, false);
    backend_.prepare_matmul(l.w_down, rows, false, true);
  };
  if (!weights_.decoder.layers.empty()) {
    prepare_layer(weights_.decoder.layers.front(), max_tokens, false);
    backend_.prepare_matmul(weights_.decoder.output, max_logit_rows, false, false);
  }
  if (!weights_.vision.layers.empty() && max_patches > 0) {
    prepare_layer(weights_.vision.layers.front(), max_patches, true);
    backend_.prepare_matmul(weights_.vision.patch_conv, max_patches, false, false);
    backend_.prepare_matmul(weights_.adapter.w_in, max_patches, true, false);
    backend_.prepare_matmul(weights_.adapter.w_out, max_patches, true, false);
  }
}

KvCache PixtralModel::make_kv_cache(int64_t num_blocks, int64_t block_size) const {
  return KvCache::create(backend_, config_.text, num_blocks, block_size);
}

}  // namespace pixtral::model
