// OpenCV INTER_CUBIC on float32, reproduced bit for bit (OpenCV's generic C++ path, no IPP), fused
// with mistral_common's float32 normalization and the HWC -> CHW transpose.
// ref: spec/inputs.md §5.2, §5.1 steps 3-5
#pragma once

#include <cstdint>
#include <vector>

#include "image/image.h"

namespace pixtral::image::detail {

// One axis of the cubic resampler: for each destination index, the 4 clamped source taps and
// their float32 weights, computed exactly as cv::resize does.
struct CubicAxis {
  std::vector<int32_t> taps;    // [dst, 4] source indices, clamped to [0, src-1]
  std::vector<float> weights;   // [dst, 4]
};
CubicAxis cubic_axis(int64_t src, int64_t dst);

// Resizes `image` to dst_width x dst_height (float32 maths of cv::resize on the uint8 values as
// float32), then writes ((v / 255) - mean) / std in float32 per channel as [3, H, W].
// Rows are split over the global thread pool.
void resize_normalize(const RgbImage& image, int64_t dst_width, int64_t dst_height, float* out);

// The plain resize, [dst_height, dst_width, 3] float32 values on the 0..255 scale (for tests).
std::vector<float> resize_cubic(const RgbImage& image, int64_t dst_width, int64_t dst_height);

}  // namespace pixtral::image::detail
