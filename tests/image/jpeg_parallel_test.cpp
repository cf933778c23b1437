// The parallel JPEG decoder against libjpeg-turbo's full decode (and Pillow's, from the generator)
// on the files of tools/image_jpeg_cases.py, with 1..16 entropy chunks; its kernels against their
// scalar references; and its safety property on damaged files: whenever it accepts a file,
// libjpeg decodes that file to the same pixels. ref: spec/inputs.md §5.1 step 1
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "image/codec.h"
#include "image/jpeg_kernels.h"
#include "image/jpeg_parallel.h"

namespace pixtral::image::detail {
namespace {

const std::string kCases = std::string(PIXTRAL_BINARY_DIR) + "/image_jpeg_cases";

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

nlohmann::json load_manifest() {
  const std::string manifest = kCases + "/manifest.json";
  if (!std::filesystem::exists(manifest)) {
    const std::string cmd =
        std::string(PIXTRAL_TEST_PYTHON) + " " + PIXTRAL_SOURCE_DIR + "/tools/image_jpeg_cases.py " + kCases;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::ifstream in(manifest);
  return nlohmann::json::parse(in);
}

// libjpeg's own decode (a progress callback keeps decode_jpeg off the parallel path).
Result<RgbImage> libjpeg_decode(std::span<const uint8_t> bytes) {
  return decode_jpeg(bytes, DecodeLimits{}, [](const RgbImage&, int64_t) {});
}

// The SIMD kernels run with AVX2 (where the CPU has it) and without.
class JpegKernels : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    default_ = jpeg::avx2_in_use();
    if (jpeg::use_avx2(GetParam()) != GetParam()) GTEST_SKIP() << "no AVX2 on this CPU";
  }
  void TearDown() override { jpeg::use_avx2(default_); }
  bool default_ = false;
};
INSTANTIATE_TEST_SUITE_P(Simd, JpegKernels, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "avx2" : "sse2"; });

TEST_P(JpegKernels, ColourConversionMatchesTablesExhaustively) {
  // Every (Y, Cb, Cr) at full resolution against the jdcolor.c table formula.
  constexpr int64_t kWidth = 256 * 256;
  std::vector<uint8_t> y(kWidth + 64), cb(kWidth + 64), cr(kWidth + 64), a(kWidth * 3), b(kWidth * 3);
  for (int64_t i = 0; i < kWidth; ++i) cb[i] = static_cast<uint8_t>(i & 255), cr[i] = static_cast<uint8_t>(i >> 8);
  for (int luma = 0; luma < 256; ++luma) {
    std::fill(y.begin(), y.begin() + kWidth, static_cast<uint8_t>(luma));
    jpeg::ycc_row(jpeg::Chroma::kH1, y.data(), cb.data(), cr.data(), kWidth, a.data());
    jpeg::ycc_row_scalar(jpeg::Chroma::kH1, y.data(), cb.data(), cr.data(), kWidth, b.data());
    ASSERT_EQ(a, b) << "Y = " << luma;
  }
}

TEST_P(JpegKernels, UpsamplingMatchesScalar) {
  std::mt19937 rng(7);
  for (int64_t width : {5, 6, 7, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 255, 1001}) {
    const int64_t n = (width + 1) / 2;
    std::vector<uint8_t> y(width + 64), near(n + 16), far(n + 16), a(width * 3), b(width * 3);
    for (auto* v : {&y, &near, &far}) {
      for (auto& x : *v) x = static_cast<uint8_t>(rng());
    }
    std::vector<int16_t> sb(n + 40), sr(n + 40);
    for (const jpeg::Chroma kind : {jpeg::Chroma::kH2V1, jpeg::Chroma::kH2V2, jpeg::Chroma::kNone}) {
      const uint8_t* other = kind == jpeg::Chroma::kH2V2 ? far.data() : nullptr;
      jpeg::chroma_sums(near.data(), other, n, sb.data() + 1);
      jpeg::chroma_sums(far.data(), other ? near.data() : nullptr, n, sr.data() + 1);
      jpeg::ycc_row(kind, y.data(), sb.data() + 1, sr.data() + 1, width, a.data());
      jpeg::ycc_row_scalar(kind, y.data(), sb.data() + 1, sr.data() + 1, width, b.data());
      EXPECT_EQ(a, b) << "width " << width << " kind " << static_cast<int>(kind);
    }
  }
}

