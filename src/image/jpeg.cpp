// JPEG through libjpeg-turbo with Pillow's settings (library defaults: ISLOW IDCT, fancy
// upsampling). 1 component -> L, 3 -> RGB (libjpeg's colour conversion), 4 -> CMYK which Pillow
// always reads as inverted "CMYK;I" and then converts with cmyk2rgb. Baseline grey / YCbCr files
// go to the parallel decoder first (jpeg_parallel.h: same pixels), libjpeg takes the rest.
// ref: spec/inputs.md §5.1
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <optional>
#include <algorithm>
#include <string>

#include "image/codec.h"
#include "image/jpeg_parallel.h"

namespace pixtral::image::detail {
namespace {

struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";
};

void error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Pillow rejects a file whose data end early ("image file is truncated"); libjpeg only warns.
void emit_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) error_exit(cinfo);
}

bool is_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

void convert_row(const uint8_t* in, uint8_t* out, int64_t width, int components) {
  if (components == 3) {
    std::copy(in, in + width * 3, out);
  } else if (components == 1) {
    for (int64_t x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
  } else {
    for (int64_t x = 0; x < width; ++x) {
      const uint8_t* p = in + 4 * x;
      const uint8_t inverted[4] = {uint8_t(255 - p[0]), uint8_t(255 - p[1]), uint8_t(255 - p[2]), uint8_t(255 - p[3])};
      cmyk_to_rgb(inverted, out + 3 * x);
    }
  }
}

// Runs libjpeg from header to the last scanline; returns false after a libjpeg error.
[[gnu::noinline]] Status unsupported_components(int components) {
  return unimplemented("jpeg: " + std::to_string(components) + "-component images are not supported");
}

// The libjpeg error handler longjmps back to run_decoder, so no object with a destructor may be
// alive in these frames while libjpeg runs: the row buffer and the Status are owned by the caller.
[[gnu::noinline]] void decode_body(jpeg_decompress_struct& cinfo, std::span<const uint8_t> bytes,
                                   const DecodeLimits& limits, const RowProgress& progress, RgbImage& image,
                                   std::vector<uint8_t>& rows, Status& status) {
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  status = check_dimensions(cinfo.image_width, cinfo.image_height, limits, "jpeg");
  if (!status.is_ok()) return;
  const int components = cinfo.num_components;
  if (components == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (components == 3) {
    cinfo.out_color_space = JCS_RGB;
  } else if (components == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    status = unsupported_components(components);
    return;
  }
  jpeg_start_decompress(&cinfo);
  image.width = cinfo.output_width;
  image.height = cinfo.output_height;
  image.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  constexpr int kBatch = 16;  // rows per read; also the granularity of `progress`
  rows.resize(static_cast<size_t>(image.width) * components * kBatch);  // [kBatch, width, components]
  while (cinfo.output_scanline < cinfo.output_height) {
    const int64_t y = cinfo.output_scanline;
    JSAMPROW targets[kBatch];
    for (int i = 0; i < kBatch; ++i) {
      targets[i] = components == 3 ? image.pixels.data() + std::min<int64_t>(y + i, image.height - 1) * image.width * 3
                                   : rows.data() + i * image.width * components;
    }
    const int64_t got = jpeg_read_scanlines(&cinfo, targets, kBatch);
    for (int64_t i = 0; components != 3 && i < got; ++i) {
      convert_row(targets[i], image.pixels.data() + (y + i) * image.width * 3, image.width, components);
    }
    if (progress) progress(image, y + got);
  }
  jpeg_finish_decompress(&cinfo);
}

bool run_decoder(jpeg_decompress_struct& cinfo, JpegError& err, std::span<const uint8_t> bytes,
                 const DecodeLimits& limits, const RowProgress& progress, RgbImage& image,
                 std::vector<uint8_t>& rows, Status& status) {
  if (setjmp(err.jump)) return false;
  decode_body(cinfo, bytes, limits, progress, image, rows, status);
  return true;
}

}  // namespace

Result<ImageInfo> probe_jpeg(std::span<const uint8_t> b) {
  size_t pos = 2;
  while (pos + 4 <= b.size()) {
    if (b[pos] != 0xFF) return invalid_argument("jpeg: corrupt marker structure before the frame header");
    const uint8_t marker = b[pos + 1];
    if (marker == 0xFF) { ++pos; continue; }  // fill byte
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { pos += 2; continue; }
    const size_t length = read_be16(&b[pos + 2]);
    if (length < 2) return invalid_argument("jpeg: corrupt segment length");
    if (is_sof(marker)) {
      if (pos + 9 > b.size()) break;
      return ImageInfo{"jpeg", read_be16(&b[pos + 7]), read_be16(&b[pos + 5])};
    }
    if (marker == 0xDA || marker == 0xD9) break;
    pos += 2 + length;
  }
  return invalid_argument("jpeg: truncated file, no frame header (SOF) found");
}

Result<RgbImage> decode_jpeg(std::span<const uint8_t> bytes, const DecodeLimits& limits, const RowProgress& progress) {
  PX_ASSIGN_OR_RETURN(ImageInfo header, probe_jpeg(bytes));
  PX_RETURN_IF_ERROR(check_dimensions(header.width, header.height, limits, "jpeg"));
  if (!progress) {  // no row streaming wanted: the parallel decoder, when it handles the file
    if (std::optional<RgbImage> fast = decode_jpeg_parallel(bytes)) {
      if (fast->width != header.width || fast->height != header.height) {
        return invalid_argument("jpeg: frame size differs from the first SOF header");
      }
      return std::move(*fast);
    }
  }
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  err.mgr.emit_message = emit_message;
  jpeg_create_decompress(&cinfo);
  RgbImage image;
  Status status;
  std::vector<uint8_t> rows;
  const bool ok = run_decoder(cinfo, err, bytes, limits, progress, image, rows, status);
  jpeg_destroy_decompress(&cinfo);
  if (!ok) return invalid_argument(std::string("jpeg: corrupt or truncated file: ") + err.message);
  if (!status.is_ok()) return status;
  return image;
}

}  // namespace pixtral::image::detail
