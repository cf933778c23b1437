// ImageCache: adapter outputs of images keyed by their content hash, so an image that appears in
// several requests runs through the vision encoder once. Entries are shared: a sequence holding
// one keeps it alive after eviction. Least recently used entries go first beyond `capacity`.
// Thread-compatibility: not thread-safe; the engine loop thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "backend/backend.h"
#include "kv_cache/content_hash.h"

namespace pixtral::engine {

// The features of one image, [rows, D] on the backend: a view into `owner` (one encoder call may
// cover several images).
struct ImageFeatures {
  std::shared_ptr<backend::TensorBuffer> owner;
  backend::Tensor rows;
};

class ImageCache {
 public:
  explicit ImageCache(int64_t capacity) : capacity_(capacity) {}

  // The entry of `hash`, marked most recently used; null when absent.
  std::shared_ptr<const ImageFeatures> find(const kv_cache::ContentHash& hash);
  // Adds (or replaces) an entry and evicts beyond the capacity.
  void insert(const kv_cache::ContentHash& hash, std::shared_ptr<const ImageFeatures> features);
  int64_t size() const { return static_cast<int64_t>(map_.size()); }

 private:
  using Lru = std::list<kv_cache::ContentHash>;  // front: most recently used
  struct Entry {
    std::shared_ptr<const ImageFeatures> features;
    Lru::iterator lru;
  };
  int64_t capacity_;
  Lru lru_;
  std::unordered_map<kv_cache::ContentHash, Entry, kv_cache::ContentHashHasher> map_;
};

}  // namespace pixtral::engine
