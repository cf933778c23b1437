// Byte-level BPE by rank, exactly as tiktoken's byte_pair_encode / _byte_pair_merge.
// ref: spec/inputs.md §2.2 step 3
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pixtral::tokenizer {

using Rank = uint32_t;
constexpr Rank kNoRank = UINT32_MAX;

// Byte string -> rank, with every rank's bytes kept in one arena. Open addressing, linear probing.
class RankTable {
 public:
  // Appends the next rank's bytes; returns false when those bytes are already present.
  RankTable();
  bool add(std::string_view bytes);
  Rank find(std::string_view bytes) const {
    // Pieces of 1 and 2 bytes are most lookups (every merge starts from byte pairs): direct tables.
    if (bytes.size() == 2) return pair_ranks_[(uint8_t(bytes[0]) << 8) | uint8_t(bytes[1])];
    if (bytes.size() == 1) return byte_ranks_[uint8_t(bytes[0])];
    return find_hashed(bytes);
  }
  std::string_view bytes(Rank rank) const {
    return std::string_view(arena_).substr(offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }
  size_t size() const { return offsets_.size() - 1; }
  void reserve(size_t n);

  // Ranks of `piece` (not empty) after merging; appends to `out`.
  void encode_piece(std::string_view piece, std::vector<Rank>* out) const;

 private:
  void grow();
  Rank find_hashed(std::string_view bytes) const;
  void merge_small(std::string_view piece, std::vector<Rank>* out) const;
  void merge_large(std::string_view piece, std::vector<Rank>* out) const;
  void merge_piece(std::string_view piece, std::vector<Rank>* out) const;

  std::string arena_;
  std::vector<uint32_t> offsets_{0};  // rank r: arena_[offsets_[r], offsets_[r+1])
  // (hash tag << 32) | (rank + 1); 0 = empty; size a power of two. The tag skips most compares.
  std::vector<uint64_t> slots_;
  uint64_t mask_ = 0;
  std::vector<Rank> byte_ranks_ = std::vector<Rank>(256, kNoRank);
  std::vector<Rank> pair_ranks_ = std::vector<Rank>(65536, kNoRank);
  uint32_t instance_id_;  // tells this table's entries apart in the per-thread piece cache
};

}  // namespace pixtral::tokenizer
