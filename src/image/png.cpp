// PNG through libpng with no colour transforms but unpacking, then Pillow's per-mode rules:
// sub-byte grey is scaled, 16-bit grey is clipped (I;16 -> L), other 16-bit modes keep the high
// byte, palette/tRNS/alpha are pasted onto white; RGB ignores tRNS. ref: spec/inputs.md §5.1
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <string>

#include "image/codec.h"

namespace pixtral::image::detail {
namespace {

struct MemReader {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
};

struct PngError {
  char message[200] = "";
};

void read_fn(png_structp png, png_bytep out, size_t n) {
  auto* r = static_cast<MemReader*>(png_get_io_ptr(png));
  if (n > r->bytes.size() - r->pos) png_error(png, "file is truncated");
  std::memcpy(out, r->bytes.data() + r->pos, n);
  r->pos += n;
}

void error_fn(png_structp png, png_const_charp msg) {
  auto* e = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof e->message, "%s", msg);
  png_longjmp(png, 1);
}
void warning_fn(png_structp, png_const_charp) {}

// The per-pixel rule for one PNG colour type / bit depth (Pillow's mode), applied to a row.
struct RowRule {
  int color_type = 0, depth = 8;
  std::vector<uint8_t> palette;  // [256, 4] RGBA; Pillow fills missing entries with opaque black
  bool has_trns = false;
  uint32_t trns_grey = 0;  // grey tRNS as Pillow stores it (raw sample; 1-bit: 0 or 255)

