// The paged KV cache storage: per decoder layer, K and V blocks of
// [num_blocks, block_size, Hkv, hd] in the backend's activation dtype. Which blocks a sequence
// uses is decided by its block table (the block manager of the serving engine, or a caller).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"

namespace pixtral::model {

struct KvCache {
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  std::vector<backend::TensorBuffer> k;  // [num_layers] x [num_blocks, block_size, Hkv, hd]
  std::vector<backend::TensorBuffer> v;  // idem

  static KvCache create(backend::Backend& backend, const io::TextConfig& text, int64_t num_blocks,
                        int64_t block_size);
  // Bytes of K+V per token over all layers (for sizing the pool).
  static int64_t bytes_per_token(const io::TextConfig& text, base::DType dtype);
  // Copies K and V of block src into block dst, every layer, on the backend's stream (copy on write
  // of a block that several sequences share; run before the step that writes dst).
  void copy_block(backend::Backend& backend, int64_t src, int64_t dst) const;
};

}  // namespace pixtral::model
