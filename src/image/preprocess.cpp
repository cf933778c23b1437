// Token grid and pixel tensor, as mistral_common 1.13.1's ImageEncoder computes them.
// ref: spec/model.md §3; spec/inputs.md §4, §5.1
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "image/codec.h"
#include "image/image.h"
#include "image/jpeg_parallel.h"
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
  detail::CubicResizer(image.pixels.data(), image.width, image.height, tensor.width, tensor.height, tensor.data.data())
      .run_parallel();
  return tensor;
}

namespace {

// JPEG: the parallel decoder when it takes the file (entropy decoding and IDCT over the thread
// pool, then the colour conversion done row by row inside the parallel resize, so the RGB image
// is never materialised); else libjpeg, this thread publishing how many rows are ready and a
// worker thread running the resize on them meanwhile. Both equal decode_image + preprocess.
Result<PreprocessedImage> decode_and_preprocess_jpeg(std::span<const uint8_t> bytes, const ImageGeometry& geometry,
                                                     const DecodeLimits& limits) {
  PX_ASSIGN_OR_RETURN(ImageInfo info, detail::probe_jpeg(bytes));
  PX_RETURN_IF_ERROR(detail::check_dimensions(info.width, info.height, limits, "jpeg"));
  PreprocessedImage result{info.width, info.height, {}, {}};
  PX_ASSIGN_OR_RETURN(result.grid, patch_grid(info.width, info.height, geometry));
  PixelTensor& t = result.pixels;
  t.width = result.grid.cols * geometry.patch_size;
  t.height = result.grid.rows * geometry.patch_size;
  t.data.resize(static_cast<size_t>(3 * t.width * t.height));  // [3, H, W]

  if (std::unique_ptr<detail::JpegPlanes> planes = detail::decode_jpeg_planes(bytes)) {
    if (planes->width != info.width || planes->height != info.height) {
      return invalid_argument("jpeg: frame size differs from the first SOF header");
    }
    const detail::JpegPlanes& p = *planes;
    detail::CubicResizer([&p](int64_t y, uint8_t* row) { p.rgb_rows(y, y + 1, row); }, info.width, info.height,
                         t.width, t.height, t.data.data())
        .run_parallel();
    return result;
  }

  std::mutex mutex;
  std::condition_variable cv;
  // The decoder's pixel buffer: allocated once before the first rows and only moved (never
  // reallocated) into the returned Result, so the pointer stays valid until `rgb` dies.
  const uint8_t* source = nullptr;
  int64_t ready = 0;
  bool finished = false;
  std::thread worker([&] {
    std::unique_ptr<detail::CubicResizer> resizer;
    int64_t done = 0;
    for (;;) {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return finished || ready > done; });
      const int64_t n = ready;
      const bool last = finished;
      lock.unlock();
      if (n > done) {
        if (!resizer) {
          resizer = std::make_unique<detail::CubicResizer>(source, info.width, info.height, t.width,
                                                           t.height, t.data.data());
        }
        resizer->advance(n);
        done = n;
      }
      if (last) return;
    }
  });
  auto rgb = detail::decode_jpeg(bytes, limits, [&](const RgbImage& image, int64_t rows) {
    if (image.width != info.width || image.height != info.height) return;  // not the SOF we probed: error below
    std::lock_guard lock(mutex);
    source = image.pixels.data();
    ready = rows;
    cv.notify_one();
  });
  {
    std::lock_guard lock(mutex);
    finished = true;
  }
  cv.notify_one();
  worker.join();
  if (!rgb.is_ok()) return rgb.status();
  if (rgb->width != info.width || rgb->height != info.height) return invalid_argument("jpeg: frame size changed while decoding");
  return result;
}

}  // namespace

Result<PreprocessedImage> decode_and_preprocess(std::span<const uint8_t> bytes, const ImageGeometry& geometry,
                                                const DecodeLimits& limits) {
  if (bytes.size() > limits.max_encoded_bytes) return decode_image(bytes, limits).status();
  if (detail::detect_format(bytes) == detail::Format::kJpeg) return decode_and_preprocess_jpeg(bytes, geometry, limits);
  PX_ASSIGN_OR_RETURN(RgbImage rgb, decode_image(bytes, limits));
  PreprocessedImage result{rgb.width, rgb.height, {}, {}};
  PX_ASSIGN_OR_RETURN(result.grid, patch_grid(rgb.width, rgb.height, geometry));
  PX_ASSIGN_OR_RETURN(result.pixels, preprocess(rgb, geometry));
  return result;
}

}  // namespace pixtral::image
