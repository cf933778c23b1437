// Exact OpenCV INTER_CUBIC (float32). Compiled with -ffp-contract=off: a fused multiply-add would
// change the last bit. ref: spec/inputs.md §5.2
#include "image/resize.h"

#include <algorithm>
#include <cmath>

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
    for (int k = 0; k < 4; ++k) axis.taps[d * 4 + k] = static_cast<int32_t>(std::clamp<int64_t>(s - 1 + k, 0, src - 1));
  }
  return axis;
}

CubicResizer::CubicResizer(const uint8_t* src, int64_t src_w, int64_t src_h, int64_t dst_w, int64_t dst_h, float* out)
    : src_(src), src_w_(src_w), src_h_(src_h), dst_w_(dst_w), dst_h_(dst_h), out_(out),
      ax_(cubic_axis(src_w, dst_w)), ay_(cubic_axis(src_h, dst_h)), slot_(static_cast<size_t>(src_h), -1) {
  // No antialiasing: a large down-scale reads only the rows some output row taps.
  int64_t needed = 0;
  for (int32_t sy : ay_.taps) slot_[sy] = 0;
  for (auto& s : slot_) s = s == 0 ? needed++ : -1;
  hbuf_.resize(static_cast<size_t>(needed * dst_w * 3));
}

// HResizeCubic: ((p0*w0 + p1*w1) + p2*w2) + p3*w3 per channel.
void CubicResizer::horizontal(int64_t src_row) {
  if (slot_[src_row] < 0) return;
  const uint8_t* row = src_ + src_row * src_w_ * 3;
  float* out = &hbuf_[slot_[src_row] * dst_w_ * 3];
  for (int64_t x = 0; x < dst_w_; ++x) {
    const int32_t* t = &ax_.taps[x * 4];
    const float* w = &ax_.weights[x * 4];
    const uint8_t *a = row + t[0] * 3, *b = row + t[1] * 3, *c = row + t[2] * 3, *d = row + t[3] * 3;
    for (int ch = 0; ch < 3; ++ch) {
      out[x * 3 + ch] = ((float(a[ch]) * w[0] + float(b[ch]) * w[1]) + float(c[ch]) * w[2]) + float(d[ch]) * w[3];
    }
  }
}

// VResizeCubicVec_32f's right-nested order, then /255, -mean, /std in float32 into CHW.
void CubicResizer::vertical(int64_t y) {
  const int32_t* t = &ay_.taps[y * 4];
  const float* v = &ay_.weights[y * 4];
  const size_t n = static_cast<size_t>(dst_w_ * 3);
  const float *q0 = &hbuf_[slot_[t[0]] * n], *q1 = &hbuf_[slot_[t[1]] * n], *q2 = &hbuf_[slot_[t[2]] * n],
              *q3 = &hbuf_[slot_[t[3]] * n];
  const int64_t plane = dst_w_ * dst_h_;
  for (int64_t x = 0; x < dst_w_; ++x) {
    for (int ch = 0; ch < 3; ++ch) {
      const size_t i = static_cast<size_t>(x * 3 + ch);
      const float r = q0[i] * v[0] + (q1[i] * v[1] + (q2[i] * v[2] + q3[i] * v[3]));
      out_[ch * plane + y * dst_w_ + x] = (r / 255.f - kMean[ch]) / kStd[ch];
    }
  }
}

void CubicResizer::advance(int64_t rows_ready) {
  for (; next_src_ < rows_ready; ++next_src_) horizontal(next_src_);
  while (next_dst_ < dst_h_ && ay_.taps[next_dst_ * 4 + 3] < rows_ready) vertical(next_dst_++);
}

void CubicResizer::run_parallel() {
  auto& pool = base::ThreadPool::global();
  pool.parallel_for(src_h_, [&](int64_t a, int64_t b) { for (int64_t y = a; y < b; ++y) horizontal(y); }, 32);
  pool.parallel_for(dst_h_, [&](int64_t a, int64_t b) { for (int64_t y = a; y < b; ++y) vertical(y); }, 16);
  next_src_ = src_h_;
  next_dst_ = dst_h_;
}

}  // namespace pixtral::image::detail
