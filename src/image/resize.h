// OpenCV INTER_CUBIC on float32, reproduced bit for bit (OpenCV's generic C++ path, no IPP), fused
// with mistral_common's float32 normalization and the HWC -> CHW transpose.
// ref: spec/inputs.md §5.2, §5.1 steps 3-5
#pragma once

#include <cstdint>
#include <functional>
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

// Resize + normalize of a uint8 RGB image [src_h, src_w, 3] into out [3, dst_h, dst_w] as
// ((v / 255) - mean) / std in float32. Source rows may arrive progressively (a decoder filling
// `src` top to bottom): advance(n) does all the work that needs only rows < n.
class CubicResizer {
 public:
  CubicResizer(const uint8_t* src, int64_t src_w, int64_t src_h, int64_t dst_w, int64_t dst_h, float* out);
  // Source rows produced on demand instead (e.g. colour-converted from decoded JPEG planes):
  // source(y, row) writes row y, src_w * 3 bytes; it may be called from several threads at once.
  using RowSource = std::function<void(int64_t y, uint8_t* row)>;
  CubicResizer(RowSource source, int64_t src_w, int64_t src_h, int64_t dst_w, int64_t dst_h, float* out);
  // Single caller at a time; n must not decrease.
  void advance(int64_t rows_ready);
  // The whole image at once, split over the global thread pool.
  void run_parallel();

 private:
  // 4 horizontally resampled source rows; slot = source row % 4 (an output row's 4 taps are
  // consecutive rows, clamped duplicates being the same row, so they never collide).
  struct Ring {
    std::vector<float> rows;  // [4, dst_w * 3 + 4] (+4: slack for the last 4-lane store)
    int64_t held[4] = {-1, -1, -1, -1};
    std::vector<uint8_t> source_row;  // RowSource output, src_w * 3 (+ slack)
  };
  Ring make_ring() const;
  void horizontal(int64_t src_row, float* out, Ring& ring) const;
  void output_row(int64_t dst_row, Ring& ring) const;

  const uint8_t* src_;
  RowSource source_;
  int64_t src_w_, src_h_, dst_w_, dst_h_;
  float* out_;
  CubicAxis ax_, ay_;
  Ring ring_;  // for advance()
  int64_t next_dst_ = 0;
};

}  // namespace pixtral::image::detail
