// The tensor inventory of a Pixtral model in each checkpoint layout, and the binding of a
// checkpoint's tensors to it (spec/model.md §1.4, §2.2, §2.3).
//
// Canonical names are the mistral (consolidated) names. HF checkpoints store q/k rows in
// rotate-half order; binding records the permutation so that loaded weights are always in the
// mistral (interleaved RoPE) order, and the model has one RoPE convention.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/model_config.h"

namespace pixtral::io {

struct WeightSpec {
  std::string name;            // canonical (mistral) name, e.g. "layers.0.attention.wq.weight"
  std::string stored_name;     // name in this layout's files
  std::vector<int64_t> shape;  // expected shape
  // When > 0: rows are stored in HF rotate-half order, num_rope_heads heads of rope_head_dim rows;
  // loading un-permutes them to mistral order (W_mi[h*hd + 2i + j] = W_hf[h*hd + j*hd/2 + i]).
  int64_t num_rope_heads = 0;
  int64_t rope_head_dim = 0;
};

// Every tensor the model needs, in a stable order. Decoder, then vision + adapter when has_vision.
std::vector<WeightSpec> expected_weights(const ModelConfig& config);

// A checkpoint bound to the expected inventory: every expected tensor present with its shape,
// a floating dtype (F32, F16, BF16), and no unexpected tensor.
class BoundWeights {
 public:
  static Result<BoundWeights> bind(const CheckpointFiles& files, const ModelConfig& config);

  // The view of canonical `name`; PX_CHECK that it exists.
  const TensorView& view(const std::string& name) const;
  const WeightSpec& spec(const std::string& name) const;
  // Converts the tensor to f32 in mistral row order into `out` (numel floats).
  void read_f32(const std::string& name, float* out) const;
  const std::vector<WeightSpec>& specs() const { return specs_; }

 private:
  std::vector<WeightSpec> specs_;
  std::map<std::string, size_t> index_;
  std::vector<const TensorView*> views_;
};

// The permutation on its own, for tests and tools: HF (rotate-half) rows -> mistral rows.
// `rows` = num_heads * head_dim rows of `cols` floats each.
void unpermute_rope_rows(const float* hf, float* mistral, int64_t num_heads, int64_t head_dim, int64_t cols);
// mistral rows -> HF rows (what transformers' conversion script does).
void permute_rope_rows(const float* mistral, float* hf, int64_t num_heads, int64_t head_dim, int64_t cols);

}  // namespace pixtral::io
