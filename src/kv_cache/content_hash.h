// Content hashes for the prefix cache: 128-bit XXH3 digests of images and of KV blocks, where a
// block's hash chains the previous block's hash, its token ids and the hashes of the images whose
// tokens fall inside it (docs/decisions/0004-kv-cache-and-scheduler.md). Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace pixtral::kv_cache {

// A 128-bit digest. Equal digests are treated as equal content (collisions: ~2^-64 at 2^32 blocks).
struct ContentHash {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const ContentHash&) const = default;
  std::string to_string() const;  // 32 hex digits, high first
};

struct ContentHashHasher {
  size_t operator()(const ContentHash& h) const { return static_cast<size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ull)); }
};

// The parent of a sequence's first block. A deployment serving several models (or adapters) would
// salt it per model; one model per process needs no salt.
inline constexpr ContentHash kRootHash{0x5078747261634B56ull, 0x0000000000000001ull};

// Digest of arbitrary bytes (an image's normalized pixels or its encoded file bytes).
ContentHash hash_bytes(std::span<const std::byte> bytes);

// Where an image sits in a sequence: its content hash and the token positions [begin, end) of its
// [IMG]/[IMG_BREAK]/[IMG_END] tokens. Images of one sequence are sorted and do not overlap.
struct ImageSpan {
  ContentHash hash;
  int64_t begin = 0;
  int64_t end = 0;
};

// hash(parent, token ids of the block, hashes of the images overlapping the block, in order).
ContentHash hash_block(const ContentHash& parent, std::span<const int32_t> block_token_ids,
                       std::span<const ContentHash> image_hashes);

struct BlockHashParams {
  std::span<const int32_t> token_ids;  // the whole sequence so far
  std::span<const ImageSpan> images;   // its images, sorted by begin
  int64_t block_size = 16;
};

// Appends to `hashes` the chained hashes of the full blocks of token_ids that it lacks (it holds the
// first hashes.size() blocks' hashes already); a partial last block gets no hash.
void extend_block_hashes(const BlockHashParams& params, std::vector<ContentHash>& hashes);

}  // namespace pixtral::kv_cache
