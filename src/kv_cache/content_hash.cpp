#include "kv_cache/content_hash.h"

#include <xxhash.h>

#include <cstdio>

#include "base/check.h"

namespace pixtral::kv_cache {

namespace {

ContentHash from_xxh(const XXH128_hash_t& h) { return {h.low64, h.high64}; }

void update(XXH3_state_t* state, const void* data, size_t size) {
  PX_CHECK(XXH3_128bits_update(state, data, size) == XXH_OK);
}

void update_hash(XXH3_state_t* state, const ContentHash& h) {
  const uint64_t words[2] = {h.low, h.high};
  update(state, words, sizeof(words));
}

}  // namespace

std::string ContentHash::to_string() const {
  char text[33];
  std::snprintf(text, sizeof(text), "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return text;
}

ContentHash hash_bytes(std::span<const std::byte> bytes) {
  return from_xxh(XXH3_128bits(bytes.data(), bytes.size()));
}

ContentHash hash_block(const ContentHash& parent, std::span<const int32_t> block_token_ids,
                       std::span<const ContentHash> image_hashes) {
  XXH3_state_t* state = XXH3_createState();
  PX_CHECK(state != nullptr);
  PX_CHECK(XXH3_128bits_reset(state) == XXH_OK);
  update_hash(state, parent);
  // Lengths first, so that token bytes and image digests can never be mistaken for each other.
  const uint64_t lengths[2] = {block_token_ids.size(), image_hashes.size()};
  update(state, lengths, sizeof(lengths));
  update(state, block_token_ids.data(), block_token_ids.size_bytes());
  for (const ContentHash& h : image_hashes) update_hash(state, h);
  const ContentHash digest = from_xxh(XXH3_128bits_digest(state));
  XXH3_freeState(state);
  return digest;
}

void extend_block_hashes(const BlockHashParams& params, std::vector<ContentHash>& hashes) {
  PX_CHECK(params.block_size > 0);
  const int64_t bs = params.block_size;
  const int64_t num_full = static_cast<int64_t>(params.token_ids.size()) / bs;
  std::vector<ContentHash> overlapping;
  for (auto b = static_cast<int64_t>(hashes.size()); b < num_full; ++b) {
    const int64_t begin = b * bs, end = begin + bs;
    overlapping.clear();
    for (const ImageSpan& img : params.images)
      if (img.begin < end && img.end > begin) overlapping.push_back(img.hash);
    const ContentHash& parent = b == 0 ? kRootHash : hashes[static_cast<size_t>(b - 1)];
    hashes.push_back(hash_block(parent, params.token_ids.subspan(static_cast<size_t>(begin), static_cast<size_t>(bs)),
                                overlapping));
  }
}

}  // namespace pixtral::kv_cache
