// Bad inputs rejected from the header (limits, zero sizes, unknown formats) and the token grid
// rule of spec/model.md §3 step 2 / §12.4.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "image/image.h"

namespace pixtral::image {
namespace {

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
void put_le16(std::vector<uint8_t>& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put_le32(std::vector<uint8_t>& b, uint32_t v) {
  put_le16(b, v & 0xFFFF);
  put_le16(b, v >> 16);
}

// A PNG signature + IHDR claiming the given size, and nothing else.
std::vector<uint8_t> png_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_be32(b, 13);
  for (char c : std::string("IHDR")) b.push_back(static_cast<uint8_t>(c));
  put_be32(b, w);
  put_be32(b, h);
  for (uint8_t v : {8, 2, 0, 0, 0}) b.push_back(v);
  put_be32(b, 0);  // CRC (never reached: the size check comes first)
  return b;
}

std::vector<uint8_t> jpeg_header(uint32_t w, uint32_t h) {
  return {0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, uint8_t(h >> 8), uint8_t(h), uint8_t(w >> 8), uint8_t(w), 3,
          1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
}

std::vector<uint8_t> gif_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {'G', 'I', 'F', '8', '9', 'a'};
  put_le16(b, w);
  put_le16(b, h);
  for (uint8_t v : {0, 0, 0}) b.push_back(v);
  return b;
}

std::vector<uint8_t> bmp_header(int32_t w, int32_t h) {
  std::vector<uint8_t> b = {'B', 'M'};
  put_le32(b, 54);
  put_le32(b, 0);
  put_le32(b, 54);
  put_le32(b, 40);
  put_le32(b, static_cast<uint32_t>(w));
  put_le32(b, static_cast<uint32_t>(h));
  put_le16(b, 1);
  put_le16(b, 24);
  for (int i = 0; i < 6; ++i) put_le32(b, 0);
  return b;
}

// RIFF/WEBP with a VP8X chunk declaring a canvas of w x h.
std::vector<uint8_t> webp_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {'R', 'I', 'F', 'F'};
  put_le32(b, 4 + 8 + 10);
  for (char c : std::string("WEBPVP8X")) b.push_back(static_cast<uint8_t>(c));
  put_le32(b, 10);
  put_le32(b, 0);
  for (uint32_t v : {w - 1, h - 1}) {
    b.push_back(static_cast<uint8_t>(v));
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v >> 16));
  }
  return b;
}

TEST(ImageInput, HugeHeadersAreRejectedBeforeDecoding) {
  const std::vector<std::pair<const char*, std::vector<uint8_t>>> cases = {
      {"png", png_header(100000, 100000)}, {"jpeg", jpeg_header(60000, 60000)},
      {"gif", gif_header(60000, 60000)},   {"bmp", bmp_header(100000, 100000)},
      {"webp", webp_header(20000, 20000)}};
  for (const auto& [format, bytes] : cases) {
    auto r = decode_image(bytes);
    ASSERT_FALSE(r.is_ok()) << format;
    EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange) << format << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find(format), std::string::npos) << r.status().message();
    auto info = probe_image(bytes);
    ASSERT_TRUE(info.is_ok()) << format << ": " << info.status().to_string();
    EXPECT_EQ(info->format, format);
    EXPECT_GE(info->width, 20000);
  }
}

TEST(ImageInput, PixelCountLimitApplies) {
  DecodeLimits limits;
  limits.max_pixels = 1000;
  auto r = decode_image(png_header(100, 100), limits);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
  limits = DecodeLimits{};
  limits.max_encoded_bytes = 10;
  EXPECT_EQ(decode_image(png_header(1, 1), limits).status().code(), StatusCode::kOutOfRange);
}

TEST(ImageInput, ZeroSizesAreRejected) {
  for (const auto& bytes : {png_header(0, 10), jpeg_header(10, 0), gif_header(0, 0), bmp_header(0, 5)}) {
    auto r = decode_image(bytes);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  }
}

TEST(ImageInput, UnknownFormatsAreUnsupported) {
  const std::vector<std::vector<uint8_t>> cases = {
      {}, {'I', 'I', '*', 0, 8, 0, 0, 0}, {'h', 'e', 'l', 'l', 'o'}, {0xFF, 0xD8}};
  for (const auto& bytes : cases) {
    auto r = decode_image(bytes);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented) << r.status().to_string();
    EXPECT_FALSE(probe_image(bytes).is_ok());
  }
  EXPECT_EQ(load_image_file("/nonexistent/image.png").status().code(), StatusCode::kNotFound);
}

TEST(ImageInput, HeaderOnlyFilesAreTruncated) {
  for (const auto& bytes : {png_header(10, 10), jpeg_header(10, 10), gif_header(10, 10), bmp_header(10, 10),
                            webp_header(10, 10)}) {
    auto r = decode_image(bytes);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  }
}

// ref: spec/model.md §12.4 and §3 step 2 (mistral_common 1.13.1 clamps a side to >= 1 pixel).
TEST(ImageInput, TokenGrid) {
  struct Case { int64_t w, h, rows, cols; };
  const Case cases[] = {{1, 1, 1, 1},       {4, 4, 1, 1},         {16, 16, 1, 1},     {17, 17, 2, 2},
                        {400, 300, 19, 25}, {2000, 1500, 48, 64}, {1024, 4096, 64, 16}, {5000, 3, 1, 64},
                        {5000, 1, 1, 64},   {1024, 1024, 64, 64}, {4032, 3024, 48, 64}};
  for (const Case& c : cases) {
    auto g = patch_grid(c.w, c.h, ImageGeometry{});
    ASSERT_TRUE(g.is_ok());
    EXPECT_EQ(g->rows, c.rows) << c.w << "x" << c.h;
    EXPECT_EQ(g->cols, c.cols) << c.w << "x" << c.h;
  }
  EXPECT_FALSE(patch_grid(0, 5, ImageGeometry{}).is_ok());
  EXPECT_FALSE(patch_grid(5, -1, ImageGeometry{}).is_ok());
}

TEST(ImageInput, PreprocessShapesAndBadBuffers) {
  RgbImage image{400, 300, std::vector<uint8_t>(400 * 300 * 3, 255)};
  auto t = preprocess(image, ImageGeometry{});
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->width, 400);
  EXPECT_EQ(t->height, 304);
  ASSERT_EQ(t->data.size(), 3u * 400 * 304);
  // White stays exactly white: (1 - mean) / std per channel, no overshoot on a flat image.
  EXPECT_FLOAT_EQ(t->data[0], (1.f - 0.48145466f) / 0.26862954f);
  image.pixels.pop_back();
  EXPECT_FALSE(preprocess(image, ImageGeometry{}).is_ok());
}

}  // namespace
}  // namespace pixtral::image