TEST_P(JpegKernels, IdctMatchesScalarAndFlagsTheSameBlocks) {
  std::mt19937 rng(11);
  uint16_t qv[64];
  jpeg::IdctTable table;
  int flagged = 0, exact = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    const int kind = trial % 5;
    for (auto& q : qv) q = static_cast<uint16_t>(1 + rng() % (kind == 4 ? 255 : 40));
    ASSERT_TRUE(table.set(qv));
    alignas(16) int16_t coef[64] = {};
    const int nonzero = static_cast<int>(rng() % 64);
    const int magnitude = kind == 0 ? 8 : kind == 1 ? 64 : kind == 2 ? 400 : kind == 3 ? 4000 : 32767;
    for (int i = 0; i < nonzero; ++i) {
      coef[rng() % 64] = static_cast<int16_t>(static_cast<int>(rng() % (2 * magnitude + 1)) - magnitude);
    }
    if (trial % 7 == 0) std::fill(coef + 8, coef + 64, int16_t{0});  // first-row-only blocks
    const int16_t dc_add = static_cast<int16_t>(static_cast<int>(rng() % 2001) - 1000);
    uint8_t a[64], b[64], pair[2][64];
    const bool ok_a = jpeg::idct_islow(coef, dc_add, table, a, 8);
    const bool ok_b = jpeg::idct_islow_scalar(coef, dc_add, table, b, 8);
    ASSERT_EQ(ok_a, ok_b) << "trial " << trial;
    // The same block next to an in-range one, in either position of a pair.
    alignas(16) const int16_t tame[64] = {2, -1, 1};
    const int first = trial % 2;
    const bool ok_pair = first == 0 ? jpeg::idct_islow2(coef, dc_add, table, pair[0], 8, tame, 0, table, pair[1], 8)
                                    : jpeg::idct_islow2(tame, 0, table, pair[1], 8, coef, dc_add, table, pair[0], 8);
    uint8_t tame_ref[64];
    ASSERT_TRUE(jpeg::idct_islow_scalar(tame, 0, table, tame_ref, 8));
    ASSERT_EQ(ok_pair, ok_a) << "trial " << trial;
    if (ok_a) {
      ASSERT_EQ(0, std::memcmp(a, b, 64)) << "trial " << trial;
      ASSERT_EQ(0, std::memcmp(pair[0], b, 64)) << "trial " << trial;
      ASSERT_EQ(0, std::memcmp(pair[1], tame_ref, 64)) << "trial " << trial;
      ++exact;
    } else {
      ++flagged;
    }
  }
  EXPECT_GT(exact, 10000);
  EXPECT_GT(flagged, 1000);
}

TEST(JpegParallel, EqualsLibjpegAndPillowForEveryChunkCount) {
  const nlohmann::json manifest = load_manifest();
  const auto& cases = manifest.at("cases");
  ASSERT_GE(cases.size(), 70u);
  int handled = 0, speculative_runs = 0, resynced = 0, skipped = 0;
  int64_t resync_blocks = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = read_file(kCases + "/" + name + ".jpg");
    auto ref = libjpeg_decode(bytes);
    ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
    if (std::filesystem::exists(kCases + "/" + name + ".rgb")) {
      EXPECT_EQ(ref->pixels, read_file(kCases + "/" + name + ".rgb")) << "libjpeg differs from Pillow";
    }
    for (int chunks : {1, 2, 3, 4, 5, 7, 8, 16}) {
      JpegDecodeStats stats;
      std::optional<RgbImage> got = decode_jpeg_parallel(bytes, chunks, &stats);
      if (!c.at("handled").get<bool>()) {
        EXPECT_FALSE(got.has_value()) << "should be left to libjpeg";
        break;
      }
      ASSERT_TRUE(got.has_value()) << "declined with " << chunks << " chunks: " << stats.declined;
      ASSERT_EQ(got->width, ref->width);
      ASSERT_EQ(got->height, ref->height);
      ASSERT_TRUE(got->pixels == ref->pixels) << chunks << " chunks";
      if (!stats.restart_markers && stats.chunks > 1) {
        ++speculative_runs;
        resync_blocks += stats.resync_blocks;
        resynced += stats.chunks - 1 - stats.skipped_chunks;
        skipped += stats.skipped_chunks;
      }
    }
    handled += c.at("handled").get<bool>();
  }
  std::printf("[jpeg] %zu files, %d handled; %d speculative decodes: %d chunk joins, %d chunks never in sync, "
              "%lld blocks decoded twice in all\n",
              cases.size(), handled, speculative_runs, resynced, skipped, static_cast<long long>(resync_blocks));
  EXPECT_GT(resynced, 10 * skipped) << "speculative chunks should almost always synchronise";
}

