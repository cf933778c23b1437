// ref: spec/inputs.md §6; mistral_common 1.13.1 tokens/tokenizers/image.py (image_from_chunk) and
// utils/data_url.py (maybe_strip_base64_data_url_prefix)
#include "prompt/image_source.h"

#include <array>
#include <fstream>
#include <iterator>

namespace pixtral::prompt {
namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

Result<std::vector<uint8_t>> decode_base64(std::string_view text) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (size_t i = 0; i < kBase64Alphabet.size(); ++i) t[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  if (text.empty()) return invalid_argument("invalid base64: empty payload");
  if (text.size() % 4 != 0) return invalid_argument("invalid base64: length is not a multiple of 4");
  size_t padding = 0;
  if (text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    int8_t v = table[static_cast<uint8_t>(text[i])];
    if (v < 0) {
      return invalid_argument("invalid base64: unexpected character at offset " + std::to_string(i));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    if (i % 4 == 3) {
      out.push_back(static_cast<uint8_t>(acc >> 16));
      out.push_back(static_cast<uint8_t>(acc >> 8));
      out.push_back(static_cast<uint8_t>(acc));
      acc = 0;
    }
  }
  if (padding == 1) {  // 3 symbols -> 2 bytes
    out.push_back(static_cast<uint8_t>(acc >> 10));
    out.push_back(static_cast<uint8_t>(acc >> 2));
  } else if (padding == 2) {  // 2 symbols -> 1 byte
    out.push_back(static_cast<uint8_t>(acc >> 4));
  }
  return out;
}

Result<ImageSource> parse_image_url(std::string_view url, const std::string& where,
                                    const ParseOptions& options) {
  ImageSource source;
  if (starts_with(url, "data:")) {
    // ref: WHATWG data URL split as mistral_common does: header up to the first comma must end
    // in ";base64", and the payload must be non-empty. The media type itself is not checked; a
    // non-image payload fails later, in the decoder.
    size_t comma = url.find(',');
    std::string_view header = url.substr(0, comma);
    if (comma == std::string_view::npos || header.size() < 7 ||
        header.substr(header.size() - 7) != ";base64" || comma + 1 == url.size()) {
      return invalid_argument(where + ": invalid data URI: expected data:<mime>;base64,<payload>");
    }
    auto bytes = decode_base64(url.substr(comma + 1));
    if (!bytes.is_ok()) return bytes.status().with_context(where);
    source.kind = ImageSource::Kind::kBytes;
    source.bytes = std::move(bytes).value();
    return source;
  }
  if (starts_with(url, "http://") || starts_with(url, "https://")) {
    return unimplemented(where + ": remote image URLs are not enabled (send the image as a data: URI)");
  }
  std::string_view path = url;
  if (starts_with(url, "file://")) path = url.substr(7);
  else if (url.find("://") != std::string_view::npos) {
    return invalid_argument(where + ": unsupported image URL scheme in '" + std::string(url.substr(0, 32)) + "'");
  }
  if (path.empty()) return invalid_argument(where + ": empty image URL");
  if (!options.allow_local_files) return invalid_argument(where + ": local image files are not allowed");
  source.kind = ImageSource::Kind::kFile;
  source.location = std::string(path);
  return source;
}

Result<std::vector<uint8_t>> read_image_bytes(const ImageSource& source, const std::string& where) {
  switch (source.kind) {
    case ImageSource::Kind::kBytes: return source.bytes;
    case ImageSource::Kind::kRemoteUrl:
      return unimplemented(where + ": remote image URLs are not enabled");
    case ImageSource::Kind::kFile: {
      std::ifstream in(source.location, std::ios::binary);
      if (!in) return not_found(where + ": cannot open image file '" + source.location + "'");
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (in.bad()) return io_error(where + ": cannot read image file '" + source.location + "'");
      return bytes;
    }
  }
  return internal_error(where + ": unknown image source kind");
}

}  // namespace pixtral::prompt
