// Exact OpenCV INTER_CUBIC (float32). Compiled with -ffp-contract=off: a fused multiply-add would
// change the last bit. ref: spec/inputs.md §5.2
#include "image/resize.h"

#include <cmath>
#include <functional>

#include "base/thread_pool.h"

namespace pixtral::image::detail {
namespace {

constexpr float kA = -0.75f;  // OpenCV's cubic coefficient

// CLIP constants as float32 (mistral_common casts them to the image dtype). ref: spec/model.md §3
constexpr float kMean[3] = {static_cast<float>(0.48145466), static_cast<float>(0.4578275),
                            static_cast<float>(0.40821073)};
constexpr float kStd[3] = {static_cast<float>(0.26862954), static_cast<float>(0.26130258),
                           static_cast<float>(0.27577711)};

// interpolateCubic in resize.cpp, evaluated in float32 in the same order.
void cubic_weights(float t, float* w) {
  const float t1 = t + 1.f, u = 1.f - t;
  w[0] = ((kA * t1 - 5.f * kA) * t1 + 8.f * kA) * t1 - 4.f * kA;
  w[1] = ((kA + 2.f) * t - (kA + 3.f)) * t * t + 1.f;
  w[2] = ((kA + 2.f) * u - (kA + 3.f)) * u * u + 1.f;
  w[3] = 1.f - w[0] - w[1] - w[2];
}

// The horizontal pass over one source row: [dst_width, 3] float32.
void horizontal_row(const uint8_t* row, const CubicAxis& ax, int64_t dst_width, float* out) {
  for (int64_t x = 0; x < dst_width; ++x) {
    const int32_t* t = &ax.taps[x * 4];
    const float* w = &ax.weights[x * 4];
    for (int c = 0; c < 3; ++c) {
      const float p0 = row[t[0] * 3 + c], p1 = row[t[1] * 3 + c], p2 = row[t[2] * 3 + c], p3 = row[t[3] * 3 + c];
      out[x * 3 + c] = ((p0 * w[0] + p1 * w[1]) + p2 * w[2]) + p3 * w[3];
    }
  }
}

// Output rows [y0, y1): keeps a window of horizontally resampled source rows (their vertical taps
// are non-decreasing in y) and calls emit(y, row) with the [dst_width * 3] resized row.
template <typename Emit>
void resize_rows(const RgbImage& image, const CubicAxis& ax, const CubicAxis& ay, int64_t dst_width, int64_t y0,
                 int64_t y1, Emit&& emit) {
  const size_t n = static_cast<size_t>(dst_width * 3);
  std::vector<float> cache(4 * n);       // [4, dst_width * 3]: slot = source row % 4
  int64_t cached[4] = {-1, -1, -1, -1};  // source row held by each slot
  std::vector<float> row(n);             // [dst_width * 3]
  for (int64_t y = y0; y < y1; ++y) {
    const float* q[4];
    for (int k = 0; k < 4; ++k) {
      const int32_t sy = ay.taps[y * 4 + k];
      const int slot = sy % 4;
      if (cached[slot] != sy) {
        horizontal_row(image.pixels.data() + sy * image.width * 3, ax, dst_width, &cache[slot * n]);
        cached[slot] = sy;
      }
      q[k] = &cache[slot * n];
    }
    const float* v = &ay.weights[y * 4];
    // VResizeCubicVec_32f's order (right-nested). ref: spec/inputs.md §5.2
    for (size_t i = 0; i < n; ++i) row[i] = q[0][i] * v[0] + (q[1][i] * v[1] + (q[2][i] * v[2] + q[3][i] * v[3]));
    emit(y, row.data());
  }
}

void run_parallel(int64_t rows, const std::function<void(int64_t, int64_t)>& fn) {
  base::ThreadPool::global().parallel_for(rows, fn, 16);
}

}  // namespace

CubicAxis cubic_axis(int64_t src, int64_t dst) {
  CubicAxis axis;
  axis.taps.resize(static_cast<size_t>(dst * 4));
  axis.weights.resize(static_cast<size_t>(dst * 4));
  const double inv_scale = static_cast<double>(dst) / static_cast<double>(src);
  const double scale = 1.0 / inv_scale;  // note 1/(D/S), as cv::resize computes it
  for (int64_t d = 0; d < dst; ++d) {
    float f = static_cast<float>((static_cast<double>(d) + 0.5) * scale - 0.5);
    const int64_t s = static_cast<int64_t>(std::floor(f));
    f -= static_cast<float>(s);
    cubic_weights(f, &axis.weights[d * 4]);
    for (int k = 0; k < 4; ++k) {
      const int64_t tap = std::clamp<int64_t>(s - 1 + k, 0, src - 1);
      axis.taps[d * 4 + k] = static_cast<int32_t>(tap);
    }
  }
  return axis;
}

void resize_normalize(const RgbImage& image, int64_t dst_width, int64_t dst_height, float* out) {
  const CubicAxis ax = cubic_axis(image.width, dst_width), ay = cubic_axis(image.height, dst_height);
  const int64_t plane = dst_width * dst_height;
  run_parallel(dst_height, [&](int64_t y0, int64_t y1) {
    resize_rows(image, ax, ay, dst_width, y0, y1, [&](int64_t y, const float* row) {
      for (int c = 0; c < 3; ++c) {
        float* o = out + c * plane + y * dst_width;
        for (int64_t x = 0; x < dst_width; ++x) o[x] = (row[x * 3 + c] / 255.f - kMean[c]) / kStd[c];
      }
    });
  });
}

std::vector<float> resize_cubic(const RgbImage& image, int64_t dst_width, int64_t dst_height) {
  const CubicAxis ax = cubic_axis(image.width, dst_width), ay = cubic_axis(image.height, dst_height);
  std::vector<float> out(static_cast<size_t>(dst_width * dst_height * 3));  // [H, W, 3]
  run_parallel(dst_height, [&](int64_t y0, int64_t y1) {
    resize_rows(image, ax, ay, dst_width, y0, y1, [&](int64_t y, const float* row) {
      std::copy(row, row + dst_width * 3, out.begin() + y * dst_width * 3);
    });
  });
  return out;
}

}  // namespace pixtral::image::detail
