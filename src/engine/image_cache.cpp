#include "engine/image_cache.h"

namespace pixtral::engine {

std::shared_ptr<const ImageFeatures> ImageCache::find(const kv_cache::ContentHash& hash) {
  auto it = map_.find(hash);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.features;
}

void ImageCache::insert(const kv_cache::ContentHash& hash, std::shared_ptr<const ImageFeatures> features) {
  if (capacity_ <= 0) return;
  if (auto it = map_.find(hash); it != map_.end()) {
    it->second.features = std::move(features);
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  lru_.push_front(hash);
  map_.emplace(hash, Entry{std::move(features), lru_.begin()});
  while (static_cast<int64_t>(map_.size()) > capacity_) {
    map_.erase(lru_.back());
    lru_.pop_back();
  }
}

}  // namespace pixtral::engine
