// Format detection, limits and dispatch to the per-format decoders. ref: spec/inputs.md §5.1, §6
#include <cstring>
#include <fstream>

#include "image/codec.h"

namespace pixtral::image {
namespace detail {

Format detect_format(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t offset = 0) {
    const size_t n = std::strlen(magic);
    return b.size() >= offset + n && std::memcmp(b.data() + offset, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n")) return Format::kPng;
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format::kJpeg;
  if (starts("RIFF") && starts("WEBP", 8)) return Format::kWebp;
  if (starts("GIF87a") || starts("GIF89a")) return Format::kGif;
  if (starts("BM")) return Format::kBmp;
  return Format::kUnknown;
}

const char* format_name(Format format) {
  switch (format) {
    case Format::kPng: return "png";
    case Format::kJpeg: return "jpeg";
    case Format::kWebp: return "webp";
    case Format::kGif: return "gif";
    case Format::kBmp: return "bmp";
    case Format::kUnknown: break;
  }
  return "unknown";
}

Status check_dimensions(int64_t width, int64_t height, const DecodeLimits& limits, std::string_view format) {
  const std::string where = std::string(format) + " header: ";
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0) return invalid_argument(where + "degenerate image size " + size);
  if (width > limits.max_side || height > limits.max_side) {
    return out_of_range(where + "image size " + size + " exceeds the maximum side of " +
                        std::to_string(limits.max_side) + " pixels");
  }
  if (width * height > limits.max_pixels) {
    return out_of_range(where + "image size " + size + " exceeds the maximum of " +
                        std::to_string(limits.max_pixels) + " pixels");
  }
  return Status::ok();
}

}  // namespace detail

Result<RgbImage> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  using detail::Format;
  if (bytes.size() > limits.max_encoded_bytes) {
    return out_of_range("image: encoded size " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                        std::to_string(limits.max_encoded_bytes));
  }
  switch (detail::detect_format(bytes)) {
    case Format::kPng: return detail::decode_png(bytes, limits);
    case Format::kJpeg: return detail::decode_jpeg(bytes, limits);
    case Format::kWebp: return detail::decode_webp(bytes, limits);
    case Format::kGif: return detail::decode_gif(bytes, limits);
    case Format::kBmp: return detail::decode_bmp(bytes, limits);
    case Format::kUnknown: break;
  }
  return unimplemented("image: unsupported or unrecognized format (expected PNG, JPEG, WebP, GIF or BMP)");
}

Result<ImageInfo> probe_image(std::span<const uint8_t> bytes) {
  using detail::Format;
  switch (detail::detect_format(bytes)) {
    case Format::kPng: return detail::probe_png(bytes);
    case Format::kJpeg: return detail::probe_jpeg(bytes);
    case Format::kWebp: return detail::probe_webp(bytes);
    case Format::kGif: return detail::probe_gif(bytes);
    case Format::kBmp: return detail::probe_bmp(bytes);
    case Format::kUnknown: break;
  }
  return unimplemented("image: unsupported or unrecognized format (expected PNG, JPEG, WebP, GIF or BMP)");
}

Result<RgbImage> load_image_file(const std::string& path, const DecodeLimits& limits) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return not_found("image: cannot open " + path);
  const std::streamoff size = in.tellg();
  if (size < 0) return io_error("image: cannot read " + path);
  if (static_cast<size_t>(size) > limits.max_encoded_bytes) {
    return out_of_range("image: " + path + " is " + std::to_string(size) + " bytes, over the limit of " +
                        std::to_string(limits.max_encoded_bytes));
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) return io_error("image: cannot read " + path);
  auto result = decode_image(bytes, limits);
  if (!result.is_ok()) return result.status().with_context(path);
  return result;
}

}  // namespace pixtral::image
