// The sample op on the CPU backend: sample_exp's accuracy and its two host code paths, the op
// against a reference written straight from the definition in ops.h (a full sort, every filter
// as worded there) over a randomized grid, the edge cases named there, penalty entries in order,
// and the frequencies of many draws against the kept weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/sample_math.h"
#include "backend/sample_row.h"

namespace pixtral::backend {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct Entry {
  int32_t row, token;
  float rep, sub;
};

struct RowCase {
  std::vector<float> logits;
  SampleRowParams params;
};

// ops.h SampleParams, literally: min-p, then top-k over what min-p kept, then top-p in (p desc,
// id asc) order with "the weight before a token < cut", then the draw in id order.
int32_t reference_sample(const std::vector<float>& x, const SampleRowParams& q) {
  const auto vocab = static_cast<int64_t>(x.size());
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (x[i] > x[best] || (std::isnan(x[best]) && !std::isnan(x[i]))) best = i;
  const auto argmax_id = static_cast<int32_t>(best);
  if (q.temperature < kSampleGreedyTemperature) return argmax_id;
  const float inv_t = 1.0f / q.temperature;
  std::vector<float> p(x.size());
  for (size_t i = 0; i < x.size(); ++i) p[i] = sample_prob(x[i], x[best], inv_t);
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  std::vector<bool> kept(x.size());
  int64_t count = 0;
  for (size_t i = 0; i < x.size(); ++i) count += kept[i] = p[i] >= q.min_p;
  if (q.top_k > 0 && q.top_k < count) {
    std::vector<int32_t> by_p;
    for (int32_t id : order)
      if (kept[id]) by_p.push_back(id);
    const float kth = p[by_p[q.top_k - 1]];
    for (size_t i = 0; i < x.size(); ++i) kept[i] = kept[i] && p[i] >= kth;
  }
  if (q.top_p < 1.0f) {
    uint64_t total = 0;
    for (size_t i = 0; i < x.size(); ++i) total += kept[i] ? sample_weight(p[i]) : 0;
    if (total == 0) return argmax_id;
    const uint64_t cut = std::max<uint64_t>(
        1, static_cast<uint64_t>(static_cast<double>(q.top_p) * static_cast<double>(total)));
    uint64_t before = 0;
    for (int32_t id : order) {
      if (!kept[id]) continue;
      const uint64_t w = sample_weight(p[id]);
      kept[id] = before < cut;
      before += w;
    }
  }
  uint64_t total = 0;
  for (size_t i = 0; i < x.size(); ++i) total += kept[i] ? sample_weight(p[i]) : 0;
  if (total == 0) return argmax_id;
  const uint64_t target = std::min(static_cast<uint64_t>(q.uniform * static_cast<double>(total)), total - 1);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!kept[i]) continue;
    cumulative += sample_weight(p[i]);
    if (cumulative > target) return static_cast<int32_t>(i);
  }
  ADD_FAILURE() << "the reference found no token";
  return -1;
}

