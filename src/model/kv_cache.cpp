#include "model/kv_cache.h"

namespace pixtral::model {

KvCache KvCache::create(backend::Backend& backend, const io::TextConfig& text, int64_t num_blocks,
                        int64_t block_size) {
  KvCache cache;
  cache.num_blocks = num_blocks;
  cache.block_size = block_size;
  for (int64_t l = 0; l < text.num_layers; ++l) {
    const backend::Shape shape{num_blocks, block_size, text.num_kv_heads, text.head_dim};
    cache.k.push_back(backend.alloc(backend.activation_dtype(), shape));
    cache.v.push_back(backend.alloc(backend.activation_dtype(), shape));
  }
  return cache;
}

int64_t KvCache::bytes_per_token(const io::TextConfig& text, base::DType dtype) {
  return 2 * text.num_layers * text.num_kv_heads * text.head_dim * static_cast<int64_t>(base::dtype_size(dtype));
}

void KvCache::copy_block(backend::Backend& backend, int64_t src, int64_t dst) const {
  for (const auto* layers : {&k, &v})
    for (const backend::TensorBuffer& buffer : *layers)
      backend.copy(buffer.tensor().rows(src, src + 1), buffer.tensor().rows(dst, dst + 1));
}

}  // namespace pixtral::model
