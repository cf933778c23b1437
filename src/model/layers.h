// Building blocks shared by the vision encoder and the decoder: each is a short, named sequence of
// backend ops (ref: spec/model.md §4.4 and §7, which have the same block structure).
#pragma once

#include "backend/backend.h"
#include "model/weights.h"

namespace pixtral::model {

// Scratch tensors of one block for T tokens, allocated once per forward call.
struct BlockScratch {
  backend::TensorBuffer normed;   // [T, D]
  backend::TensorBuffer q;        // [T, H·hd]
  backend::TensorBuffer k;        // [T, Hkv·hd]
  backend::TensorBuffer v;        // [T, Hkv·hd]
  backend::TensorBuffer attn;     // [T, H·hd]
  backend::TensorBuffer gate_up;  // [T, 2F]
  backend::TensorBuffer act;      // [T, F]

  static BlockScratch create(backend::Backend& b, int64_t tokens, int64_t d, int64_t h, int64_t hkv, int64_t hd,
                             int64_t f);
};

// normed = RMSNorm(x; attention_norm); q, k, v = normed·Wqᵀ, ·Wkᵀ, ·Wvᵀ.
void attention_inputs(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x, float eps,
                      BlockScratch& s);

// x += attn·Woᵀ, then x += W2·(SiLU(W1·RMSNorm(x)) ⊙ W3·RMSNorm(x)).
void attention_output_and_ffn(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x,
                              float eps, BlockScratch& s);

}  // namespace pixtral::model
