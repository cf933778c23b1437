// BlockManager: the host-side bookkeeping of the paged KV cache (after nano-vllm's
// engine/block_manager.py and vLLM's KV cache manager). Fixed-size blocks with reference counts;
// per-sequence block tables; automatic prefix caching: a block whose tokens have been computed is
// registered under its chained content hash (content_hash.h) and can be shared by any later
// sequence with the same prefix. A block nobody references keeps its hash ("cached") and is
// evicted least-recently-freed first, only when no never-hashed free block is left.
//
// Every block is in exactly one state: used (ref_count > 0), cached (ref_count 0, hashed, in the
// LRU list) or free (ref_count 0, no hash); free + cached + used == num_blocks at all times.
//
// Copy on write (n > 1 samples of one prompt): fork() lets a new sequence share every block of
// another, the partially filled last one included. A sequence never writes into a block that
// another table still references: append_slots() first swaps such a block for a fresh one and
// returns the copy (src -> dst) that the caller must perform on the device before the step writes.
// Full computed blocks are never written again, so in practice only a fork's last partial block is
// copied, once by each sharer but the last (which then owns it alone and writes in place).
//
// Thread-compatibility: not thread-safe; one owner (the engine loop thread) calls it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kv_cache/content_hash.h"
#include "pixtral/status.h"

namespace pixtral::kv_cache {

// Index of a block in the KV pool ([num_blocks, block_size, ...] storage of model::KvCache).
struct BlockId {
  int32_t value = -1;
  auto operator<=>(const BlockId&) const = default;
};

// A sequence (one request's one completion) known to the block manager and the scheduler.
struct SeqId {
  int64_t value = -1;
  auto operator<=>(const SeqId&) const = default;
};

struct SeqIdHasher {
  size_t operator()(SeqId id) const { return std::hash<int64_t>()(id.value); }
};

struct BlockManagerParams {
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  bool enable_prefix_caching = true;
};

struct BlockStats {
  int64_t num_blocks = 0;
  int64_t num_free = 0;    // unreferenced, no hash
  int64_t num_cached = 0;  // unreferenced, hashed: reusable by a prefix hit, evictable
  int64_t num_used = 0;    // referenced by at least one block table
  int64_t num_sequences = 0;
  // Prefix cache effectiveness, in blocks, counted at allocate().
  int64_t prefix_query_blocks = 0;
  int64_t prefix_hit_blocks = 0;
  int64_t num_evictions = 0;  // cached blocks whose hash was dropped to reuse them
};

struct AllocateParams {
  SeqId seq;
  std::span<const ContentHash> block_hashes;  // chained hashes of the sequence's full blocks known now
  int64_t num_cached_blocks = 0;  // leading blocks to take from the cache (a match_prefix result)
  int64_t num_tokens = 0;         // slots the new table must cover
  // Blocks that must be available beyond the table (checked, not taken): the first blocks of the
  // samples that will be forked off this sequence (n > 1).
  int64_t num_extra_blocks = 0;
};

struct AppendParams {
  SeqId seq;
  int64_t write_begin = 0;  // first slot the step writes (the sequence's computed tokens so far)
  int64_t num_tokens = 0;   // slots the table must cover (>= write_begin)
};

// K and V of block src are to be copied into block dst (every layer) before the step runs.
struct BlockCopy {
  BlockId src;
  BlockId dst;
  auto operator<=>(const BlockCopy&) const = default;
};

struct ForkParams {
  SeqId parent;
  SeqId child;
  int64_t num_tokens = 0;  // the parent's computed slots the child shares (blocks_for(num_tokens) blocks)
};

class BlockManager {
 public:
  explicit BlockManager(const BlockManagerParams& params);

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  // Blocks needed to hold num_tokens slots.
  int64_t blocks_for(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // Number of leading hashes whose blocks are in the cache (the longest cached prefix). No change.
  int64_t match_prefix(std::span<const ContentHash> block_hashes) const;
  // Whether allocate(params) would succeed now.
  bool can_allocate(const AllocateParams& params) const;
  // Creates the table of a new sequence: the cached blocks (shared, ref_count + 1), then fresh
  // blocks up to num_tokens slots. kResourceExhausted (and no change) when blocks are short.
  Status allocate(const AllocateParams& params);

  // Whether / grow seq's table to cover num_tokens slots (a prefill chunk, or +1 per decode step)
  // for a step that writes slots [write_begin, num_tokens). A block in that range that another
  // table shares is replaced by a fresh one (copy on write); the copies to perform come back (empty
  // but for a fork's shared partial block). kResourceExhausted (and no change) when blocks are short.
  bool can_append(const AppendParams& params) const;
  Result<std::vector<BlockCopy>> append_slots(const AppendParams& params);

  // After a step computed seq's tokens [0, num_computed_tokens): registers the hashes of its newly
  // completed full blocks (block_hashes: the sequence's chained hashes, at least that many).
  void commit(SeqId seq, std::span<const ContentHash> block_hashes, int64_t num_computed_tokens);

  // The child (new) shares the parent's blocks of its first num_tokens slots, the partially filled
  // last one included (ref counts + 1; n > 1 samples of one prompt). Needs no free block: whichever
  // of the two later writes into a still-shared block gets a copy first (append_slots).
  void fork(const ForkParams& params);

  // Drops seq's table; blocks whose count reaches 0 become free or cached (tail blocks first in
  // eviction order, so a shared prefix outlives the sequence's own tail).
  void free(SeqId seq);

  bool contains(SeqId seq) const { return tables_.count(seq) != 0; }
  // The table of seq (valid until the next call that changes seq's table).
  std::span<const BlockId> block_table(SeqId seq) const;
  int32_t ref_count(BlockId block) const { return blocks_[index(block)].ref_count; }
  bool is_hashed(BlockId block) const { return blocks_[index(block)].hashed; }
  BlockStats stats() const;

  // Full audit of the invariants (ref counts equal table occurrences, every block in exactly one
  // state, hash map consistent). O(num_blocks + table sizes); for tests and debug checks.
  Status audit() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;
    ContentHash hash;
    int32_t lru_prev = -1;  // intrusive LRU list of cached blocks (-1: none)
    int32_t lru_next = -1;
    bool in_lru = false;
  };
  struct Table {
    std::vector<BlockId> blocks;
    int64_t num_committed = 0;  // leading blocks registered in (or taken from) the cache
  };

