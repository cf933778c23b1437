// KvCache::copy_block (copy on write of a shared block): K and V of every layer, that block only.
#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"

namespace pixtral::model {
namespace {

std::vector<float> download(backend::Backend& b, const backend::Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  b.download_f32(t, host.data());
  return host;
}

TEST(KvCache, CopyBlockCopiesKAndVOfEveryLayer) {
  auto cpu = backend::make_cpu_backend();
  const io::TextConfig text{.num_layers = 3, .num_kv_heads = 2, .head_dim = 4};
  KvCache cache = KvCache::create(*cpu, text, /*num_blocks=*/5, /*block_size=*/4);
  uint64_t seed = 1;
  for (const auto* layers : {&cache.k, &cache.v})
    for (const backend::TensorBuffer& buffer : *layers) cpu->fill_random(buffer, seed++, 0.0f, 1.0f);
  std::vector<std::vector<float>> before;
  for (const auto* layers : {&cache.k, &cache.v})
    for (const backend::TensorBuffer& buffer : *layers) before.push_back(download(*cpu, buffer));
  cache.copy_block(*cpu, /*src=*/1, /*dst=*/3);
  size_t i = 0;
  const size_t block = 4 * 2 * 4;  // block_size x Hkv x hd
  for (const auto* layers : {&cache.k, &cache.v})
    for (const backend::TensorBuffer& buffer : *layers) {
      const std::vector<float> after = download(*cpu, buffer);
      std::vector<float> expected = before[i++];
      std::copy_n(expected.begin() + 1 * block, block, expected.begin() + 3 * block);
      EXPECT_EQ(after, expected);
      EXPECT_NE(std::vector<float>(expected.begin() + 3 * block, expected.begin() + 4 * block),
                std::vector<float>(before[i - 1].begin() + 3 * block, before[i - 1].begin() + 4 * block));
    }
}

}  // namespace
}  // namespace pixtral::model
