// The image pipeline: bytes -> RGB (decode_image) -> token grid (patch_grid) -> normalized
// [3, H, W] float pixels (preprocess), reproducing mistral_common 1.13.1's ImageEncoder.
// ref: spec/inputs.md §5, §6; spec/model.md §3
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pixtral/status.h"

namespace pixtral::image {

// Checked from the header, before any pixel buffer is allocated.
struct DecodeLimits {
  int64_t max_side = 10000;
  int64_t max_pixels = 100'000'000;
  size_t max_encoded_bytes = 20u << 20;
};

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3] RGB, row-major
};

// Decodes PNG, JPEG, WebP, GIF (first frame), BMP; detects the format from magic bytes.
// Every mode is converted to RGB exactly as Pillow's convert("RGB") after mistral_common's alpha
// handling (alpha composited onto white). Limits are checked from the header.
Result<RgbImage> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {});
Result<RgbImage> load_image_file(const std::string& path, const DecodeLimits& limits = {});

struct ImageGeometry {
  int64_t patch_size = 16;
  int64_t max_image_size = 1024;
};

struct PatchGrid {
  int64_t rows = 0, cols = 0;  // h_tok, w_tok
};

// Token grid from the ORIGINAL size (spec/model.md §3 step 2). Error for degenerate sizes.
Result<PatchGrid> patch_grid(int64_t width, int64_t height, const ImageGeometry& geometry);

struct PixelTensor {
  int64_t height = 0, width = 0;  // = rows * patch_size, cols * patch_size
  std::vector<float> data;        // [3, height, width], CLIP-normalized
};

// Resize (OpenCV INTER_CUBIC on float32) to the grid's pixel size, normalize, CHW.
Result<PixelTensor> preprocess(const RgbImage& image, const ImageGeometry& geometry);

// decode_image + patch_grid + preprocess in one call. For JPEG the resize runs on a second
// thread while rows are still being decoded (the decode dominates; this hides the resize).
struct PreprocessedImage {
  int64_t width = 0, height = 0;  // the decoded (original) size
  PatchGrid grid;
  PixelTensor pixels;
};
Result<PreprocessedImage> decode_and_preprocess(std::span<const uint8_t> bytes, const ImageGeometry& geometry = {},
                                                const DecodeLimits& limits = {});

// Header-only probe: format and size without decoding pixels (for token counting).
struct ImageInfo {
  std::string format;  // "png", "jpeg", "webp", "gif", "bmp"
  int64_t width = 0, height = 0;
};
Result<ImageInfo> probe_image(std::span<const uint8_t> bytes);

}  // namespace pixtral::image