// decode_and_preprocess (parallel decode, colour conversion inside the resize) equals
// preprocess on libjpeg's RGB.
TEST(JpegParallel, FusedPreprocessEqualsPreprocessOfLibjpeg) {
  const nlohmann::json manifest = load_manifest();
  for (const auto& c : manifest.at("cases")) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = read_file(kCases + "/" + name + ".jpg");
    auto ref = libjpeg_decode(bytes);
    ASSERT_TRUE(ref.is_ok());
    auto want = preprocess(*ref, ImageGeometry{});
    auto got = decode_and_preprocess(bytes);
    ASSERT_TRUE(want.is_ok() && got.is_ok());
    EXPECT_EQ(got->pixels.width, want->width);
    EXPECT_EQ(got->pixels.height, want->height);
    EXPECT_TRUE(got->pixels.data == want->data);
  }
}

// Damaged files: the parallel decoder may decline, but when it accepts a file libjpeg must
// accept it too (no warning that changes pixels, no error) and give the same pixels.
TEST(JpegParallel, DamagedFilesAreDeclinedOrDecodedLikeLibjpeg) {
  const nlohmann::json manifest = load_manifest();
  std::mt19937 rng(3);
  int accepted = 0, declined = 0;
  for (const char* name : {"large_420_1500x1100_q90_none", "large_444_900x701_q85_blocks1",
                           "420_640x480_q30_stripes_none", "grey_1001x333_q90_noise_blocks1",
                           "large_422_1111x555_q30_blocks7", "large_422_1024x768_q95_none",
                           "large_420_1203x797_q75_rows1"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> original = read_file(kCases + "/" + std::string(name) + ".jpg");
    ASSERT_GT(original.size(), 1000u);
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<uint8_t> bytes = original;
      const size_t at = 700 + rng() % (bytes.size() - 700);
      switch (trial % 5) {
        case 0: bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;       // one bit
        case 1: bytes.resize(at); break;                                            // truncated
        case 2: bytes[at] = 0xFF, bytes[at + 1 < bytes.size() ? at + 1 : at] = 0xD3; break;  // a marker
        case 3: bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(at)); break;     // a byte lost
        case 4: for (int k = 0; k < 8; ++k) bytes[700 + rng() % (bytes.size() - 700)] = static_cast<uint8_t>(rng()); break;
      }
      const auto ref = libjpeg_decode(bytes);
      for (int chunks : {1, 3, 8}) {
        std::optional<RgbImage> got = decode_jpeg_parallel(bytes, chunks);
        if (!got) {
          ++declined;
          continue;
        }
        ++accepted;
        ASSERT_TRUE(ref.is_ok()) << "trial " << trial << ": accepted a file libjpeg rejects: " << ref.status().to_string();
        ASSERT_TRUE(got->pixels == ref->pixels) << "trial " << trial << ", " << chunks << " chunks";
      }
    }
  }
  std::printf("[jpeg] damaged files: %d decodes accepted (same pixels as libjpeg), %d declined\n", accepted, declined);
  EXPECT_GT(declined, 0);
}

}  // namespace
}  // namespace pixtral::image::detail
