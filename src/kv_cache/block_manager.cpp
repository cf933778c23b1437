#include "kv_cache/block_manager.h"

#include <algorithm>

#include "base/check.h"

namespace pixtral::kv_cache {

BlockManager::BlockManager(const BlockManagerParams& params)
    : block_size_(params.block_size), enable_prefix_caching_(params.enable_prefix_caching) {
  PX_CHECK(params.block_size > 0);
  PX_CHECK(params.num_blocks > 0 && params.num_blocks <= INT32_MAX);
  blocks_.resize(static_cast<size_t>(params.num_blocks));
  free_.reserve(blocks_.size());
  // Stack order: block 0 is handed out first.
  for (int64_t b = params.num_blocks - 1; b >= 0; --b) free_.push_back(BlockId{static_cast<int32_t>(b)});
}

size_t BlockManager::index(BlockId block) const {
  PX_CHECK(block.value >= 0 && static_cast<size_t>(block.value) < blocks_.size());
  return static_cast<size_t>(block.value);
}

int64_t BlockManager::match_prefix(std::span<const ContentHash> block_hashes) const {
  if (!enable_prefix_caching_) return 0;
  int64_t n = 0;
  for (const ContentHash& h : block_hashes) {
    if (cached_.find(h) == cached_.end()) break;
    ++n;
  }
  return n;
}

bool BlockManager::can_allocate(const AllocateParams& params) const {
  PX_CHECK(params.num_cached_blocks <= static_cast<int64_t>(params.block_hashes.size()));
  PX_CHECK(params.num_cached_blocks * block_size_ <= params.num_tokens);
  int64_t revived = 0;  // cached blocks taken out of the evictable pool by this allocation
  for (int64_t i = 0; i < params.num_cached_blocks; ++i) {
    auto it = cached_.find(params.block_hashes[static_cast<size_t>(i)]);
    PX_CHECK_MSG(it != cached_.end(), "allocate: num_cached_blocks exceeds the cached prefix");
    if (blocks_[index(it->second)].ref_count == 0) ++revived;
  }
  PX_CHECK(params.num_extra_blocks >= 0);
  const int64_t fresh = blocks_for(params.num_tokens) - params.num_cached_blocks;
  return fresh + params.num_extra_blocks <= num_available() - revived;
}

Status BlockManager::allocate(const AllocateParams& params) {
  PX_CHECK_MSG(!contains(params.seq), "allocate: the sequence already has blocks");
  if (!can_allocate(params))
    return resource_exhausted("KV cache: " + std::to_string(blocks_for(params.num_tokens)) + " blocks needed, " +
                              std::to_string(num_available()) + " available");
  Table table;
  table.blocks.reserve(static_cast<size_t>(blocks_for(params.num_tokens)));
  for (int64_t i = 0; i < params.num_cached_blocks; ++i) {
    const BlockId block = cached_.at(params.block_hashes[static_cast<size_t>(i)]);
    acquire(block);
    table.blocks.push_back(block);
  }
  table.num_committed = params.num_cached_blocks;
  while (static_cast<int64_t>(table.blocks.size()) < blocks_for(params.num_tokens)) table.blocks.push_back(take_fresh());
  if (enable_prefix_caching_) {
    prefix_query_blocks_ += static_cast<int64_t>(params.block_hashes.size());
    prefix_hit_blocks_ += params.num_cached_blocks;
  }
  tables_.emplace(params.seq, std::move(table));
  return Status::ok();
}

int64_t BlockManager::num_shared_from(const Table& table, int64_t write_begin) const {
  int64_t n = 0;
  for (auto i = static_cast<size_t>(write_begin / block_size_); i < table.blocks.size(); ++i)
    n += blocks_[index(table.blocks[i])].ref_count > 1;
  return n;
}

bool BlockManager::can_append(const AppendParams& params) const {
  auto it = tables_.find(params.seq);
  PX_CHECK_MSG(it != tables_.end(), "can_append: unknown sequence");
  PX_CHECK(params.write_begin >= 0 && params.write_begin <= params.num_tokens);
  const Table& table = it->second;
  const int64_t grow = std::max<int64_t>(0, blocks_for(params.num_tokens) - static_cast<int64_t>(table.blocks.size()));
  return grow + num_shared_from(table, params.write_begin) <= num_available();
}

Result<std::vector<BlockCopy>> BlockManager::append_slots(const AppendParams& params) {
  if (!can_append(params))
    return resource_exhausted("KV cache: no free block for sequence " + std::to_string(params.seq.value));
  Table& table = tables_.at(params.seq);
  std::vector<BlockCopy> copies;
  for (auto i = static_cast<size_t>(params.write_begin / block_size_); i < table.blocks.size(); ++i) {
    BlockId& block = table.blocks[i];
    if (blocks_[index(block)].ref_count == 1) continue;
    // Copy on write: the other sharers keep the block; this table continues in a fresh copy. A
    // registered (full, computed) block is never written again.
    PX_CHECK_MSG(!blocks_[index(block)].hashed && static_cast<int64_t>(i) >= table.num_committed,
                 "append_slots: a step would write into a committed block");
    const BlockId fresh = take_fresh();
    if (params.write_begin > static_cast<int64_t>(i) * block_size_) copies.push_back({.src = block, .dst = fresh});
    release(block);
    block = fresh;
  }
  while (static_cast<int64_t>(table.blocks.size()) < blocks_for(params.num_tokens))
    table.blocks.push_back(take_fresh());
  return copies;
}

void BlockManager::commit(SeqId seq, std::span<const ContentHash> block_hashes, int64_t num_computed_tokens) {
  Table& table = tables_.at(seq);
  const int64_t full = std::min(num_computed_tokens / block_size_, static_cast<int64_t>(table.blocks.size()));
  PX_CHECK_MSG(static_cast<int64_t>(block_hashes.size()) >= full, "commit: fewer hashes than computed full blocks");
  for (int64_t i = table.num_committed; i < full; ++i) {
    Block& block = blocks_[index(table.blocks[static_cast<size_t>(i)])];
    const ContentHash& h = block_hashes[static_cast<size_t>(i)];
    if (!enable_prefix_caching_) continue;
    if (block.hashed) {  // shared through fork and committed by a sibling already
      PX_CHECK_MSG(block.hash == h, "commit: a block's content changed");
      continue;
    }
    // Two sequences that computed the same content concurrently: the first registered stays; the
    // duplicate remains unhashed and returns to the free list when released.
    if (cached_.count(h) != 0) continue;
    block.hashed = true;
    block.hash = h;
    cached_.emplace(h, table.blocks[static_cast<size_t>(i)]);
  }
  table.num_committed = std::max(table.num_committed, full);
}

void BlockManager::fork(const ForkParams& params) {
  PX_CHECK_MSG(!contains(params.child), "fork: the child already has blocks");
  const Table& parent = tables_.at(params.parent);
  const int64_t shared = blocks_for(params.num_tokens);
  PX_CHECK(params.num_tokens >= 0 && shared <= static_cast<int64_t>(parent.blocks.size()));
  Table child;
  child.blocks.assign(parent.blocks.begin(), parent.blocks.begin() + shared);
  for (BlockId block : child.blocks) acquire(block);
  child.num_committed = std::min(parent.num_committed, shared);
  tables_.emplace(params.child, std::move(child));
}

void BlockManager::free(SeqId seq) {
  auto it = tables_.find(seq);
  PX_CHECK_MSG(it != tables_.end(), "free: unknown sequence");
  const std::vector<BlockId>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) release(*b);
  tables_.erase(it);
}