// Runs the CPU backend's op over the rows (entries sorted by row).
std::vector<int32_t> run_op(const std::vector<RowCase>& rows, const std::vector<Entry>& entries) {
  static std::unique_ptr<Backend> cpu = make_cpu_backend();
  const auto r = static_cast<int64_t>(rows.size()), v = static_cast<int64_t>(rows[0].logits.size());
  const auto e = static_cast<int64_t>(entries.size());
  TensorBuffer logits = cpu->alloc(DType::kF32, {r, v}), temperature = cpu->alloc(DType::kF32, {r});
  TensorBuffer top_k = cpu->alloc(DType::kI32, {r}), top_p = cpu->alloc(DType::kF32, {r});
  TensorBuffer min_p = cpu->alloc(DType::kF32, {r}), uniform = cpu->alloc(DType::kF64, {r});
  TensorBuffer out = cpu->alloc(DType::kI32, {r});
  TensorBuffer row = cpu->alloc(DType::kI32, {e}), token = cpu->alloc(DType::kI32, {e});
  TensorBuffer rep = cpu->alloc(DType::kF32, {e}), sub = cpu->alloc(DType::kF32, {e});
  for (int64_t i = 0; i < r; ++i) {
    const RowCase& c = rows[static_cast<size_t>(i)];
    std::copy(c.logits.begin(), c.logits.end(), logits.tensor().as<float>() + i * v);
    temperature.tensor().as<float>()[i] = c.params.temperature;
    top_k.tensor().as<int32_t>()[i] = static_cast<int32_t>(c.params.top_k);
    top_p.tensor().as<float>()[i] = c.params.top_p;
    min_p.tensor().as<float>()[i] = c.params.min_p;
    uniform.tensor().as<double>()[i] = c.params.uniform;
  }
  for (int64_t i = 0; i < e; ++i) {
    row.tensor().as<int32_t>()[i] = entries[static_cast<size_t>(i)].row;
    token.tensor().as<int32_t>()[i] = entries[static_cast<size_t>(i)].token;
    rep.tensor().as<float>()[i] = entries[static_cast<size_t>(i)].rep;
    sub.tensor().as<float>()[i] = entries[static_cast<size_t>(i)].sub;
  }
  const auto maybe = [e](const TensorBuffer& t) { return e > 0 ? t.tensor() : Tensor{}; };
  cpu->sample({.logits = logits,
               .temperature = temperature,
               .top_k = top_k,
               .top_p = top_p,
               .min_p = min_p,
               .uniform = uniform,
               .penalty_row = maybe(row),
               .penalty_token = maybe(token),
               .penalty_rep = maybe(rep),
               .penalty_sub = maybe(sub),
               .out_ids = out});
  std::vector<int32_t> ids(static_cast<size_t>(r));
  cpu->download_i32(out, ids.data());
  return ids;
}

// Logits with ties (values on a coarse grid), masked (-inf) entries, or a sharp peak.
std::vector<float> random_logits(int64_t v, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind_of(0, 5);
  const int kind = kind_of(rng);
  const float scale = kind == 4 ? 12.0f : 3.0f;
  std::vector<float> x(static_cast<size_t>(v));
  for (float& f : x) {
    f = scale * normal(rng);
    if (kind == 1) f = std::round(f * 2.0f) / 2.0f;  // many ties
    if (kind == 2 && (rng() % 3) == 0) f = -kInf;    // a third masked
  }
  if (kind == 3) std::fill(x.begin(), x.end(), 0.5f);  // all equal
  if (kind == 5) {                                     // only three tokens left
    std::fill(x.begin(), x.end(), -kInf);
    for (int i = 0; i < 3; ++i) x[rng() % x.size()] = normal(rng);
  }
  return x;
}

SampleRowParams random_params(int64_t v, std::mt19937_64& rng) {
  const float temperatures[] = {0.0f, 5e-6f, 0.05f, 0.3f, 0.8f, 1.0f, 1.7f};
  const int64_t top_ks[] = {0, -1, 1, 2, 3, 50, v - 1, v, v + 5};
  const float top_ps[] = {1.0f, 1.0f, 0.9f, 0.5f, 0.999f, 1e-7f, 0.1f};
  const float min_ps[] = {0.0f, 0.0f, 0.05f, 0.5f, 1.0f, 1e-30f};
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double uniform = u(rng);
  if (rng() % 10 == 0) uniform = rng() % 2 == 0 ? 0.0 : 1.0 - 0x1p-53;
  return {.temperature = temperatures[rng() % 7],
          .top_k = top_ks[rng() % 9],
          .top_p = top_ps[rng() % 7],
          .min_p = min_ps[rng() % 6],
          .uniform = uniform};
}

