// Sampler: greedy is argmax; a seed makes sampling reproducible; top-k/top-p restrict the support.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <set>

namespace pixtral::engine {
namespace {

const std::vector<float> kLogits = {0.1f, 2.0f, 1.9f, -3.0f, 1.0f, 0.5f};

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({.temperature = 0.0f});
  EXPECT_EQ(s.sample(kLogits.data(), 6), 1);
}

TEST(Sampler, SameSeedSameSequence) {
  Sampler a({.temperature = 1.0f, .seed = 42}), b({.temperature = 1.0f, .seed = 42}), c({.temperature = 1.0f, .seed = 43});
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(a.sample(kLogits.data(), 6));
    sb.push_back(b.sample(kLogits.data(), 6));
    sc.push_back(c.sample(kLogits.data(), 6));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(Sampler, TopKAndTopPRestrictTheSupport) {
  Sampler top_k({.temperature = 5.0f, .top_k = 2, .seed = 1});
  Sampler top_p({.temperature = 1.0f, .top_p = 0.5f, .seed = 1});
  std::set<int32_t> seen_k, seen_p;
  for (int i = 0; i < 500; ++i) {
    seen_k.insert(top_k.sample(kLogits.data(), 6));
    seen_p.insert(top_p.sample(kLogits.data(), 6));
  }
  EXPECT_EQ(seen_k, (std::set<int32_t>{1, 2}));
  // softmax mass of id 1 alone is < 0.5, ids 1 and 2 together exceed it
  EXPECT_EQ(seen_p, (std::set<int32_t>{1, 2}));
}

}  // namespace
}  // namespace pixtral::engine
