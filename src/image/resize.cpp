// Exact OpenCV INTER_CUBIC (float32). Compiled with -ffp-contract=off: a fused multiply-add would
// change the last bit. ref: spec/inputs.md §5.2
#include "image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
      ax_(cubic_axis(src_w, dst_w)), ay_(cubic_axis(src_h, dst_h)), ring_(make_ring()) {}

CubicResizer::CubicResizer(RowSource source, int64_t src_w, int64_t src_h, int64_t dst_w, int64_t dst_h, float* out)
    : src_(nullptr), source_(std::move(source)), src_w_(src_w), src_h_(src_h), dst_w_(dst_w), dst_h_(dst_h),
      out_(out), ax_(cubic_axis(src_w, dst_w)), ay_(cubic_axis(src_h, dst_h)), ring_(make_ring()) {}

CubicResizer::Ring CubicResizer::make_ring() const {
  Ring ring;
  ring.rows.resize(static_cast<size_t>(4 * (dst_w_ * 3 + 4)));
  if (source_) ring.source_row.resize(static_cast<size_t>(src_w_ * 3 + 64));
  return ring;
}

// HResizeCubic: ((p0*w0 + p1*w1) + p2*w2) + p3*w3 per channel. The SSE2 path computes the same
// IEEE operations in the same order on (R, G, B, next R) lanes and drops the fourth lane; the
// last column goes through the scalar path so no read passes the end of the row.
void CubicResizer::horizontal(int64_t src_row, float* out, Ring& ring) const {
  const uint8_t* row;
  if (source_) {
    source_(src_row, ring.source_row.data());
    row = ring.source_row.data();
  } else {
    row = src_ + src_row * src_w_ * 3;
  }
  int64_t x = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  auto load = [&](int32_t tap) {
    int32_t bytes;
    std::memcpy(&bytes, row + tap * 3, 4);
    const __m128i v = _mm_unpacklo_epi8(_mm_cvtsi32_si128(bytes), zero);
    return _mm_cvtepi32_ps(_mm_unpacklo_epi16(v, zero));
  };
  for (; x < dst_w_; ++x) {
    const int32_t* t = &ax_.taps[x * 4];
    if (t[3] == src_w_ - 1) break;  // a 4-byte load at the last pixel would leave the row
    const float* w = &ax_.weights[x * 4];
    __m128 acc = _mm_mul_ps(load(t[0]), _mm_set1_ps(w[0]));
    acc = _mm_add_ps(acc, _mm_mul_ps(load(t[1]), _mm_set1_ps(w[1])));
    acc = _mm_add_ps(acc, _mm_mul_ps(load(t[2]), _mm_set1_ps(w[2])));
    acc = _mm_add_ps(acc, _mm_mul_ps(load(t[3]), _mm_set1_ps(w[3])));
    _mm_storeu_ps(out + x * 3, acc);  // lane 3 is overwritten by the next column (rows have slack)
  }
#endif
  for (; x < dst_w_; ++x) {
    const int32_t* t = &ax_.taps[x * 4];
    const float* w = &ax_.weights[x * 4];
    const uint8_t *a = row + t[0] * 3, *b = row + t[1] * 3, *c = row + t[2] * 3, *d = row + t[3] * 3;
    for (int ch = 0; ch < 3; ++ch) {
      out[x * 3 + ch] = ((float(a[ch]) * w[0] + float(b[ch]) * w[1]) + float(c[ch]) * w[2]) + float(d[ch]) * w[3];
    }
  }
}

// VResizeCubicVec_32f's right-nested order over the interleaved row, then /255, -mean, /std in
// float32 per channel into CHW.
void CubicResizer::output_row(int64_t y, Ring& ring) const {
  const int32_t* t = &ay_.taps[y * 4];
  const float v0 = ay_.weights[y * 4], v1 = ay_.weights[y * 4 + 1], v2 = ay_.weights[y * 4 + 2],
              v3 = ay_.weights[y * 4 + 3];
  const size_t stride = static_cast<size_t>(dst_w_ * 3 + 4), n = static_cast<size_t>(dst_w_ * 3);
  const float* q[4];
  for (int k = 0; k < 4; ++k) {
    const int slot = t[k] % 4;
    if (ring.held[slot] != t[k]) {
      horizontal(t[k], &ring.rows[slot * stride], ring);
      ring.held[slot] = t[k];
    }
    q[k] = &ring.rows[slot * stride];
  }
  const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
  thread_local std::vector<float> row;  // [dst_w * 3]
  row.resize(n);
  for (size_t i = 0; i < n; ++i) row[i] = q0[i] * v0 + (q1[i] * v1 + (q2[i] * v2 + q3[i] * v3));
  const int64_t plane = dst_w_ * dst_h_;
  for (int ch = 0; ch < 3; ++ch) {
    float* o = out_ + ch * plane + y * dst_w_;
    const float mean = kMean[ch], std = kStd[ch];
    for (int64_t x = 0; x < dst_w_; ++x) o[x] = (row[x * 3 + ch] / 255.f - mean) / std;
  }
}

void CubicResizer::advance(int64_t rows_ready) {
  while (next_dst_ < dst_h_ && ay_.taps[next_dst_ * 4 + 3] < rows_ready) output_row(next_dst_++, ring_);
}

void CubicResizer::run_parallel() {
  base::ThreadPool::global().parallel_for(dst_h_, [&](int64_t a, int64_t b) {
    Ring ring = make_ring();
    for (int64_t y = a; y < b; ++y) output_row(y, ring);
  }, 16);
  next_dst_ = dst_h_;
}

}  // namespace pixtral::image::detail
