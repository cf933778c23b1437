// Parallel decoder for baseline (sequential, Huffman, 8-bit) JPEGs, bit-exact with libjpeg-turbo's
// default decode (what Pillow produces). The entropy-coded segment is split into one chunk per
// thread or so: at restart markers when the file has them, else anywhere, each chunk decoding
// speculatively from its first bit until the previous chunk's decoder reaches one of its block
// starts in the same state (self-synchronisation of Huffman codes; Weissenberger & Schmidt,
// ICPP 2018; jpeg_entropy.h). IDCT, upsampling and colour conversion then run over the thread pool
// (jpeg_kernels.h). Anything unusual -- other JPEG flavours, corrupt or truncated data, markers
// inside the scan, coefficients outside the range where libjpeg's C and SIMD IDCTs agree --
// makes it decline, and the caller uses libjpeg (decode_jpeg), so output and errors are
// unchanged. ref: spec/inputs.md §5.1 step 1
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "image/image.h"

namespace pixtral::image::detail {

struct JpegDecodeStats {
  int chunks = 0;               // entropy chunks used
  bool restart_markers = false;  // chunks at restart intervals (no speculation)
  int64_t blocks = 0;            // blocks in the scan (MCU padding included)
  int64_t resync_blocks = 0;     // blocks decoded twice: past a chunk's end until the next was in sync
  int skipped_chunks = 0;        // chunks that never got in sync (their data decoded by an earlier one)
  const char* declined = nullptr;  // why libjpeg has to decode it (null when handled)
};

// A large scratch buffer. Freed ones are kept (up to a bound) and handed out again: a fresh page
// costs a page fault and its zeroing, ~25 ms for the ~60 MB a 12-megapixel JPEG needs here.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  explicit ScratchBuffer(size_t bytes);
  ScratchBuffer(ScratchBuffer&& other) noexcept : data_(other.data_), size_(other.size_) { other.data_ = nullptr; }
  ScratchBuffer& operator=(ScratchBuffer&& other) noexcept;
  ~ScratchBuffer();
  uint8_t* data() const { return data_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;  // capacity
};

// The decoded component planes of an image, ready for colour conversion.
class JpegPlanes {
 public:
  int64_t width = 0, height = 0;
  // RGB rows [y0, y1) into out (width * 3 bytes a row); any thread, concurrently.
  void rgb_rows(int64_t y0, int64_t y1, uint8_t* out) const;

  struct Plane {
    ScratchBuffer data;
    int64_t stride = 0, width = 0, height = 0;  // width/height: libjpeg's downsampled size
    const uint8_t* row(int64_t y) const { return data.data() + y * stride; }
  };
  int components = 0;
  int layout = 0;  // jpeg::Chroma
  std::array<Plane, 3> planes;
};

// chunks: entropy chunks (0: two per thread of the global pool). nullptr when declined.
std::unique_ptr<JpegPlanes> decode_jpeg_planes(std::span<const uint8_t> bytes, int chunks = 0,
                                               JpegDecodeStats* stats = nullptr);
// decode_jpeg_planes + rgb_rows over the thread pool.
std::optional<RgbImage> decode_jpeg_parallel(std::span<const uint8_t> bytes, int chunks = 0,
                                             JpegDecodeStats* stats = nullptr);

}  // namespace pixtral::image::detail