  size_t index(BlockId block) const;
  // Blocks of `table` from write_begin's block on that another table also references.
  int64_t num_shared_from(const Table& table, int64_t write_begin) const;
  int64_t num_available() const { return static_cast<int64_t>(free_.size()) + num_lru_; }
  BlockId take_fresh();            // a free block, else the LRU cached one (its hash dropped)
  void acquire(BlockId block);     // ref_count + 1 (leaves the LRU list at 0 -> 1)
  void release(BlockId block);     // ref_count - 1 (to free_ or the LRU tail at 0)
  void lru_push_back(BlockId block);
  void lru_remove(BlockId block);
  Status audit_states() const;

  int64_t block_size_;
  bool enable_prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<BlockId> free_;  // stack of unreferenced blocks without a hash
  int32_t lru_head_ = -1;      // least recently freed cached block: evicted first
  int32_t lru_tail_ = -1;
  int64_t num_lru_ = 0;
  std::unordered_map<ContentHash, BlockId, ContentHashHasher> cached_;
  std::unordered_map<SeqId, Table, SeqIdHasher> tables_;
  int64_t prefix_query_blocks_ = 0;
  int64_t prefix_hit_blocks_ = 0;
  int64_t num_evictions_ = 0;
};

struct PoolSizeParams {
  int64_t budget_bytes = 0;     // bytes the KV pool may use
  int64_t bytes_per_token = 0;  // K+V bytes per token over all layers (model::KvCache::bytes_per_token)
  int64_t block_size = 16;
};

// Number of whole blocks that fit in the budget; kInvalidArgument for non-positive sizes,
// kResourceExhausted when not even one block fits.
Result<int64_t> num_blocks_for_budget(const PoolSizeParams& params);

}  // namespace pixtral::kv_cache
