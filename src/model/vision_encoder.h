// Pixtral-ViT + the vision-language adapter: images -> decoder-width features, one row per patch,
// images concatenated in order, each image row-major (ref: spec/model.md §4, §5).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/layers.h"
#include "model/weights.h"

namespace pixtral::model {

// One preprocessed image: normalized pixels [C, H, W] on the host, H and W multiples of the patch.
struct ImageInput {
  int64_t height = 0, width = 0;
  const float* pixels = nullptr;  // [C, height, width]
};

// An encoding in progress: begin() embeds the patches, advance() runs the transformer layers (all
// at once, or a slice per call so that a serving loop can put decode steps in between), finish()
// the adapter. Holds device buffers of the backend it began on; the pixels are not needed after
// begin().
struct VisionJob {
  int64_t num_patches = 0, num_images = 0, max_len = 0;
  int64_t next_layer = 0;                      // layers run so far
  backend::TensorBuffer x;                     // [N, D_vision] hidden states after next_layer layers
  backend::TensorBuffer pos_row, pos_col;      // I32 [N]: each patch's (row, col) in its image
  backend::TensorBuffer cu_seqlens;            // I32 [images + 1]: each image's patch range
  BlockScratch scratch;                        // per-layer activations, N rows
};

class VisionEncoder {
 public:
  VisionEncoder(const io::ModelConfig& config, const VisionWeights& vision, const AdapterWeights& adapter)
      : config_(config), vision_(vision), adapter_(adapter) {}

  // Returns adapter outputs [Σ rows·cols, D_text]. Attention is restricted to each image.
  Result<backend::TensorBuffer> encode(backend::Backend& b, const std::vector<ImageInput>& images) const;

  // The same in steps: encode() == begin, advance until done, finish.
  Result<VisionJob> begin(backend::Backend& b, const std::vector<ImageInput>& images) const;
  // Runs up to max_layers more layers; returns how many ran (0 when every layer has run).
  int64_t advance(backend::Backend& b, VisionJob& job, int64_t max_layers) const;
  bool done(const VisionJob& job) const { return job.next_layer >= num_layers(); }
  // The adapter over the final hidden states (every layer must have run).
  backend::TensorBuffer finish(backend::Backend& b, VisionJob& job) const;
  int64_t num_layers() const { return static_cast<int64_t>(vision_.layers.size()); }

 private:
  const io::ModelConfig& config_;
  const VisionWeights& vision_;
  const AdapterWeights& adapter_;
};

}  // namespace pixtral::model
