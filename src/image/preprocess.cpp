// Token grid and pixel tensor, as mistral_common 1.13.1's ImageEncoder computes them.
// ref: spec/model.md §3; spec/inputs.md §4, §5.1
#include <cmath>

#include "image/image.h"
#include "image/resize.h"

namespace pixtral::image {

Result<PatchGrid> patch_grid(int64_t width, int64_t height, const ImageGeometry& geometry) {
  if (width <= 0 || height <= 0) {
    return invalid_argument("image: degenerate size " + std::to_string(width) + "x" + std::to_string(height));
  }
  if (geometry.patch_size <= 0 || geometry.max_image_size <= 0) {
    return invalid_argument("image: patch_size and max_image_size must be positive");
  }
  // ratio and the divisions in double, Python round() = ties to even (nearbyint in the default
  // rounding mode); mistral_common 1.13.1 clamps each side to >= 1 pixel (5000x1 -> 1024x1).
  const double max_size = static_cast<double>(geometry.max_image_size);
  const double ratio = std::max(static_cast<double>(height) / max_size, static_cast<double>(width) / max_size);
  int64_t w = width, h = height;
  if (ratio > 1.0) {
    w = std::max<int64_t>(static_cast<int64_t>(std::nearbyint(static_cast<double>(width) / ratio)), 1);
    h = std::max<int64_t>(static_cast<int64_t>(std::nearbyint(static_cast<double>(height) / ratio)), 1);
  }
  return PatchGrid{(h - 1) / geometry.patch_size + 1, (w - 1) / geometry.patch_size + 1};
}

Result<PixelTensor> preprocess(const RgbImage& image, const ImageGeometry& geometry) {
  PX_ASSIGN_OR_RETURN(PatchGrid grid, patch_grid(image.width, image.height, geometry));
  if (image.pixels.size() != static_cast<size_t>(image.width * image.height * 3)) {
    return invalid_argument("image: pixel buffer size does not match " + std::to_string(image.width) + "x" +
                            std::to_string(image.height) + "x3");
  }
  PixelTensor tensor;
  tensor.width = grid.cols * geometry.patch_size;
  tensor.height = grid.rows * geometry.patch_size;
  tensor.data.resize(static_cast<size_t>(3 * tensor.width * tensor.height));  // [3, H, W]
  detail::resize_normalize(image, tensor.width, tensor.height, tensor.data.data());
  return tensor;
}

}  // namespace pixtral::image
