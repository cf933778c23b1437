#include "model/vision_encoder.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "model/layers.h"

namespace pixtral::model {

using backend::Tensor;
using backend::TensorBuffer;

Result<TensorBuffer> VisionEncoder::encode(backend::Backend& b, const std::vector<ImageInput>& images) const {
  PX_ASSIGN_OR_RETURN(VisionJob job, begin(b, images));
  while (advance(b, job, num_layers()) > 0) {
  }
  return finish(b, job);
}

Result<VisionJob> VisionEncoder::begin(backend::Backend& b, const std::vector<ImageInput>& images) const {
  const auto& v = config_.vision;
  const int64_t p = v.patch_size, dv = v.hidden_dim, patch_elems = v.num_channels * p * p;
  // ref: §4.1 — positions (row, col) restart at (0, 0) for every image; segments for §4.5.
  std::vector<int32_t> rows, cols, cu_seqlens{0};
  int64_t max_len = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& img = images[i];
    if (img.height <= 0 || img.width <= 0 || img.height % p != 0 || img.width % p != 0)
      return invalid_argument("image " + std::to_string(i) + ": size " + std::to_string(img.height) + "x" +
                              std::to_string(img.width) + " is not a positive multiple of the patch size " +
                              std::to_string(p));
    const int64_t h = img.height / p, w = img.width / p;
    if (h > v.image_size / p || w > v.image_size / p)
      return invalid_argument("image " + std::to_string(i) + ": larger than image_size " + std::to_string(v.image_size));
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) {
        rows.push_back(static_cast<int32_t>(r));
        cols.push_back(static_cast<int32_t>(c));
      }
    cu_seqlens.push_back(static_cast<int32_t>(rows.size()));
    max_len = std::max(max_len, h * w);
  }
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n == 0) return invalid_argument("no images to encode");
  const auto dt = b.activation_dtype();

  // Patch embedding as a GEMM over patch vectors (Conv2d without bias).
  TensorBuffer patches = b.alloc(dt, {n, patch_elems});
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& img = images[i];
    TensorBuffer pixels = b.alloc(base::DType::kF32, {v.num_channels, img.height, img.width});
    b.upload(img.pixels, base::DType::kF32, pixels);
    b.patchify({.image = pixels, .patches = patches.tensor().rows(cu_seqlens[i], cu_seqlens[i + 1]), .patch_size = p});
  }
  VisionJob job;
  job.num_patches = n;
  job.num_images = static_cast<int64_t>(images.size());
  job.max_len = max_len;
  job.x = b.alloc(dt, {n, dv});
  b.matmul({.x = patches, .w = vision_.patch_conv, .y = job.x});
  b.rms_norm({.x = job.x, .weight = vision_.ln_pre, .y = job.x, .eps = static_cast<float>(v.norm_eps)});  // ln_pre

  job.pos_row = b.alloc(base::DType::kI32, {n});
  job.pos_col = b.alloc(base::DType::kI32, {n});
  job.cu_seqlens = b.alloc(base::DType::kI32, {static_cast<int64_t>(cu_seqlens.size())});
  b.upload(rows.data(), base::DType::kI32, job.pos_row);
  b.upload(cols.data(), base::DType::kI32, job.pos_col);
  b.upload(cu_seqlens.data(), base::DType::kI32, job.cu_seqlens);
  job.scratch = BlockScratch::create(b, n, dv, v.num_heads, v.num_heads, v.head_dim, v.ffn_dim);
  return job;
}

int64_t VisionEncoder::advance(backend::Backend& b, VisionJob& job, int64_t max_layers) const {
  const auto& v = config_.vision;
  const int64_t n = job.num_patches, h = v.num_heads, hd = v.head_dim;
  const BlockTensors s = job.scratch.view(n);
  const float eps = static_cast<float>(v.norm_eps), theta = static_cast<float>(v.rope_theta);
  int64_t ran = 0;
  for (; ran < max_layers && job.next_layer < num_layers(); ++ran, ++job.next_layer) {
    const auto& layer = vision_.layers[static_cast<size_t>(job.next_layer)];
    attention_inputs(b, layer, job.x, eps, s);
    const Tensor q = s.q.reshape({n, h, hd}), k = s.k.reshape({n, h, hd});
    b.rope({.x = q, .pos = job.pos_row, .pos_col = job.pos_col, .theta = theta});  // ref: §4.3 2D RoPE
    b.rope({.x = k, .pos = job.pos_row, .pos_col = job.pos_col, .theta = theta});
    b.varlen_attention({.q = q, .k = k, .v = s.v.reshape({n, h, hd}), .cu_seqlens = job.cu_seqlens,
                        .out = s.attn.reshape({n, h, hd}), .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
                        .num_segments = job.num_images, .max_seqlen = job.max_len});
    attention_output_and_ffn(b, layer, job.x, eps, s);
  }
  return ran;
}

TensorBuffer VisionEncoder::finish(backend::Backend& b, VisionJob& job) const {
  PX_CHECK_MSG(done(job), "VisionEncoder::finish before every layer ran");
  // Adapter (ref: §5): W_out·GELU_erf(W_in·x + b_in) + b_out.
  const int64_t n = job.num_patches, d = config_.text.hidden_dim;
  const auto dt = b.activation_dtype();
  TensorBuffer hidden = b.alloc(dt, {n, d});
  TensorBuffer out = b.alloc(dt, {n, d});
  b.matmul({.x = job.x, .w = adapter_.w_in, .bias = adapter_.b_in, .y = hidden});
  b.gelu({.x = hidden});
  b.matmul({.x = hidden, .w = adapter_.w_out, .bias = adapter_.b_out, .y = out});
  return out;
}

}  // namespace pixtral::model