TEST(SampleExp, AccurateExactAtZeroZeroBelowTheCutoff) {
  EXPECT_EQ(sample_exp(0.0f), 1.0f);
  EXPECT_EQ(sample_exp(-0.0f), 1.0f);
  EXPECT_EQ(sample_exp(-kInf), 0.0f);
  EXPECT_EQ(sample_exp(std::numeric_limits<float>::quiet_NaN()), 0.0f);
  EXPECT_EQ(sample_exp(-87.01f), 0.0f);
  EXPECT_GT(sample_exp(-87.0f), std::numeric_limits<float>::min());  // never subnormal
  // Uniform over [-87, 0] and log-uniform magnitudes down to 1e-30.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> linear(-87.0f, 0.0f), exponent(-30.0f, 1.9f);
  double worst = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float x = i % 2 == 0 ? linear(rng) : -std::pow(10.0f, exponent(rng));
    const double exact = std::exp(static_cast<double>(x));
    const auto rounded = static_cast<float>(exact);
    const double ulp = static_cast<double>(std::nextafter(rounded, kInf)) - rounded;
    worst = std::max(worst, std::abs(sample_exp(x) - exact) / ulp);
  }
  EXPECT_LE(worst, 2.0);
}

TEST(SampleExp, BothHostCodePathsGiveTheSameBits) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(-95.0f, 2.0f);
  std::vector<float> x(100003), p(x.size());
  for (float& f : x) f = u(rng);
  x[5] = -kInf;
  x[7] = std::numeric_limits<float>::quiet_NaN();
  for (float inv_t : {1.0f, 1.25f, 0.3f, 1e5f}) {
    sample_probs(x.data(), static_cast<int64_t>(x.size()), 2.0f, inv_t, p.data());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(p[i], sample_prob(x[i], 2.0f, inv_t)) << i << " " << x[i];
  }
}

TEST(SampleMath, WeightsAndTargets) {
  EXPECT_EQ(sample_weight(1.0f), uint64_t{1} << 40);
  EXPECT_EQ(sample_weight(0.5f), uint64_t{1} << 39);
  EXPECT_EQ(sample_weight(0x1p-41f), 0u);
  EXPECT_EQ(sample_weight(0.0f), 0u);
  EXPECT_EQ(sample_draw_target(0.0, 10), 0u);
  EXPECT_EQ(sample_draw_target(0.55, 10), 5u);
  EXPECT_EQ(sample_draw_target(1.0 - 0x1p-53, uint64_t{1} << 57), (uint64_t{1} << 57) - 16);
  EXPECT_EQ(sample_draw_target(1.0 - 0x1p-53, 3), 2u);
  EXPECT_EQ(sample_top_p_cut(1e-9f, 100), 1u);  // the top token always stays
  EXPECT_EQ(sample_top_p_cut(0.5f, 101), 50u);
  EXPECT_EQ(sample_penalize(2.0f, 2.0f, 0.5f), 0.5f);
  EXPECT_EQ(sample_penalize(-2.0f, 2.0f, 0.5f), -4.5f);
  EXPECT_EQ(sample_penalize(3.0f, 1.0f, kInf), -kInf);
}

TEST(CpuSample, MatchesTheReferenceOverARandomGrid) {
  std::mt19937_64 rng(7);
  int cases = 0;
  for (int64_t v : {1, 2, 7, 100, 1000, 5000}) {
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<RowCase> rows;
      for (int r = 0; r < 16; ++r) rows.push_back({random_logits(v, rng), random_params(v, rng)});
      const auto ids = run_op(rows, {});
      for (size_t r = 0; r < rows.size(); ++r, ++cases)
        ASSERT_EQ(ids[r], reference_sample(rows[r].logits, rows[r].params))
            << "V " << v << " T " << rows[r].params.temperature << " top_k " << rows[r].params.top_k
            << " top_p " << rows[r].params.top_p << " min_p " << rows[r].params.min_p << " u "
            << rows[r].params.uniform;
    }
  }
  EXPECT_EQ(cases, 6 * 12 * 16);
}

