// The model's weights on the backend, in mistral (interleaved RoPE) row order whatever the
// checkpoint layout was. Shapes use the glossary: D = hidden_dim, F = ffn_dim, H = num_heads,
// Hkv = num_kv_heads, hd = head_dim, V = vocab_size, C·p·p = channels · patch_size².
#pragma once

#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"

namespace pixtral::model {

using backend::TensorBuffer;

struct DecoderLayerWeights {
  TensorBuffer attention_norm;  // [D]
  TensorBuffer wq;              // [H·hd, D]
  TensorBuffer wk;              // [Hkv·hd, D]
  TensorBuffer wv;              // [Hkv·hd, D]
  TensorBuffer wo;              // [D, H·hd]
  TensorBuffer ffn_norm;        // [D]
  TensorBuffer w_gate_up;       // [2F, D]: rows [0, F) = w1 (gate), rows [F, 2F) = w3 (up)
  TensorBuffer w_down;          // [D, F]  (w2)
};

struct DecoderWeights {
  TensorBuffer tok_embeddings;  // [V, D]
  std::vector<DecoderLayerWeights> layers;
  TensorBuffer norm;            // [D]
  TensorBuffer output;          // [V, D]
};

// The vision blocks have the decoder block's structure with the vision sizes (no GQA: Hkv = H).
using VisionLayerWeights = DecoderLayerWeights;

struct VisionWeights {
  TensorBuffer patch_conv;  // [Dv, C·p·p] (Conv2d [Dv, C, p, p] flattened)
  TensorBuffer ln_pre;      // [Dv]
  std::vector<VisionLayerWeights> layers;
};

struct AdapterWeights {
  TensorBuffer w_in;   // [D, Dv]
  TensorBuffer b_in;   // [D]
  TensorBuffer w_out;  // [D, D]
  TensorBuffer b_out;  // [D]
};

struct PixtralWeights {
  DecoderWeights decoder;
  VisionWeights vision;    // empty when the model has no vision encoder
  AdapterWeights adapter;  // idem
};

}  // namespace pixtral::model