std::span<const BlockId> BlockManager::block_table(SeqId seq) const {
  auto it = tables_.find(seq);
  PX_CHECK_MSG(it != tables_.end(), "block_table: unknown sequence");
  return it->second.blocks;
}

BlockId BlockManager::take_fresh() {
  BlockId block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else {
    PX_CHECK_MSG(lru_head_ >= 0, "take_fresh: the pool is exhausted (callers check can_allocate)");
    block = BlockId{lru_head_};
    lru_remove(block);
    Block& b = blocks_[index(block)];
    cached_.erase(b.hash);
    b.hashed = false;
    ++num_evictions_;
  }
  Block& b = blocks_[index(block)];
  PX_CHECK(b.ref_count == 0);
  b.ref_count = 1;
  return block;
}

void BlockManager::acquire(BlockId block) {
  Block& b = blocks_[index(block)];
  if (b.ref_count == 0) lru_remove(block);
  ++b.ref_count;
}

void BlockManager::release(BlockId block) {
  Block& b = blocks_[index(block)];
  PX_CHECK_MSG(b.ref_count > 0, "release: double free of a block");
  if (--b.ref_count > 0) return;
  if (b.hashed)
    lru_push_back(block);
  else
    free_.push_back(block);
}

void BlockManager::lru_push_back(BlockId block) {
  Block& b = blocks_[index(block)];
  PX_CHECK(!b.in_lru);
  b.in_lru = true;
  b.lru_prev = lru_tail_;
  b.lru_next = -1;
  if (lru_tail_ >= 0)
    blocks_[static_cast<size_t>(lru_tail_)].lru_next = block.value;
  else
    lru_head_ = block.value;
  lru_tail_ = block.value;
  ++num_lru_;
}

void BlockManager::lru_remove(BlockId block) {
  Block& b = blocks_[index(block)];
  PX_CHECK(b.in_lru);
  if (b.lru_prev >= 0)
    blocks_[static_cast<size_t>(b.lru_prev)].lru_next = b.lru_next;
  else
    lru_head_ = b.lru_next;
  if (b.lru_next >= 0)
    blocks_[static_cast<size_t>(b.lru_next)].lru_prev = b.lru_prev;
  else
    lru_tail_ = b.lru_prev;
  b.in_lru = false;
  b.lru_prev = b.lru_next = -1;
  --num_lru_;
}

}  // namespace pixtral::kv_cache
