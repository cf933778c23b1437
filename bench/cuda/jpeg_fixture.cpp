#include "jpeg_fixture.h"

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

// jpeglib.h needs size_t and FILE declared before it.
#include <jpeglib.h>

namespace pixtral::bench {

std::vector<uint8_t> photo_like_jpeg(int width, int height, int quality) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  uint32_t noise = 12345;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        noise = noise * 1664525u + 1013904223u;
        const double gradient = 128 + 90 * std::sin(0.004 * (x + 2 * c * y) + 0.003 * y * (c + 1));
        const double texture = 20 * std::sin(0.21 * x + 0.13 * y * (c + 1));
        const double v = gradient + texture + static_cast<double>(noise >> 28) - 8;
        rgb[(static_cast<size_t>(y) * width + x) * 3 + c] = static_cast<uint8_t>(v < 0     ? 0
                                                                                 : v > 255 ? 255
                                                                                           : v);
      }
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = &rgb[static_cast<size_t>(cinfo.next_scanline) * width * 3];
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  if (out.empty()) {
    std::fprintf(stderr, "photo_like_jpeg: the encoder produced no bytes\n");
    std::abort();
  }
  return out;
}

}  // namespace pixtral::bench
