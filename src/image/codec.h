// Internal to src/image: one probe + decode pair per container format, and the pixel
// conversions Pillow applies on the way to RGB. ref: spec/inputs.md §5.1 steps 1-2
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "image/image.h"

namespace pixtral::image::detail {

enum class Format { kUnknown, kPng, kJpeg, kWebp, kGif, kBmp };

// From the leading magic bytes only.
Format detect_format(std::span<const uint8_t> bytes);
const char* format_name(Format format);

// Size checks every decoder runs on the header's dimensions before allocating pixels.
Status check_dimensions(int64_t width, int64_t height, const DecodeLimits& limits, std::string_view format);

Result<ImageInfo> probe_png(std::span<const uint8_t> bytes);
Result<ImageInfo> probe_jpeg(std::span<const uint8_t> bytes);
Result<ImageInfo> probe_webp(std::span<const uint8_t> bytes);
Result<ImageInfo> probe_gif(std::span<const uint8_t> bytes);
Result<ImageInfo> probe_bmp(std::span<const uint8_t> bytes);

Result<RgbImage> decode_png(std::span<const uint8_t> bytes, const DecodeLimits& limits);
// progress (optional) is called with the image and the number of rows decoded so far, as rows
// arrive; image.pixels is allocated before the first call and never moves afterwards.
using RowProgress = std::function<void(const RgbImage& image, int64_t rows_done)>;
Result<RgbImage> decode_jpeg(std::span<const uint8_t> bytes, const DecodeLimits& limits,
                             const RowProgress& progress = nullptr);
Result<RgbImage> decode_webp(std::span<const uint8_t> bytes, const DecodeLimits& limits);
Result<RgbImage> decode_gif(std::span<const uint8_t> bytes, const DecodeLimits& limits);
Result<RgbImage> decode_bmp(std::span<const uint8_t> bytes, const DecodeLimits& limits);

// mistral_common pastes every non-RGB image onto opaque white with its own alpha as mask; Pillow's
// paste computes per channel DIV255(255*(255-a) + c*a) with DIV255(x) = ((x+128) + ((x+128)>>8)) >> 8.
// ref: spec/inputs.md §5.1 step 2
inline uint8_t over_white(uint32_t c, uint32_t a) {
  const uint32_t u = 255u * (255u - a) + c * a + 128u;
  return static_cast<uint8_t>((u + (u >> 8)) >> 8);
}

// Pillow's MULDIV255(a, b): (v + (v >> 8)) >> 8 with v = a*b + 128.
inline uint32_t muldiv255(uint32_t a, uint32_t b) {
  const uint32_t v = a * b + 128u;
  return (v + (v >> 8)) >> 8;
}

// Pillow's cmyk2rgb on Pillow's (already inverted, "CMYK;I") CMYK values; the result is never
// negative so Pillow's CLIP8 is a no-op. ref: spec/inputs.md §5.1 step 2
inline void cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb) {
  const uint32_t nk = 255u - cmyk[3];
  for (int i = 0; i < 3; ++i) rgb[i] = static_cast<uint8_t>(nk - muldiv255(cmyk[i], nk));
}

// Reads a little/big-endian integer; the caller has checked the bounds.
inline uint32_t read_le16(const uint8_t* p) { return p[0] | (p[1] << 8); }
inline uint32_t read_le32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint32_t read_be16(const uint8_t* p) { return (p[0] << 8) | p[1]; }
inline uint32_t read_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}

}  // namespace pixtral::image::detail
