// BMP: a small reader for what Pillow's BmpImagePlugin reads without RLE: 1/4/8-bit palettes,
// 24-bit BGR, 32-bit BGRX (BI_RGB: alpha ignored, Pillow's USE_RAW_ALPHA is off) and 32-bit
// BITFIELDS layouts (with an alpha mask -> pasted onto white). ref: spec/inputs.md §5.1
#include <array>
#include <string>

#include "image/codec.h"

namespace pixtral::image::detail {
namespace {

constexpr uint32_t kBiRgb = 0, kBiBitfields = 3;

struct BmpHeader {
  int64_t width = 0, height = 0;
  bool top_down = false;
  uint32_t bits = 0, compression = 0, colors = 0, header_size = 0, offset = 0;
  uint32_t masks[4] = {0, 0, 0, 0};  // R, G, B, A
};

Result<BmpHeader> parse_header(std::span<const uint8_t> b) {
  if (b.size() < 26) return invalid_argument("bmp: truncated file header");
  BmpHeader h;
  h.offset = read_le32(&b[10]);
  h.header_size = read_le32(&b[14]);
  if (h.header_size == 12) {  // OS/2 BITMAPCOREHEADER
    h.width = read_le16(&b[18]);
    h.height = read_le16(&b[20]);
    h.bits = read_le16(&b[24]);
    return h;
  }
  if (h.header_size < 40 || b.size() < 14 + 40) return invalid_argument("bmp: truncated or unsupported info header");
  h.width = static_cast<int32_t>(read_le32(&b[18]));
  const int32_t height = static_cast<int32_t>(read_le32(&b[22]));
  h.top_down = height < 0;
  h.height = height < 0 ? -static_cast<int64_t>(height) : height;
  h.bits = read_le16(&b[28]);
  h.compression = read_le32(&b[30]);
  h.colors = read_le32(&b[46]);
  if (h.compression == kBiBitfields) {
    const size_t at = 54;  // masks follow a 40-byte header, or sit inside V4/V5 headers
    if (b.size() < at + 16) return invalid_argument("bmp: truncated bitfield masks");
    for (int i = 0; i < 4; ++i) h.masks[i] = read_le32(&b[at + 4 * i]);
    if (h.header_size == 40) h.masks[3] = 0;
  }
  return h;
}

// Byte offset of each channel for the 32-bit layouts handled; alpha < 0: none.
Result<std::array<int, 4>> channel_offsets(const BmpHeader& h) {
  if (h.compression == kBiRgb) return std::array<int, 4>{2, 1, 0, -1};
  const uint32_t* m = h.masks;
  if (m[0] == 0xFF0000 && m[1] == 0xFF00 && m[2] == 0xFF) return std::array<int, 4>{2, 1, 0, m[3] == 0xFF000000 ? 3 : -1};
  if (m[0] == 0xFF && m[1] == 0xFF00 && m[2] == 0xFF0000 && m[3] == 0xFF000000) return std::array<int, 4>{0, 1, 2, 3};
  if (m[0] == 0 && m[1] == 0 && m[2] == 0 && m[3] == 0) return std::array<int, 4>{2, 1, 0, 3};
  return unimplemented("bmp: unsupported bitfields layout");
}

}  // namespace

Result<ImageInfo> probe_bmp(std::span<const uint8_t> bytes) {
  PX_ASSIGN_OR_RETURN(BmpHeader h, parse_header(bytes));
  return ImageInfo{"bmp", h.width, h.height};
}

Result<RgbImage> decode_bmp(std::span<const uint8_t> b, const DecodeLimits& limits) {
  PX_ASSIGN_OR_RETURN(BmpHeader h, parse_header(b));
  PX_RETURN_IF_ERROR(check_dimensions(h.width, h.height, limits, "bmp"));
  const bool palette = h.bits == 1 || h.bits == 4 || h.bits == 8;
  if (!palette && h.bits != 24 && h.bits != 32) {
    return unimplemented("bmp: " + std::to_string(h.bits) + "-bit pixels are not supported");
  }
  if (h.compression != kBiRgb && !(h.compression == kBiBitfields && h.bits == 32)) {
    return unimplemented("bmp: compression " + std::to_string(h.compression) + " is not supported");
  }
  std::array<int, 4> offsets{2, 1, 0, -1};
  if (h.bits == 32) { PX_ASSIGN_OR_RETURN(offsets, channel_offsets(h)); }
  // Palette: BGRX entries after the info header (BGR for the OS/2 header); missing ones are black.
  std::vector<uint8_t> pal(256 * 3, 0);  // [256, 3] RGB
  if (palette) {
    const size_t entry = h.header_size == 12 ? 3 : 4;
    const uint32_t n = h.colors ? h.colors : (1u << h.bits);
    const size_t start = 14 + h.header_size;
    for (uint32_t i = 0; i < n && i < 256; ++i) {
      if (start + (i + 1) * entry > b.size()) return invalid_argument("bmp: truncated palette");
      for (int c = 0; c < 3; ++c) pal[i * 3 + c] = b[start + i * entry + 2 - c];
    }
  }
  const size_t stride = ((static_cast<size_t>(h.width) * h.bits + 31) >> 3) & ~size_t{3};
  if (h.offset > b.size() || (b.size() - h.offset) / stride < static_cast<size_t>(h.height)) {
    return invalid_argument("bmp: file is truncated (pixel data shorter than the header says)");
  }
  RgbImage image{h.width, h.height, std::vector<uint8_t>(static_cast<size_t>(h.width * h.height * 3))};
  for (int64_t y = 0; y < h.height; ++y) {
    const uint8_t* row = b.data() + h.offset + stride * (h.top_down ? y : h.height - 1 - y);
    uint8_t* out = image.pixels.data() + y * h.width * 3;
    for (int64_t x = 0; x < h.width; ++x, out += 3) {
      if (palette) {
        const int per_byte = 8 / h.bits;
        const int shift = 8 - h.bits * (1 + static_cast<int>(x % per_byte));
        const uint32_t index = (row[x / per_byte] >> shift) & ((1u << h.bits) - 1);
        for (int c = 0; c < 3; ++c) out[c] = pal[index * 3 + c];
      } else {
        const uint8_t* p = row + x * (h.bits / 8);
        const uint32_t a = offsets[3] >= 0 ? p[offsets[3]] : 255;
        for (int c = 0; c < 3; ++c) out[c] = over_white(p[offsets[c]], a);
      }
    }
  }
  return image;
}

}  // namespace pixtral::image::detail
