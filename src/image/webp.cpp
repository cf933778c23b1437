// WebP through libwebp. Pillow decodes every WebP with WebPAnimDecoder in MODE_RGBA; for the first
// (key) frame that is exactly WebPDecode into RGBA with default options (fancy upsampling). Images
// without alpha come out opaque, so pasting onto white is the identity. ref: spec/inputs.md §5.1
#include <webp/decode.h>

#include <cstring>
#include <string>

#include "image/codec.h"

namespace pixtral::image::detail {

Result<ImageInfo> probe_webp(std::span<const uint8_t> bytes) {
  // Extended format: the canvas size sits in the VP8X chunk (24-bit minus-one fields), readable
  // before any image chunk arrives.
  if (bytes.size() >= 30 && std::memcmp(bytes.data() + 12, "VP8X", 4) == 0) {
    auto le24 = [&](size_t at) { return int64_t{bytes[at]} | (int64_t{bytes[at + 1]} << 8) | (int64_t{bytes[at + 2]} << 16); };
    return ImageInfo{"webp", le24(24) + 1, le24(27) + 1};
  }
  WebPBitstreamFeatures features;
  const VP8StatusCode code = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (code == VP8_STATUS_NOT_ENOUGH_DATA) return invalid_argument("webp: truncated header");
  if (code != VP8_STATUS_OK) return invalid_argument("webp: corrupt header");
  return ImageInfo{"webp", features.width, features.height};
}

Result<RgbImage> decode_webp(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  PX_ASSIGN_OR_RETURN(ImageInfo header, probe_webp(bytes));
  PX_RETURN_IF_ERROR(check_dimensions(header.width, header.height, limits, "webp"));
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) return internal_error("webp: library version mismatch");
  const int64_t w = header.width, h = header.height;
  std::vector<uint8_t> rgba(static_cast<size_t>(w * h * 4));  // [h, w, 4]
  config.output.colorspace = MODE_RGBA;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = rgba.data();
  config.output.u.RGBA.stride = static_cast<int>(w * 4);
  config.output.u.RGBA.size = rgba.size();
  const VP8StatusCode code = WebPDecode(bytes.data(), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);
  if (code == VP8_STATUS_NOT_ENOUGH_DATA) return invalid_argument("webp: file is truncated");
  if (code == VP8_STATUS_UNSUPPORTED_FEATURE) return unimplemented("webp: unsupported feature (animation?)");
  if (code != VP8_STATUS_OK) return invalid_argument("webp: corrupt bitstream (code " + std::to_string(code) + ")");
  RgbImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
  for (int64_t i = 0; i < w * h; ++i) {
    const uint8_t* p = &rgba[i * 4];
    for (int c = 0; c < 3; ++c) image.pixels[i * 3 + c] = over_white(p[c], p[3]);
  }
  return image;
}

}  // namespace pixtral::image::detail
