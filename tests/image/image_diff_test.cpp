// Differential test against mistral_common 1.13.1 (tools/image_cases.py): decoded RGB must be
// identical to _convert_to_rgb(Image.open(f)), the token grid identical, and the pixel tensor
// within 1e-4 of ImageEncoder's (cv2 with IPP disabled). The IPP-enabled reference is reported
// and held to a looser bound. ref: spec/inputs.md §5.1, §5.2
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "image/image.h"

namespace pixtral::image {
namespace {

const std::string kCases = std::string(PIXTRAL_BINARY_DIR) + "/image_cases";

template <typename T>
std::vector<T> read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(in.good()) << path;
  std::vector<T> out(static_cast<size_t>(in.tellg()) / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(T)));
  return out;
}

nlohmann::json load_manifest() {
  const std::string manifest = kCases + "/manifest.json";
  if (!std::filesystem::exists(manifest)) {
    const std::string cmd = std::string(PIXTRAL_TEST_PYTHON) + " " + PIXTRAL_SOURCE_DIR + "/tools/image_cases.py " + kCases;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::ifstream in(manifest);
  return nlohmann::json::parse(in);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(ImageDiff, MatchesMistralCommonOnEveryCase) {
  const nlohmann::json manifest = load_manifest();
  const auto& cases = manifest.at("cases");
  ASSERT_GE(cases.size(), 50u);
  float worst_ipp = 0, worst_exact = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name + " (" + c.at("mode").get<std::string>() + ")");
    auto rgb = load_image_file(kCases + "/" + c.at("file").get<std::string>());
    ASSERT_TRUE(rgb.is_ok()) << rgb.status().to_string();
    EXPECT_EQ(rgb->width, c.at("width").get<int64_t>());
    EXPECT_EQ(rgb->height, c.at("height").get<int64_t>());
    const auto want_rgb = read_raw<uint8_t>(kCases + "/" + name + ".rgb");
    ASSERT_EQ(rgb->pixels.size(), want_rgb.size());
    size_t rgb_mismatch = 0;
    for (size_t i = 0; i < want_rgb.size(); ++i) rgb_mismatch += rgb->pixels[i] != want_rgb[i];
    EXPECT_EQ(rgb_mismatch, 0u) << "decoded RGB differs from Pillow";

    auto grid = patch_grid(rgb->width, rgb->height, ImageGeometry{});
    ASSERT_TRUE(grid.is_ok());
    EXPECT_EQ(grid->rows, c.at("rows").get<int64_t>());
    EXPECT_EQ(grid->cols, c.at("cols").get<int64_t>());
    auto pixels = preprocess(RgbImage{rgb->width, rgb->height, want_rgb}, ImageGeometry{});
    ASSERT_TRUE(pixels.is_ok());
    const auto ref = read_raw<float>(kCases + "/" + name + ".ref.f32");
    ASSERT_EQ(pixels->data.size(), ref.size());
    const float exact = max_abs_diff(pixels->data, ref);
    worst_exact = std::max(worst_exact, exact);
    EXPECT_LE(exact, 1e-4f) << "vs cv2 without IPP";
    // The one-call path (JPEG: resize overlapped with decoding) gives the same tensor.
    std::ifstream file(kCases + "/" + c.at("file").get<std::string>(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto fused = decode_and_preprocess(bytes);
    ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
    EXPECT_EQ(fused->grid.rows, grid->rows);
    EXPECT_EQ(fused->grid.cols, grid->cols);
    EXPECT_EQ(fused->pixels.data, pixels->data);
    const float ipp = max_abs_diff(pixels->data, read_raw<float>(kCases + "/" + name + ".ipp.f32"));
    worst_ipp = std::max(worst_ipp, ipp);
    EXPECT_LE(ipp, 2e-3f) << "vs cv2 with IPP";
  }
  std::printf("[image] %zu cases; opencv %s; max |ours - ref| = %.3g without IPP, %.3g with IPP\n",
              cases.size(), manifest.at("opencv").get<std::string>().c_str(), worst_exact, worst_ipp);
}

// Every prefix cut of a valid file of each format must fail cleanly (no crash, no partial image).
TEST(ImageDiff, TruncatedFilesAreRejected) {
  const nlohmann::json manifest = load_manifest();
  for (const char* name : {"png_rgba_300x200.png", "jpeg_rgb_s2_640x480.jpg", "webp_lossy_rgba_200x150.webp",
                           "gif_p_200x150.gif", "bmp_rgb_123x77.bmp", "jpeg_progressive_300x200.jpg"}) {
    std::ifstream in(kCases + "/" + name, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 100u) << name;
    ASSERT_TRUE(decode_image(bytes).is_ok()) << name;
    for (size_t keep : {size_t{0}, size_t{5}, size_t{30}, bytes.size() / 2, bytes.size() - 40}) {
      auto r = decode_image(std::span(bytes.data(), keep));
      EXPECT_FALSE(r.is_ok()) << name << " cut to " << keep << " bytes";
    }
  }
}

// Flipping bytes in the compressed data must give an error or an image, never a crash.
TEST(ImageDiff, CorruptDataDoesNotCrash) {
  const nlohmann::json manifest = load_manifest();
  for (const char* name : {"png_rgb_400x300.png", "jpeg_rgb_s0_333x217.jpg", "webp_lossless_rgb_120x80.webp",
                           "gif_trns_120x90.gif"}) {
    std::ifstream in(kCases + "/" + name, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t i = bytes.size() / 3; i < bytes.size(); i += bytes.size() / 7) bytes[i] ^= 0x5A;
    auto r = decode_image(bytes);
    if (r.is_ok()) {
      EXPECT_EQ(r->pixels.size(), static_cast<size_t>(r->width * r->height * 3)) << name;
    }
  }
  // A PNG with a bad CRC in a critical chunk is an error (Pillow checks CRCs as well).
  std::ifstream in(kCases + "/png_rgb_400x300.png", std::ios::binary);
  std::vector<uint8_t> png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  png[29] ^= 1;  // IHDR CRC
  auto r = decode_image(png);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("png"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace pixtral::image