TEST(CpuSample, EdgeCases) {
  const SampleRowParams random{.temperature = 1.0f, .uniform = 0.999};
  // Every logit -inf: id 0, greedy or not.
  EXPECT_EQ(run_op({{std::vector<float>(9, -kInf), random}}, {}), std::vector<int32_t>{0});
  EXPECT_EQ(run_op({{std::vector<float>(9, -kInf), {}}}, {}), std::vector<int32_t>{0});
  // Greedy: the lowest id among equal maxima.
  EXPECT_EQ(run_op({{{1.0f, 3.0f, 0.0f, 3.0f}, {}}}, {}), std::vector<int32_t>{1});
  // The most likely token stays under any top_p; min_p 1 keeps only the maxima.
  EXPECT_EQ(run_op({{{1.0f, 3.0f, 2.9f, 3.0f}, {.temperature = 1.0f, .top_p = 1e-9f, .uniform = 0.99}}}, {}),
            std::vector<int32_t>{1});
  EXPECT_EQ(run_op({{{1.0f, 3.0f, 2.9f, 3.0f}, {.temperature = 1.0f, .min_p = 1.0f, .uniform = 0.99}}}, {}),
            std::vector<int32_t>{3});
  // top_k 2 with a tie at the 2nd value keeps all three; uniform just below 1 picks the last kept.
  EXPECT_EQ(
      run_op({{{5.0f, 4.0f, 4.0f, 0.0f}, {.temperature = 1.0f, .top_k = 2, .uniform = 1.0 - 1e-12}}}, {}),
      std::vector<int32_t>{2});
}

TEST(CpuSample, PenaltyEntriesApplyInOrderPerRow) {
  const std::vector<float> x = {1.0f, 4.0f, 3.5f, 0.0f};
  // Row 0: token 1: 4 / 2 - 1 = 1 -> 2 wins. Row 1: token 1 twice: (4 + 2) / 4 = 1.5, token 0:
  // 1 + 0.75 -> 2 wins. Row 2: tokens 2 and 1 masked -> 0 wins. Greedy rows show the values.
  const std::vector<Entry> entries = {{0, 1, 2.0f, 1.0f},   {1, 1, 1.0f, -2.0f}, {1, 1, 4.0f, 0.0f},
                                      {1, 0, 1.0f, -0.75f}, {2, 2, 1.0f, kInf},  {2, 1, 1.0f, kInf}};
  EXPECT_EQ(run_op({{x, {}}, {x, {}}, {x, {}}}, entries), (std::vector<int32_t>{2, 2, 0}));
  // The order of a token's entries matters: (4 + 2) / 4 = 1.5 < 2, but 4 / 4 + 2 = 3 > 2.
  const std::vector<float> y = {0.0f, 4.0f, 2.0f};
  EXPECT_EQ(run_op({{y, {}}}, {{0, 1, 1.0f, -2.0f}, {0, 1, 4.0f, 0.0f}}), std::vector<int32_t>{2});
  EXPECT_EQ(run_op({{y, {}}}, {{0, 1, 4.0f, 0.0f}, {0, 1, 1.0f, -2.0f}}), std::vector<int32_t>{1});
}

TEST(CpuSample, FrequenciesFollowTheKeptWeights) {
  const std::vector<float> x = {0.1f, 2.0f, 1.9f, -3.0f, 1.0f, 0.5f, -kInf, 1.9f};
  const SampleRowParams base{.temperature = 0.9f, .top_k = 5, .top_p = 0.9f};
  std::vector<RowCase> rows;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    SampleRowParams q = base;
    q.uniform = (i + 0.5) / draws;  // stratified: frequencies within 1 / draws of the weights
    rows.push_back({x, q});
  }
  const auto ids = run_op(rows, {});
  // The expected kept weights, from the reference's definition.
  std::vector<float> p(x.size());
  for (size_t i = 0; i < x.size(); ++i) p[i] = sample_prob(x[i], 2.0f, 1.0f / 0.9f);
  std::vector<int> counts(x.size());
  for (int32_t id : ids) ++counts[static_cast<size_t>(id)];
  std::vector<double> expected(x.size());
  RowSampler sampler;
  sampler.sample(x, base);
  double total = 0;
  for (size_t i = 0; i < x.size(); ++i)
    total += expected[i] = sampler.kept(static_cast<int64_t>(i)) ? sample_weight(p[i]) : 0;
  int kept = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    kept += expected[i] > 0;
    EXPECT_NEAR(counts[i], draws * expected[i] / total, 1.5) << i;
  }
  EXPECT_EQ(kept, 4);  // top-k 5 keeps 1, 2, 7, 4, 5; top-p 0.9 drops 5
}

}  // namespace
}  // namespace pixtral::backend
