// Chained block hashes: equal content -> equal hashes; any differing token, image or earlier block
// -> a different hash from that block on.
#include "kv_cache/content_hash.h"

#include <gtest/gtest.h>

#include <numeric>

namespace pixtral::kv_cache {
namespace {

std::vector<int32_t> iota_tokens(int64_t n, int32_t first = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

std::vector<ContentHash> hashes_of(const std::vector<int32_t>& tokens, const std::vector<ImageSpan>& images = {}) {
  std::vector<ContentHash> h;
  extend_block_hashes({.token_ids = tokens, .images = images, .block_size = 16}, h);
  return h;
}

TEST(ContentHash, OnlyFullBlocksAreHashedAndExtensionIsIncremental) {
  auto tokens = iota_tokens(40);
  auto full = hashes_of(tokens);
  EXPECT_EQ(full.size(), 2u);
  std::vector<ContentHash> inc;
  std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 20);
  extend_block_hashes({.token_ids = prefix, .block_size = 16}, inc);
  ASSERT_EQ(inc.size(), 1u);
  extend_block_hashes({.token_ids = tokens, .block_size = 16}, inc);
  EXPECT_EQ(inc, full);
}

TEST(ContentHash, ADifferentTokenChangesThatBlockAndEveryLaterOne) {
  auto a = iota_tokens(64);
  auto b = a;
  b[20] = 7;  // block 1
  auto ha = hashes_of(a), hb = hashes_of(b);
  ASSERT_EQ(ha.size(), 4u);
  EXPECT_EQ(ha[0], hb[0]);
  for (size_t i = 1; i < 4; ++i) EXPECT_NE(ha[i], hb[i]) << i;
}

TEST(ContentHash, SameTokensWithDifferentImagesNeverShare) {
  std::vector<int32_t> tokens(48, 10);  // all [IMG]
  const ContentHash cat = hash_bytes(std::as_bytes(std::span<const char>("cat", 3)));
  const ContentHash dog = hash_bytes(std::as_bytes(std::span<const char>("dog", 3)));
  EXPECT_NE(cat, dog);
  auto with_cat = hashes_of(tokens, {{.hash = cat, .begin = 20, .end = 48}});
  auto with_dog = hashes_of(tokens, {{.hash = dog, .begin = 20, .end = 48}});
  auto no_image = hashes_of(tokens);
  EXPECT_EQ(with_cat[0], with_dog[0]);  // block 0 holds no image token
  EXPECT_EQ(with_cat[0], no_image[0]);
  EXPECT_NE(with_cat[1], with_dog[1]);
  EXPECT_NE(with_cat[2], with_dog[2]);
  EXPECT_NE(with_cat[1], no_image[1]);
  EXPECT_EQ(with_cat, hashes_of(tokens, {{.hash = cat, .begin = 20, .end = 48}}));
}

TEST(ContentHash, ToStringIsHex) {
  EXPECT_EQ((ContentHash{0x1, 0xab}).to_string(), "00000000000000ab0000000000000001");
}

}  // namespace
}  // namespace pixtral::kv_cache
