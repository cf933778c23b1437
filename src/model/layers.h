// Building blocks shared by the vision encoder and the decoder: each is a short, named sequence of
// backend ops (ref: spec/model.md §4.4 and §7, which have the same block structure).
#pragma once

#include "backend/backend.h"
#include "model/weights.h"

namespace pixtral::model {

// Views of the scratch tensors of one block for T tokens.
struct BlockTensors {
  backend::Tensor normed, q, k, v, attn, gate_up, act;  // shapes as in BlockScratch, T rows
};

// Scratch tensors of one block for up to `tokens` tokens (allocated once, reused by every layer).
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
  // The first `tokens` rows of every tensor.
  BlockTensors view(int64_t tokens) const;
};

// normed = RMSNorm(x; attention_norm); q, k, v = normed·Wqᵀ, ·Wkᵀ, ·Wvᵀ.
void attention_inputs(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x, float eps,
                      const BlockTensors& s);

// x += attn·Woᵀ (the decoder's attention output; its inputs are the fused qkv_rope op).
void attention_output(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x,
                      const BlockTensors& s);

// x += W2·(SiLU(W1·RMSNorm(x)) ⊙ W3·RMSNorm(x)) through the fused norm_matmul (the decoder's FFN).
void ffn(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x, float eps, const BlockTensors& s);

// x += attn·Woᵀ, then x += W2·(SiLU(W1·RMSNorm(x)) ⊙ W3·RMSNorm(x)) (the vision blocks).
void attention_output_and_ffn(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x,
                              float eps, const BlockTensors& s);

}  // namespace pixtral::model
