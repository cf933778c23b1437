// Pixtral-ViT + the vision-language adapter: images -> decoder-width features, one row per patch,
// images concatenated in order, each image row-major (ref: spec/model.md §4, §5).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/weights.h"

namespace pixtral::model {

// One preprocessed image: normalized pixels [C, H, W] on the host, H and W multiples of the patch.
struct ImageInput {
  int64_t height = 0, width = 0;
  const float* pixels = nullptr;  // [C, height, width]
};

class VisionEncoder {
 public:
  VisionEncoder(const io::ModelConfig& config, const VisionWeights& vision, const AdapterWeights& adapter)
      : config_(config), vision_(vision), adapter_(adapter) {}

  // Returns adapter outputs [Σ rows·cols, D_text]. Attention is restricted to each image.
  Result<backend::TensorBuffer> encode(backend::Backend& b, const std::vector<ImageInput>& images) const;

 private:
  const io::ModelConfig& config_;
  const VisionWeights& vision_;
  const AdapterWeights& adapter_;
};

}  // namespace pixtral::model