  void convert(const uint8_t* in, uint8_t* out, int64_t width) const;
};

uint8_t grey_value(const uint8_t* in, int64_t x, int depth) {
  switch (depth) {
    case 1: return in[x] ? 255 : 0;
    case 2: return static_cast<uint8_t>(in[x] * 85);
    case 4: return static_cast<uint8_t>(in[x] * 17);
    case 8: return in[x];
    default: {  // I;16 -> L clips instead of scaling
      const uint32_t v = read_be16(in + 2 * x);
      return static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

void RowRule::convert(const uint8_t* in, uint8_t* out, int64_t width) const {
  const int step = depth == 16 ? 2 : 1;  // 16-bit samples: Pillow keeps the high (first) byte
  for (int64_t x = 0; x < width; ++x, out += 3) {
    switch (color_type) {
      case PNG_COLOR_TYPE_GRAY: {
        const uint8_t v = grey_value(in, x, depth);
        const bool transparent = has_trns && v == trns_grey;
        out[0] = out[1] = out[2] = transparent ? 255 : v;
        break;
      }
      case PNG_COLOR_TYPE_RGB:
        for (int c = 0; c < 3; ++c) out[c] = in[(x * 3 + c) * step];
        break;
      case PNG_COLOR_TYPE_PALETTE: {
        const uint8_t* p = &palette[in[x] * 4];
        for (int c = 0; c < 3; ++c) out[c] = over_white(p[c], p[3]);
        break;
      }
      case PNG_COLOR_TYPE_GRAY_ALPHA: {
        const uint8_t v = over_white(in[x * 2 * step], in[(x * 2 + 1) * step]);
        out[0] = out[1] = out[2] = v;
        break;
      }
      default: {  // RGBA
        const uint8_t a = in[(x * 4 + 3) * step];
        for (int c = 0; c < 3; ++c) out[c] = over_white(in[(x * 4 + c) * step], a);
        break;
      }
    }
  }
}

RowRule make_rule(png_structp png, png_infop info) {
  RowRule rule;
  rule.color_type = png_get_color_type(png, info);
  rule.depth = png_get_bit_depth(png, info);
  if (rule.color_type == PNG_COLOR_TYPE_PALETTE) {
    rule.palette.assign(256 * 4, 0);
    for (int i = 0; i < 256; ++i) rule.palette[i * 4 + 3] = 255;
    png_colorp colors = nullptr;
    int n = 0;
    if (png_get_PLTE(png, info, &colors, &n)) {
      for (int i = 0; i < n && i < 256; ++i) {
        rule.palette[i * 4 + 0] = colors[i].red;
        rule.palette[i * 4 + 1] = colors[i].green;
        rule.palette[i * 4 + 2] = colors[i].blue;
      }
    }
  }
  png_bytep alpha = nullptr;
  int n_alpha = 0;
  png_color_16p grey = nullptr;
  if (png_get_tRNS(png, info, &alpha, &n_alpha, &grey)) {
    if (rule.color_type == PNG_COLOR_TYPE_PALETTE) {
      for (int i = 0; i < n_alpha && i < 256; ++i) rule.palette[i * 4 + 3] = alpha[i];
    } else if (rule.color_type == PNG_COLOR_TYPE_GRAY && grey) {
      rule.has_trns = true;
      rule.trns_grey = rule.depth == 1 ? (grey->gray ? 255 : 0) : grey->gray;
    }
  }
  return rule;
}

// Scratch rows owned by the caller: libpng longjmps out of these frames on an error, which would
// skip the destructor of any buffer living in them.
struct PngScratch {
  std::vector<uint8_t> raw;      // [h, row_bytes] (interlaced) or [row_bytes]
  std::vector<png_bytep> rows;   // [h] (interlaced)
};

// Everything that runs between setjmp and the end of decoding; returns false on a libpng error.
bool decode_rows(png_structp png, png_infop info, const RowRule& rule, RgbImage& image, PngScratch& scratch) {
  if (setjmp(png_jmpbuf(png))) return false;
  if (rule.depth < 8) png_set_packing(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  const int64_t w = image.width, h = image.height;
  if (passes > 1) {
    scratch.raw.resize(row_bytes * static_cast<size_t>(h));
    scratch.rows.resize(static_cast<size_t>(h));
    for (int64_t y = 0; y < h; ++y) scratch.rows[y] = scratch.raw.data() + y * row_bytes;
    png_read_image(png, scratch.rows.data());
    for (int64_t y = 0; y < h; ++y) rule.convert(scratch.rows[y], image.pixels.data() + y * w * 3, w);
  } else {
    scratch.raw.resize(row_bytes);
    for (int64_t y = 0; y < h; ++y) {
      png_read_row(png, scratch.raw.data(), nullptr);
      rule.convert(scratch.raw.data(), image.pixels.data() + y * w * 3, w);
    }
  }
  png_read_end(png, nullptr);
  return true;
}

// Header and pixels; returns false after a libpng error (longjmp lands here).
bool read_png(png_structp png, png_infop info, MemReader& reader, const DecodeLimits& limits, RgbImage& image,
              PngScratch& scratch) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, &reader, read_fn);
  png_set_user_limits(png, static_cast<png_uint_32>(limits.max_side), static_cast<png_uint_32>(limits.max_side));
  png_read_info(png, info);
  image.width = png_get_image_width(png, info);
  image.height = png_get_image_height(png, info);
  image.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  return decode_rows(png, info, make_rule(png, info), image, scratch);
}

}  // namespace

Result<ImageInfo> probe_png(std::span<const uint8_t> bytes) {
  // Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4).
  if (bytes.size() < 24 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) {
    return invalid_argument("png: truncated or missing IHDR header");
  }
  return ImageInfo{"png", read_be32(bytes.data() + 16), read_be32(bytes.data() + 20)};
}

Result<RgbImage> decode_png(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  PX_ASSIGN_OR_RETURN(ImageInfo header, probe_png(bytes));
  PX_RETURN_IF_ERROR(check_dimensions(header.width, header.height, limits, "png"));
  PngError error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, error_fn, warning_fn);
  if (!png) return resource_exhausted("png: cannot create decoder");
  png_infop info = png_create_info_struct(png);
  MemReader reader{bytes, 0};
  RgbImage image;
  PngScratch scratch;
  const bool ok = info && read_png(png, info, reader, limits, image, scratch);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!ok) return invalid_argument(std::string("png: corrupt or truncated file: ") + error.message);
  return image;
}

}  // namespace pixtral::image::detail
