#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "base/check.h"

namespace pixtral::tokenizer {
namespace {

constexpr size_t kLargePiece = 128;  // tiktoken switches to its heap version at 100; same result

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xFF51AFD7ED558CCDull);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
  }
  if (i < s.size()) {
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  }
  h ^= h >> 32;
  return h * 0x9E3779B97F4A7C15ull;
}

// A direct-mapped per-thread cache of piece -> ranks: most pieces of real text are repeated words,
// and a hit skips merging entirely. Per thread, so encode() stays const and lock-free.
struct PieceCache {
  static constexpr size_t kEntries = 1 << 14;
  static constexpr size_t kMaxKey = 22;
  static constexpr size_t kMaxRanks = 6;
  struct Entry {
    uint32_t owner = 0;  // RankTable instance id; 0 = empty
    uint8_t key_len = 0, num_ranks = 0;
    char key[kMaxKey];
    Rank ranks[kMaxRanks];
  };
  Entry entries[kEntries];
};

PieceCache& piece_cache() {
  thread_local std::unique_ptr<PieceCache> cache = std::make_unique<PieceCache>();
  return *cache;
}

std::atomic<uint32_t> next_instance_id{1};

inline uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1u; }

}  // namespace

RankTable::RankTable() : instance_id_(next_instance_id.fetch_add(1)) {}

void RankTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(cap, 0);
  mask_ = cap - 1;
  for (uint64_t v : old) {
    if (v == 0) continue;
    uint64_t i = hash_bytes(bytes(static_cast<uint32_t>(v) - 1)) & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = v;
  }
}

void RankTable::grow() { reserve(slots_.empty() ? 1024 : slots_.size()); }

bool RankTable::add(std::string_view b) {
  if ((size() + 1) * 2 > slots_.size()) grow();
  const uint64_t h = hash_bytes(b);
  uint64_t i = h & mask_;
  while (slots_[i] != 0) {
    if (bytes(static_cast<uint32_t>(slots_[i]) - 1) == b) return false;
    i = (i + 1) & mask_;
  }
  const Rank rank = static_cast<Rank>(size());
  if (b.size() == 1) byte_ranks_[uint8_t(b[0])] = rank;
  if (b.size() == 2) pair_ranks_[(uint8_t(b[0]) << 8) | uint8_t(b[1])] = rank;
  arena_.append(b);
  offsets_.push_back(static_cast<uint32_t>(arena_.size()));
  slots_[i] = (uint64_t{tag_of(h)} << 32) | static_cast<uint32_t>(size());  // rank + 1
  return true;
}

Rank RankTable::find_hashed(std::string_view b) const {
  if (slots_.empty()) return kNoRank;
  const uint64_t h = hash_bytes(b);
  const uint32_t tag = tag_of(h);
  uint64_t i = h & mask_;
  for (;;) {
    const uint64_t slot = slots_[i];
    if (slot == 0) return kNoRank;
    const uint32_t v = static_cast<uint32_t>(slot);
    if (static_cast<uint32_t>(slot >> 32) != tag) {
      i = (i + 1) & mask_;
      continue;
    }
    const uint32_t begin = offsets_[v - 1], end = offsets_[v];
    if (end - begin == b.size() && std::memcmp(arena_.data() + begin, b.data(), b.size()) == 0) {
      return v - 1;
    }
    i = (i + 1) & mask_;
  }
}

void RankTable::encode_piece(std::string_view piece, std::vector<Rank>* out) const {
  PX_CHECK(!piece.empty());
  if (piece.size() == 1) {  // every single byte is a rank
    out->push_back(find(piece));
    return;
  }
  if (piece.size() > PieceCache::kMaxKey) {
    merge_piece(piece, out);
    return;
  }
  PieceCache::Entry& e = piece_cache().entries[hash_bytes(piece) & (PieceCache::kEntries - 1)];
  if (e.owner == instance_id_ && e.key_len == piece.size() && std::memcmp(e.key, piece.data(), piece.size()) == 0) {
    out->insert(out->end(), e.ranks, e.ranks + e.num_ranks);
    return;
  }
  const size_t before = out->size();
  merge_piece(piece, out);
  const size_t n = out->size() - before;
  if (n <= PieceCache::kMaxRanks) {
    e.owner = instance_id_;
    e.key_len = static_cast<uint8_t>(piece.size());
    e.num_ranks = static_cast<uint8_t>(n);
    std::memcpy(e.key, piece.data(), piece.size());
    std::copy(out->begin() + before, out->end(), e.ranks);
  }
}

