#include "model/layers.h"

namespace pixtral::model {

BlockScratch BlockScratch::create(backend::Backend& b, int64_t tokens, int64_t d, int64_t h, int64_t hkv,
                                  int64_t hd, int64_t f) {
  const auto dt = b.activation_dtype();
  BlockScratch s;
  s.normed = b.alloc(dt, {tokens, d});
  s.q = b.alloc(dt, {tokens, h * hd});
  s.k = b.alloc(dt, {tokens, hkv * hd});
  s.v = b.alloc(dt, {tokens, hkv * hd});
  s.attn = b.alloc(dt, {tokens, h * hd});
  s.gate_up = b.alloc(dt, {tokens, 2 * f});
  s.act = b.alloc(dt, {tokens, f});
  return s;
}

BlockTensors BlockScratch::view(int64_t tokens) const {
  return {normed.tensor().rows(0, tokens), q.tensor().rows(0, tokens), k.tensor().rows(0, tokens),
          v.tensor().rows(0, tokens), attn.tensor().rows(0, tokens), gate_up.tensor().rows(0, tokens),
          act.tensor().rows(0, tokens)};
}

void attention_inputs(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x, float eps,
                      const BlockTensors& s) {
  b.rms_norm({.x = x, .weight = w.attention_norm, .y = s.normed, .eps = eps});
  b.matmul({.x = s.normed, .w = w.wq(), .y = s.q});
  b.matmul({.x = s.normed, .w = w.wk(), .y = s.k});
  b.matmul({.x = s.normed, .w = w.wv(), .y = s.v});
}

void attention_output(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x,
                      const BlockTensors& s) {
  b.matmul({.x = s.attn, .w = w.wo, .y = x, .accumulate = true});  // residual add
}

void ffn(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x, float eps,
         const BlockTensors& s) {
  b.norm_matmul({.x = x, .norm_weight = w.ffn_norm, .w = w.w_gate_up, .y = s.act, .eps = eps, .swiglu = true});
  b.matmul({.x = s.act, .w = w.w_down, .y = x, .accumulate = true});  // residual add
}

void attention_output_and_ffn(backend::Backend& b, const DecoderLayerWeights& w, const backend::Tensor& x,
                              float eps, const BlockTensors& s) {
  b.matmul({.x = s.attn, .w = w.wo, .y = x, .accumulate = true});  // residual add
  b.rms_norm({.x = x, .weight = w.ffn_norm, .y = s.normed, .eps = eps});
  b.matmul({.x = s.normed, .w = w.w_gate_up, .y = s.gate_up});
  b.silu_mul({.gate_up = s.gate_up, .out = s.act});
  b.matmul({.x = s.act, .w = w.w_down, .y = x, .accumulate = true});  // residual add
}

}  // namespace pixtral::model
