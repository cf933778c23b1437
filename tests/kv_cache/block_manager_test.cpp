// BlockManager: allocation, growth, ref-counted sharing (prefix hits, fork with copy on write),
// hashes kept after free, LRU eviction order, refusal when blocks run out, and the audit after
// every change.
#include "kv_cache/block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace pixtral::kv_cache {
namespace {

constexpr int64_t kBlockSize = 16;

std::vector<ContentHash> hashes_for(int64_t num_tokens, int32_t first_token) {
  std::vector<int32_t> tokens(static_cast<size_t>(num_tokens));
  std::iota(tokens.begin(), tokens.end(), first_token);
  std::vector<ContentHash> h;
  extend_block_hashes({.token_ids = tokens, .block_size = kBlockSize}, h);
  return h;
}

void expect_sound(const BlockManager& bm) {
  const Status s = bm.audit();
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  const BlockStats st = bm.stats();
  EXPECT_EQ(st.num_free + st.num_cached + st.num_used, st.num_blocks);
}

// Allocates seq with `num_tokens` slots, reusing what the cache holds, and "computes" it.
int64_t admit_and_compute(BlockManager& bm, SeqId seq, const std::vector<ContentHash>& hashes, int64_t num_tokens) {
  const int64_t hit = bm.match_prefix(hashes);
  const Status s = bm.allocate({.seq = seq, .block_hashes = hashes, .num_cached_blocks = hit, .num_tokens = num_tokens});
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  bm.commit(seq, hashes, num_tokens);
  return hit;
}

TEST(BlockManager, AllocateAppendFree) {
  BlockManager bm({.num_blocks = 8, .block_size = kBlockSize});
  ASSERT_TRUE(bm.allocate({.seq = SeqId{1}, .num_tokens = 20}).is_ok());
  EXPECT_EQ(bm.block_table(SeqId{1}).size(), 2u);
  EXPECT_TRUE(bm.append_slots({.seq = SeqId{1}, .write_begin = 20, .num_tokens = 32}).is_ok());  // still two blocks
  EXPECT_EQ(bm.block_table(SeqId{1}).size(), 2u);
  EXPECT_TRUE(bm.append_slots({.seq = SeqId{1}, .write_begin = 32, .num_tokens = 33}).is_ok());  // a third block
  EXPECT_EQ(bm.block_table(SeqId{1}).size(), 3u);
  EXPECT_EQ(bm.stats().num_used, 3);
  expect_sound(bm);
  bm.free(SeqId{1});
  EXPECT_EQ(bm.stats().num_free, 8);
  EXPECT_FALSE(bm.contains(SeqId{1}));
  expect_sound(bm);
}

TEST(BlockManager, RefusesWhenBlocksRunOutAndChangesNothing) {
  BlockManager bm({.num_blocks = 4, .block_size = kBlockSize});
  ASSERT_TRUE(bm.allocate({.seq = SeqId{1}, .num_tokens = 48}).is_ok());
  EXPECT_FALSE(bm.can_allocate({.seq = SeqId{2}, .num_tokens = 17}));
  const Status s = bm.allocate({.seq = SeqId{2}, .num_tokens = 17});
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(bm.contains(SeqId{2}));
  EXPECT_TRUE(bm.can_append({.seq = SeqId{1}, .write_begin = 48, .num_tokens = 64}));
  EXPECT_FALSE(bm.can_append({.seq = SeqId{1}, .write_begin = 48, .num_tokens = 65}));
  EXPECT_EQ(bm.append_slots({.seq = SeqId{1}, .write_begin = 48, .num_tokens = 65}).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(bm.block_table(SeqId{1}).size(), 3u);
  expect_sound(bm);
}

TEST(BlockManager, PrefixHitSharesBlocksAndCountsHits) {
  BlockManager bm({.num_blocks = 16, .block_size = kBlockSize});
  const auto hashes = hashes_for(80, 100);  // 5 full blocks
  EXPECT_EQ(admit_and_compute(bm, SeqId{1}, hashes, 80), 0);
  EXPECT_EQ(bm.match_prefix(hashes), 5);
  // The second sequence shares the first 4 blocks and computes the rest itself.
  std::span<const ContentHash> four(hashes.data(), 4);
  ASSERT_TRUE(bm.allocate({.seq = SeqId{2}, .block_hashes = four, .num_cached_blocks = 4, .num_tokens = 90}).is_ok());
  auto t1 = bm.block_table(SeqId{1});
  auto t2 = bm.block_table(SeqId{2});
  ASSERT_EQ(t2.size(), 6u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(t1[i], t2[i]);
    EXPECT_EQ(bm.ref_count(t1[i]), 2);
  }
  EXPECT_NE(t1[4], t2[4]);
  EXPECT_EQ(bm.stats().num_used, 5 + 2);
  EXPECT_EQ(bm.stats().prefix_hit_blocks, 4);
  EXPECT_EQ(bm.stats().prefix_query_blocks, 5 + 4);
  expect_sound(bm);
}

TEST(BlockManager, FreedBlocksKeepTheirHashUntilReused) {
  BlockManager bm({.num_blocks = 6, .block_size = kBlockSize});
  const auto hashes = hashes_for(64, 100);
  admit_and_compute(bm, SeqId{1}, hashes, 64);
  bm.free(SeqId{1});
  EXPECT_EQ(bm.stats().num_cached, 4);
  EXPECT_EQ(bm.stats().num_free, 2);
  expect_sound(bm);
  // A later sequence with the same prompt revives all four cached blocks.
  EXPECT_EQ(admit_and_compute(bm, SeqId{2}, hashes, 65), 4);
  EXPECT_EQ(bm.stats().num_cached, 0);
  EXPECT_EQ(bm.stats().num_used, 5);
  expect_sound(bm);
}

TEST(BlockManager, EvictsLeastRecentlyFreedAndTailBlocksFirst) {
  BlockManager bm({.num_blocks = 4, .block_size = kBlockSize});
  const auto a = hashes_for(32, 100), b = hashes_for(32, 500);
  admit_and_compute(bm, SeqId{1}, a, 32);
  admit_and_compute(bm, SeqId{2}, b, 32);
  bm.free(SeqId{1});  // a's blocks are older in the LRU than b's
  bm.free(SeqId{2});
  EXPECT_EQ(bm.stats().num_cached, 4);
  // One fresh block: the pool has no unhashed block, so a's tail block is evicted.
  ASSERT_TRUE(bm.allocate({.seq = SeqId{3}, .num_tokens = 10}).is_ok());
  EXPECT_EQ(bm.match_prefix(a), 1);
  EXPECT_EQ(bm.match_prefix(b), 2);
  EXPECT_EQ(bm.stats().num_evictions, 1);
  ASSERT_TRUE(bm.append_slots({.seq = SeqId{3}, .write_begin = 10, .num_tokens = 32}).is_ok());  // then a's head block
  EXPECT_EQ(bm.match_prefix(a), 0);
  EXPECT_EQ(bm.match_prefix(b), 2);
  expect_sound(bm);
}

TEST(BlockManager, CachedBlocksCountAsAvailableButNotTwice) {
  BlockManager bm({.num_blocks = 4, .block_size = kBlockSize});
  const auto a = hashes_for(48, 100);
  admit_and_compute(bm, SeqId{1}, a, 48);
  bm.free(SeqId{1});  // 3 cached + 1 free
  // Reusing the 3 cached blocks and 2 more would need 5 blocks: refused.
  EXPECT_FALSE(bm.can_allocate({.seq = SeqId{2}, .block_hashes = a, .num_cached_blocks = 3, .num_tokens = 65}));
  EXPECT_TRUE(bm.can_allocate({.seq = SeqId{2}, .block_hashes = a, .num_cached_blocks = 3, .num_tokens = 64}));
}

TEST(BlockManager, ConcurrentDuplicateContentIsCachedOnce) {
  BlockManager bm({.num_blocks = 8, .block_size = kBlockSize});
  const auto a = hashes_for(32, 100);
  ASSERT_TRUE(bm.allocate({.seq = SeqId{1}, .block_hashes = a, .num_tokens = 32}).is_ok());
  ASSERT_TRUE(bm.allocate({.seq = SeqId{2}, .block_hashes = a, .num_tokens = 32}).is_ok());
  bm.commit(SeqId{1}, a, 32);
  bm.commit(SeqId{2}, a, 32);
  EXPECT_TRUE(bm.is_hashed(bm.block_table(SeqId{1})[0]));
  EXPECT_FALSE(bm.is_hashed(bm.block_table(SeqId{2})[0]));
  bm.free(SeqId{2});
  EXPECT_EQ(bm.stats().num_free, 6);
  bm.free(SeqId{1});
  EXPECT_EQ(bm.stats().num_cached, 2);
  expect_sound(bm);
}

TEST(BlockManager, ForkSharesEveryBlockAndCopiesThePartialOneOnWrite) {
  BlockManager bm({.num_blocks = 8, .block_size = kBlockSize});
  const auto a = hashes_for(40, 100);
  admit_and_compute(bm, SeqId{1}, a, 40);  // blocks 0, 1 full, 2 partial
  const std::vector<BlockId> parent(bm.block_table(SeqId{1}).begin(), bm.block_table(SeqId{1}).end());
  const int64_t free_before = bm.stats().num_free;
  bm.fork({.parent = SeqId{1}, .child = SeqId{2}, .num_tokens = 40});
  bm.fork({.parent = SeqId{1}, .child = SeqId{3}, .num_tokens = 40});
  EXPECT_EQ(bm.stats().num_free, free_before);  // a fork takes no block
  for (SeqId child : {SeqId{2}, SeqId{3}})
    EXPECT_EQ(std::vector<BlockId>(bm.block_table(child).begin(), bm.block_table(child).end()), parent);
  for (BlockId block : parent) EXPECT_EQ(bm.ref_count(block), 3);
  expect_sound(bm);
  // Each sequence writes slot 40 next. The first two writers get a copy of the shared partial block
  // (the slots before 40 must survive); the last one owns it alone and writes in place.
  EXPECT_TRUE(bm.can_append({.seq = SeqId{2}, .write_begin = 40, .num_tokens = 41}));
  auto c2 = bm.append_slots({.seq = SeqId{2}, .write_begin = 40, .num_tokens = 41});
  ASSERT_TRUE(c2.is_ok());
  ASSERT_EQ(c2->size(), 1u);
  EXPECT_EQ((*c2)[0].src, parent[2]);
  EXPECT_EQ((*c2)[0].dst, bm.block_table(SeqId{2})[2]);
  EXPECT_EQ(bm.block_table(SeqId{2})[0], parent[0]);  // full blocks stay shared
  auto c1 = bm.append_slots({.seq = SeqId{1}, .write_begin = 40, .num_tokens = 41});
  ASSERT_TRUE(c1.is_ok());
  EXPECT_EQ(c1->size(), 1u);
  EXPECT_NE(bm.block_table(SeqId{1})[2], parent[2]);
  auto c3 = bm.append_slots({.seq = SeqId{3}, .write_begin = 40, .num_tokens = 41});
  ASSERT_TRUE(c3.is_ok());
  EXPECT_TRUE(c3->empty());
  EXPECT_EQ(bm.block_table(SeqId{3})[2], parent[2]);
  EXPECT_EQ(bm.ref_count(parent[2]), 1);
  EXPECT_EQ(bm.ref_count(parent[0]), 3);
  expect_sound(bm);
  bm.free(SeqId{1});
  EXPECT_EQ(bm.ref_count(parent[0]), 2);
  bm.free(SeqId{3});
  bm.free(SeqId{2});
  EXPECT_EQ(bm.stats().num_used, 0);
  expect_sound(bm);
}

TEST(BlockManager, ForkAtABlockBoundaryCopiesNothing) {
  BlockManager bm({.num_blocks = 4, .block_size = kBlockSize});
  admit_and_compute(bm, SeqId{1}, hashes_for(32, 100), 32);
  bm.fork({.parent = SeqId{1}, .child = SeqId{2}, .num_tokens = 32});
  // Both need a third block for slot 32; one block is left in the pool.
  auto c2 = bm.append_slots({.seq = SeqId{2}, .write_begin = 32, .num_tokens = 33});
  ASSERT_TRUE(c2.is_ok());
  EXPECT_TRUE(c2->empty());
  EXPECT_TRUE(bm.can_append({.seq = SeqId{1}, .write_begin = 32, .num_tokens = 33}));
  bm.fork({.parent = SeqId{2}, .child = SeqId{3}, .num_tokens = 33});  // shares the new partial block
  // Writing slot 33 of 3 needs a copy, and 1 still needs its third block: two blocks, one left.
  EXPECT_TRUE(bm.can_append({.seq = SeqId{3}, .write_begin = 33, .num_tokens = 34}));
  auto c3 = bm.append_slots({.seq = SeqId{3}, .write_begin = 33, .num_tokens = 34});
  ASSERT_TRUE(c3.is_ok());
  EXPECT_EQ(c3->size(), 1u);
  EXPECT_FALSE(bm.can_append({.seq = SeqId{1}, .write_begin = 32, .num_tokens = 33}));
  EXPECT_EQ(bm.append_slots({.seq = SeqId{1}, .write_begin = 32, .num_tokens = 33}).status().code(),
            StatusCode::kResourceExhausted);
  expect_sound(bm);
  for (int64_t s : {1, 2, 3}) bm.free(SeqId{s});
  EXPECT_EQ(bm.stats().num_used, 0);
  expect_sound(bm);
}

TEST(BlockManager, AdmissionCanAskForExtraBlocks) {
  BlockManager bm({.num_blocks = 4, .block_size = kBlockSize});
  EXPECT_TRUE(bm.can_allocate({.seq = SeqId{1}, .num_tokens = 20, .num_extra_blocks = 2}));
  EXPECT_FALSE(bm.can_allocate({.seq = SeqId{1}, .num_tokens = 20, .num_extra_blocks = 3}));
  ASSERT_TRUE(bm.allocate({.seq = SeqId{1}, .num_tokens = 20, .num_extra_blocks = 2}).is_ok());
  EXPECT_EQ(bm.stats().num_used, 2);  // checked, not taken
}

TEST(BlockManager, PrefixCachingCanBeTurnedOff) {
  BlockManager bm({.num_blocks = 8, .block_size = kBlockSize, .enable_prefix_caching = false});
  const auto a = hashes_for(32, 100);
  admit_and_compute(bm, SeqId{1}, a, 32);
  EXPECT_EQ(bm.match_prefix(a), 0);
  bm.free(SeqId{1});
  EXPECT_EQ(bm.stats().num_free, 8);
  expect_sound(bm);
}

TEST(BlockManagerDeathTest, DoubleFreeAborts) {
  BlockManager bm({.num_blocks = 2, .block_size = kBlockSize});
  ASSERT_TRUE(bm.allocate({.seq = SeqId{1}, .num_tokens = 1}).is_ok());
  bm.free(SeqId{1});
  EXPECT_DEATH(bm.free(SeqId{1}), "unknown sequence");
}

TEST(PoolSize, BlocksFromAByteBudget) {
  // Pixtral-12B: 40 layers x 8 kv heads x 128 x 2 (K, V) x 2 bytes = 163,840 bytes per token.
  auto n = num_blocks_for_budget({.budget_bytes = 40LL << 30, .bytes_per_token = 163840, .block_size = 16});
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, (40LL << 30) / (163840 * 16));
  EXPECT_EQ(num_blocks_for_budget({.budget_bytes = 1000, .bytes_per_token = 100, .block_size = 16}).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(num_blocks_for_budget({.budget_bytes = 1000, .bytes_per_token = 0}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pixtral::kv_cache