void RankTable::merge_piece(std::string_view piece, std::vector<Rank>* out) const {
  // tiktoken looks the whole piece up first; this can give a token merging would not reach.
  const Rank whole = find(piece);
  if (whole != kNoRank) {
    out->push_back(whole);
    return;
  }
  if (piece.size() < kLargePiece) merge_small(piece, out);
  else merge_large(piece, out);
}

// tiktoken's _byte_pair_merge: parts[i] = (start, rank of bytes[start .. start of part i+2]).
// Repeatedly merges the pair with the lowest rank, leftmost on ties.
void RankTable::merge_small(std::string_view piece, std::vector<Rank>* out) const {
  struct Part {
    uint32_t start;
    Rank rank;
  };
  Part parts[kLargePiece + 1];
  const size_t n = piece.size();
  size_t count = 0;
  for (size_t i = 0; i + 1 < n; ++i) parts[count++] = {uint32_t(i), find(piece.substr(i, 2))};
  parts[count++] = {uint32_t(n - 1), kNoRank};
  parts[count++] = {uint32_t(n), kNoRank};
  auto pair_rank = [&](size_t i) -> Rank {
    if (i + 3 >= count) return kNoRank;
    return find(piece.substr(parts[i].start, parts[i + 3].start - parts[i].start));
  };
  for (;;) {
    Rank best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < count; ++i) {
      if (parts[i].rank < best) best = parts[i].rank, at = i;
    }
    if (best == kNoRank) break;
    if (at > 0) parts[at - 1].rank = pair_rank(at - 1);
    parts[at].rank = pair_rank(at);
    std::memmove(&parts[at + 1], &parts[at + 2], (count - at - 2) * sizeof(Part));
    --count;
  }
  for (size_t i = 0; i + 1 < count; ++i) {
    const Rank r = find(piece.substr(parts[i].start, parts[i + 1].start - parts[i].start));
    PX_CHECK(r != kNoRank);  // every single byte is a rank (checked at load)
    out->push_back(r);
  }
}

// Same result for long pieces in O(n log n): a doubly linked list of parts and a min-heap of
// (rank, start) candidate merges with lazy invalidation (tiktoken's _byte_pair_merge_large).
void RankTable::merge_large(std::string_view piece, std::vector<Rank>* out) const {
  const uint32_t n = static_cast<uint32_t>(piece.size());
  using Entry = std::pair<Rank, uint32_t>;
  struct Scratch {  // reused across calls: long pieces come in runs
    std::vector<uint32_t> next, prev;
    std::vector<Rank> rank;  // rank of part i merged with its next part; kNoRank when dead
    std::vector<Entry> heap;
  };
  thread_local Scratch sc;
  sc.next.resize(n);
  sc.prev.resize(n);
  sc.rank.assign(n, kNoRank);
  sc.heap.clear();
  std::vector<uint32_t>& next = sc.next;
  std::vector<uint32_t>& prev = sc.prev;
  std::vector<Rank>& rank = sc.rank;
  std::vector<uint8_t> alive(n, 1);
  const auto later = std::greater<Entry>();
  auto merged_rank = [&](uint32_t i) -> Rank {
    if (next[i] >= n) return kNoRank;
    const uint32_t stop = next[next[i]] >= n ? n : next[next[i]];
    return find(piece.substr(i, stop - i));
  };
  auto push = [&](uint32_t i) {
    rank[i] = merged_rank(i);
    if (rank[i] == kNoRank) return;
    sc.heap.push_back({rank[i], i});
    std::push_heap(sc.heap.begin(), sc.heap.end(), later);
  };
  for (uint32_t i = 0; i < n; ++i) next[i] = i + 1, prev[i] = i == 0 ? n : i - 1;
  for (uint32_t i = 0; i < n; ++i) push(i);
  while (!sc.heap.empty()) {
    std::pop_heap(sc.heap.begin(), sc.heap.end(), later);
    const auto [r, i] = sc.heap.back();
    sc.heap.pop_back();
    if (!alive[i] || rank[i] != r) continue;  // stale
    const uint32_t j = next[i];
    alive[j] = 0;
    next[i] = next[j];
    if (next[j] < n) prev[next[j]] = i;
    push(i);
    if (prev[i] < n) push(prev[i]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) {
    const uint32_t stop = next[i] >= n ? n : next[i];
    const Rank rr = find(piece.substr(i, stop - i));
    PX_CHECK(rr != kNoRank);
    out->push_back(rr);
  }
}

}  // namespace pixtral::tokenizer
