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
  bool add(std::string_view bytes);
  Rank find(std::string_view bytes) const;
  std::string_view bytes(Rank rank) const {
    return std::string_view(arena_).substr(offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }
  size_t size() const { return offsets_.size() - 1; }
  void reserve(size_t n);

  // Ranks of `piece` (not empty) after merging; appends to `out`.
  void encode_piece(std::string_view piece, std::vector<Rank>* out) const;

 private:
  void grow();
  void merge_small(std::string_view piece, std::vector<Rank>* out) const;
  void merge_large(std::string_view piece, std::vector<Rank>* out) const;

  std::string arena_;
  std::vector<uint32_t> offsets_{0};  // rank r: arena_[offsets_[r], offsets_[r+1])
  std::vector<uint32_t> slots_;       // rank + 1, 0 = empty; size a power of two
  uint64_t mask_ = 0;
};

}  // namespace pixtral::tokenizer
