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
  TensorBuffer wqkv;            // [(H + 2·Hkv)·hd, D]: rows wq [H·hd], then wk, wv [Hkv·hd] each
  int64_t q_rows = 0;           // H·hd
  int64_t kv_rows = 0;          // Hkv·hd
  TensorBuffer wo;              // [D, H·hd]
  TensorBuffer ffn_norm;        // [D]
  TensorBuffer w_gate_up;       // [2F, D]: rows [0, F) = w1 (gate), rows [F, 2F) = w3 (up)
  TensorBuffer w_down;          // [D, F]  (w2)

  backend::Tensor wq() const { return wqkv.tensor().rows(0, q_rows); }                           // [H·hd, D]
  backend::Tensor wk() const { return wqkv.tensor().rows(q_rows, q_rows + kv_rows); }            // [Hkv·hd, D]
  backend::Tensor wv() const { return wqkv.tensor().rows(q_rows + kv_rows, q_rows + 2 * kv_rows); }  // [Hkv·hd, D]
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
