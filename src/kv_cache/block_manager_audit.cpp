// BlockManager's statistics, invariant audit and the pool sizing helper.
#include <string>
#include <vector>

#include "kv_cache/block_manager.h"

namespace pixtral::kv_cache {

BlockStats BlockManager::stats() const {
  BlockStats s;
  s.num_blocks = num_blocks();
  s.num_free = static_cast<int64_t>(free_.size());
  s.num_cached = num_lru_;
  s.num_used = s.num_blocks - s.num_free - s.num_cached;
  s.num_sequences = static_cast<int64_t>(tables_.size());
  s.prefix_query_blocks = prefix_query_blocks_;
  s.prefix_hit_blocks = prefix_hit_blocks_;
  s.num_evictions = num_evictions_;
  return s;
}

Status BlockManager::audit() const {
  std::vector<int64_t> refs(blocks_.size(), 0);
  for (const auto& [seq, table] : tables_) {
    if (table.num_committed > static_cast<int64_t>(table.blocks.size()))
      return internal_error("sequence " + std::to_string(seq.value) + ": more committed blocks than blocks");
    for (BlockId block : table.blocks) {
      if (block.value < 0 || static_cast<size_t>(block.value) >= blocks_.size())
        return internal_error("sequence " + std::to_string(seq.value) + ": block id out of range");
      ++refs[static_cast<size_t>(block.value)];
    }
  }
  for (size_t i = 0; i < blocks_.size(); ++i)
    if (refs[i] != blocks_[i].ref_count)
      return internal_error("block " + std::to_string(i) + ": ref_count " + std::to_string(blocks_[i].ref_count) +
                            " but " + std::to_string(refs[i]) + " table entries");
  return audit_states();
}

// Every block is in exactly one of used / cached (LRU) / free, and the hash map agrees.
Status BlockManager::audit_states() const {
  std::vector<int> seen(blocks_.size(), 0);
  for (BlockId block : free_) {
    const Block& b = blocks_[index(block)];
    if (b.ref_count != 0 || b.hashed || b.in_lru || seen[index(block)]++)
      return internal_error("free list entry " + std::to_string(block.value) + " is referenced, hashed or repeated");
  }
  int64_t lru_len = 0;
  for (int32_t i = lru_head_; i >= 0; i = blocks_[static_cast<size_t>(i)].lru_next) {
    const Block& b = blocks_[static_cast<size_t>(i)];
    if (b.ref_count != 0 || !b.hashed || !b.in_lru || seen[static_cast<size_t>(i)]++)
      return internal_error("LRU entry " + std::to_string(i) + " is referenced, unhashed or repeated");
    if (++lru_len > num_blocks()) return internal_error("the LRU list has a cycle");
  }
  if (lru_len != num_lru_) return internal_error("LRU length differs from its count");
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    if (b.ref_count == 0 && !seen[i])
      return internal_error("block " + std::to_string(i) + " is unreferenced but neither free nor cached");
    if (b.ref_count > 0 && b.in_lru) return internal_error("block " + std::to_string(i) + " is referenced and in the LRU");
    if (b.hashed) {
      auto it = cached_.find(b.hash);
      if (it == cached_.end() || it->second.value != static_cast<int32_t>(i))
        return internal_error("block " + std::to_string(i) + ": its hash does not map back to it");
    }
  }
  for (const auto& [hash, block] : cached_) {
    const Block& b = blocks_[index(block)];
    if (!b.hashed || !(b.hash == hash)) return internal_error("hash map entry " + hash.to_string() + " is stale");
  }
  return Status::ok();
}

Result<int64_t> num_blocks_for_budget(const PoolSizeParams& params) {
  if (params.budget_bytes < 0 || params.bytes_per_token <= 0 || params.block_size <= 0)
    return invalid_argument("KV pool sizing: the budget, bytes per token and block size must be positive");
  const int64_t bytes_per_block = params.bytes_per_token * params.block_size;
  const int64_t n = params.budget_bytes / bytes_per_block;
  if (n == 0)
    return resource_exhausted("KV pool sizing: " + std::to_string(params.budget_bytes) + " bytes hold no block of " +
                              std::to_string(bytes_per_block) + " bytes");
  return n;
}

}  // namespace pixtral::kv_cache
