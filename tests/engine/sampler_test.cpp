// Sampler: parameter validation, greedy == argmax, seeded reproducibility independent of other
// requests, the supports and frequencies of temperature/top-k/top-p/min-p against distributions
// computed here independently, each penalty against its formula, min_tokens masking, logprobs.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>

namespace pixtral::engine {
namespace {

const std::vector<float> kLogits = {0.1f, 2.0f, 1.9f, -3.0f, 1.0f, 0.5f};
constexpr float kInf = std::numeric_limits<float>::infinity();

std::span<const float> row(const std::vector<float>& v) { return {v.data(), v.size()}; }

// softmax(logits / t) in double, the reference every statistical test compares against.
std::vector<double> softmax(const std::vector<float>& logits, double t = 1.0) {
  double m = -kInf;
  for (float v : logits) m = std::max(m, v / t);
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp(logits[i] / t - m);
  for (double& v : p) v /= total;
  return p;
}

// Keeps the entries of p where keep(i) holds and renormalises.
std::vector<double> restrict(std::vector<double> p, const std::function<bool(size_t)>& keep) {
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += keep(i) ? p[i] : (p[i] = 0);
  for (double& v : p) v /= total;
  return p;
}

// Draws `draws` tokens and checks every frequency within 5 sigma of `expected`; ids of probability
// zero must never come.
void expect_frequencies(const SamplingParams& params, const std::vector<float>& logits,
                        const std::vector<double>& expected, int draws = 20000) {
  Sampler sampler(params);
  std::vector<int> counts(logits.size());
  for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(sampler.sample(row(logits)).token)];
  for (size_t id = 0; id < logits.size(); ++id) {
    const double p = expected[id];
    const double freq = static_cast<double>(counts[id]) / draws;
    if (p == 0) {
      EXPECT_EQ(counts[id], 0) << "id " << id << " is outside the support";
    } else {
      EXPECT_NEAR(freq, p, 5 * std::sqrt(p * (1 - p) / draws) + 1e-9) << "id " << id;
    }
  }
}

std::set<int32_t> support(const SamplingParams& params, const std::vector<float>& logits, int draws = 3000) {
  Sampler sampler(params);
  std::set<int32_t> seen;
  for (int i = 0; i < draws; ++i) seen.insert(sampler.sample(row(logits)).token);
  return seen;
}

// ---- validation ----

struct BadParam {
  std::function<void(SamplingParams&)> set;
  std::string message;
};

TEST(SamplingParams, DefaultsAndFullRangesAreValid) {
  EXPECT_TRUE(validate({}).is_ok());
  SamplingParams p{.temperature = 2.0f, .top_p = 0.01f, .top_k = -1, .min_p = 1.0f, .repetition_penalty = 0.5f,
                   .presence_penalty = -2.0f, .frequency_penalty = 2.0f, .seed = 7, .max_tokens = 5,
                   .min_tokens = 5, .stop_token_ids = {0, 9}, .stop = {"x"}, .logprobs = true,
                   .top_logprobs = 20, .n = 3};
  EXPECT_TRUE(validate(p, 10).is_ok()) << validate(p, 10).to_string();
}

TEST(SamplingParams, EachViolationNamesItsField) {
  const std::vector<BadParam> cases = {
      {[](auto& p) { p.temperature = -0.5f; }, "temperature must be non-negative and finite, got -0.5."},
      {[](auto& p) { p.temperature = NAN; }, "temperature must be"},
      {[](auto& p) { p.temperature = kInf; }, "temperature must be"},
      {[](auto& p) { p.top_p = 0.0f; }, "top_p must be in (0, 1], got 0."},
      {[](auto& p) { p.top_p = 1.5f; }, "top_p must be in (0, 1], got 1.5."},
      {[](auto& p) { p.top_k = -2; }, "top_k must be 0 or -1 (disable), or at least 1, got -2."},
      {[](auto& p) { p.min_p = 1.1f; }, "min_p must be in [0, 1], got 1.1."},
      {[](auto& p) { p.min_p = -0.1f; }, "min_p must be in [0, 1]"},
      {[](auto& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty must be greater than zero"},
      {[](auto& p) { p.presence_penalty = 2.5f; }, "presence_penalty must be in [-2, 2], got 2.5."},
      {[](auto& p) { p.frequency_penalty = -3.0f; }, "frequency_penalty must be in [-2, 2], got -3."},
      {[](auto& p) { p.max_tokens = 0; }, "max_tokens must be at least 1, got 0."},
      {[](auto& p) { p.min_tokens = -1; }, "min_tokens must be greater than or equal to 0, got -1."},
      {[](auto& p) { p.max_tokens = 4, p.min_tokens = 5; }, "min_tokens must be less than or equal to max_tokens=4, got 5."},
      {[](auto& p) { p.stop = {"ok", ""}; }, "stop cannot contain an empty string."},
      {[](auto& p) { p.stop_token_ids = {3, 10}; }, "stop_token_ids must be token ids in [0, 10), got 10."},
      {[](auto& p) { p.stop_token_ids = {-1}; }, "stop_token_ids must be"},
      {[](auto& p) { p.logprobs = true, p.top_logprobs = 21; }, "top_logprobs must be in [0, 20], got 21."},
      {[](auto& p) { p.logprobs = true, p.top_logprobs = -1; }, "top_logprobs must be in [0, 20], got -1."},
      {[](auto& p) { p.top_logprobs = 2; }, "when using top_logprobs, logprobs must be set to true."},
      {[](auto& p) { p.n = 0; }, "n must be in [1, 16], got 0."},
      {[](auto& p) { p.n = 17; }, "n must be in [1, 16], got 17."},
  };
  for (const auto& c : cases) {
    SamplingParams p;
    c.set(p);
    const Status s = validate(p, 10);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(s.message().rfind(c.message, 0), 0u) << "got: " << s.message();
  }
}

TEST(SamplingParams, ChildrenOfNGetDerivedSeeds) {
  const SamplingParams seeded{.temperature = 1.0f, .seed = 100, .n = 3};
  for (int64_t i = 0; i < 3; ++i) {
    const SamplingParams child = child_params(seeded, i);
    EXPECT_EQ(child.n, 1);
    EXPECT_EQ(child.seed, std::optional<uint64_t>(100 + static_cast<uint64_t>(i)));
  }
  EXPECT_FALSE(child_params({.temperature = 1.0f, .n = 2}, 1).seed.has_value());
}

TEST(SamplingParams, EffectiveMaxTokens) {
  EXPECT_EQ(effective_max_tokens({}, 100, 1024).value(), 924);
  EXPECT_EQ(effective_max_tokens({.max_tokens = 24}, 1000, 1024).value(), 24);
  const auto over = effective_max_tokens({.max_tokens = 25}, 1000, 1024);
  ASSERT_FALSE(over.is_ok());
  EXPECT_EQ(over.status().message(),
            "This model's maximum context length is 1024 tokens. However, you requested 1025 tokens "
            "(1000 in the messages, 25 in the completion). Please reduce the length of the messages or "
            "completion.");
  EXPECT_FALSE(effective_max_tokens({}, 1024, 1024).is_ok());
}

// ---- greedy and seeds ----

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> logits(1000);
    for (float& v : logits) v = normal(gen);
    Sampler s({.temperature = 0.0f, .top_k = 5, .seed = static_cast<uint64_t>(trial)});
    EXPECT_EQ(s.sample(row(logits)).token, std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  Sampler tie({});
  EXPECT_EQ(tie.sample(row(std::vector<float>{1.0f, 3.0f, 0.0f, 3.0f})).token, 1);
  EXPECT_EQ(Sampler({}).sample(kLogits.data(), 6), 1);  // the generator's entry point
}

std::vector<int32_t> draw(Sampler& s, const std::vector<float>& logits, int count) {
  std::vector<int32_t> out;
  for (int i = 0; i < count; ++i) out.push_back(s.sample(row(logits)).token);
  return out;
}

TEST(Sampler, SameSeedSameSequenceOtherSeedOther) {
  const SamplingParams p{.temperature = 1.0f, .seed = 42};
  Sampler a(p), b(p), c({.temperature = 1.0f, .seed = 43});
  const auto sa = draw(a, kLogits, 64);
  EXPECT_EQ(sa, draw(b, kLogits, 64));
  EXPECT_NE(sa, draw(c, kLogits, 64));
  Sampler unseeded1({.temperature = 1.0f}), unseeded2({.temperature = 1.0f});
  EXPECT_NE(unseeded1.seed(), unseeded2.seed());
}

TEST(Sampler, SeededOutputIndependentOfOtherRequestsInTheBatch) {
  const SamplingParams p{.temperature = 0.8f, .top_p = 0.95f, .seed = 1234};
  Sampler alone(p);
  const auto expected = draw(alone, kLogits, 100);
  // The same request, now sharing a workspace and interleaved with other requests' calls.
  Sampler mine(p), other1({.temperature = 1.0f, .seed = 1234}), other2({.temperature = 1.5f});
  SamplerWorkspace shared;
  const std::vector<float> other_logits = {3.0f, -1.0f, 0.0f, 2.0f, 2.0f, 1.0f, 7.0f};
  std::vector<int32_t> got;
  for (int i = 0; i < 100; ++i) {
    for (int j = 0; j < i % 3; ++j) other1.sample(row(other_logits), shared);
    got.push_back(mine.sample(row(kLogits), shared).token);
    other2.sample(row(other_logits), shared);
  }
  EXPECT_EQ(got, expected);
}

TEST(Sampler, ChildSeedsGiveDistinctReproducibleSamples) {
  const SamplingParams parent{.temperature = 1.0f, .seed = 9, .n = 3};
  std::set<std::vector<int32_t>> distinct;
  for (int64_t i = 0; i < 3; ++i) {
    Sampler a(child_params(parent, i)), b(child_params(parent, i));
    const auto seq = draw(a, kLogits, 40);
    EXPECT_EQ(seq, draw(b, kLogits, 40));
    distinct.insert(seq);
  }
  EXPECT_EQ(distinct.size(), 3u);
}

TEST(Sampler, UniformDrawsAreUniform) {
  // Mean 1/2, variance 1/12, and ten equal bins within 5 sigma.
  const int n = 100000;
  std::vector<int> bins(10);
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) {
    const double u = uniform_at(77, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sq += u * u;
    ++bins[static_cast<size_t>(u * 10)];
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sq / n - (sum / n) * (sum / n), 1.0 / 12, 0.002);
  for (int b : bins) EXPECT_NEAR(b, n / 10, 5 * std::sqrt(n * 0.1 * 0.9));
}

// ---- the distribution: temperature, top-k, top-p, min-p ----

TEST(Sampler, FrequenciesFollowSoftmaxAtTemperature) {
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SCOPED_TRACE(t);
    expect_frequencies({.temperature = t, .seed = 5}, kLogits, softmax(kLogits, t));
  }
}

TEST(Sampler, TopKKeepsTheKLargestAndTiesAtTheThreshold) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 2.0f, 0.0f, 2.5f};
  EXPECT_EQ(support({.temperature = 3.0f, .top_k = 2, .seed = 1}, logits), (std::set<int32_t>{1, 5}));
  // The 3rd largest is 2.0, held by ids 2 and 3: both stay.
  EXPECT_EQ(support({.temperature = 3.0f, .top_k = 3, .seed = 1}, logits), (std::set<int32_t>{1, 2, 3, 5}));
  expect_frequencies({.temperature = 1.5f, .top_k = 3, .seed = 2}, logits,
                     restrict(softmax(logits, 1.5), [&](size_t i) { return logits[i] >= 2.0f; }));
}

// The smallest set of most likely ids whose mass reaches top_p, computed by a full sort.
std::vector<double> nucleus(const std::vector<double>& p, double top_p) {
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  std::vector<bool> keep(p.size());
  double mass = 0;
  for (size_t i : order) {
    if (mass >= top_p) break;
    keep[i] = true;
    mass += p[i];
  }
  return restrict(p, [&](size_t i) { return keep[i]; });
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // softmax(kLogits): id 1 alone holds < 0.5, ids 1 and 2 together more.
  EXPECT_EQ(support({.temperature = 1.0f, .top_p = 0.5f, .seed = 1}, kLogits), (std::set<int32_t>{1, 2}));
  EXPECT_EQ(support({.temperature = 1.0f, .top_p = 0.3f, .seed = 1}, kLogits), (std::set<int32_t>{1}));
  for (float top_p : {0.5f, 0.8f, 0.95f}) {
    SCOPED_TRACE(top_p);
    expect_frequencies({.temperature = 0.9f, .top_p = top_p, .seed = 3}, kLogits, nucleus(softmax(kLogits, 0.9), top_p));
  }
}

TEST(Sampler, TopPAppliesToTheTopKRenormalisedDistribution) {
  // probabilities 0.4, 0.3, 0.2, 0.1: top_p 0.5 alone keeps {0, 1}; after top-k 2 the renormalised
  // 0.571 of id 0 already reaches 0.5.
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  EXPECT_EQ(support({.temperature = 1.0f, .top_p = 0.5f, .seed = 4}, logits), (std::set<int32_t>{0, 1}));
  EXPECT_EQ(support({.temperature = 1.0f, .top_p = 0.5f, .top_k = 2, .seed = 4}, logits), (std::set<int32_t>{0}));
}

TEST(Sampler, MinPIsRelativeToTheTopTokenAfterTemperature) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f};
  // T = 1: ratios to the top 0.37, 0.14, 0.05 -> min_p 0.3 keeps ids 0, 1.
  EXPECT_EQ(support({.temperature = 1.0f, .min_p = 0.3f, .seed = 6}, logits), (std::set<int32_t>{0, 1}));
  // T = 2: ratios 0.61, 0.37, 0.22 -> ids 0, 1, 2.
  EXPECT_EQ(support({.temperature = 2.0f, .min_p = 0.3f, .seed = 6}, logits), (std::set<int32_t>{0, 1, 2}));
  const auto p = softmax(logits, 2.0);
  expect_frequencies({.temperature = 2.0f, .min_p = 0.3f, .seed = 7}, logits,
                     restrict(p, [&](size_t i) { return p[i] >= 0.3 * p[0]; }));
}

// Processed logprobs over a large vocabulary: finite exactly on the nucleus a full sort computes
// (exercises the lazy partial sort past its first 64 candidates).
TEST(Sampler, TopPOnALargeVocabularyMatchesAFullSort) {
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(5000);
  for (float& v : logits) v = normal(gen);
  const SamplingParams params{.temperature = 0.7f, .top_p = 0.9f, .seed = 8, .logprobs = true};
  Sampler s(params, {.logprobs_mode = LogprobsMode::kProcessed});
  const SampleResult r = s.sample(row(logits));
  const auto expected = nucleus(softmax(logits, 0.7), 0.9);
  const auto kept = std::count_if(expected.begin(), expected.end(), [](double p) { return p > 0; });
  EXPECT_GT(kept, 256);  // past the first growth steps
  EXPECT_GT(expected[static_cast<size_t>(r.token)], 0.0);
  EXPECT_NEAR(r.logprob, std::log(expected[static_cast<size_t>(r.token)]), 1e-4);
}

// ---- penalties ----

// The penalised logits by the HF/vLLM (repetition) and OpenAI (frequency, presence) formulas.
std::vector<double> penalised(const std::vector<float>& logits, const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& output, const SamplingParams& p) {
  std::map<int32_t, int> counts;
  for (int32_t id : output) ++counts[id];
  std::vector<double> out(logits.begin(), logits.end());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const bool seen = counts.count(id) || std::find(prompt.begin(), prompt.end(), id) != prompt.end();
    if (seen) out[i] = out[i] > 0 ? out[i] / p.repetition_penalty : out[i] * p.repetition_penalty;
    const int c = counts.count(id) ? counts[id] : 0;
    out[i] -= p.frequency_penalty * c + (c > 0 ? p.presence_penalty : 0.0);
  }
  return out;
}

// Feeds `output` through greedy picks of one-hot rows, then returns the processed logprobs of `logits`.
std::vector<float> processed_logprobs(const SamplingParams& params, const std::vector<int32_t>& prompt,
                                      const std::vector<int32_t>& output, const std::vector<float>& logits) {
  Sampler s(params, {.prompt = prompt, .logprobs_mode = LogprobsMode::kProcessed});
  for (int32_t id : output) {
    std::vector<float> force(logits.size(), 0.0f);
    force[static_cast<size_t>(id)] = 1000.0f;
    EXPECT_EQ(s.sample(row(force)).token, id);
  }
  const SampleResult r = s.sample(row(logits));
  std::vector<float> lp(logits.size(), NAN);
  for (const auto& t : r.top_logprobs) lp[static_cast<size_t>(t.id)] = t.logprob;
  return lp;
}

TEST(Sampler, EachPenaltyMatchesItsFormula) {
  const std::vector<float> logits = {1.5f, -0.5f, 2.0f, 0.0f, -2.0f, 3.0f, 0.7f, -1.2f};
  const std::vector<int32_t> prompt = {1, 6, 6}, output = {0, 2, 2, 2, 4};
  const std::vector<SamplingParams> cases = {
      {.repetition_penalty = 1.3f}, {.repetition_penalty = 0.8f}, {.presence_penalty = 0.7f},
      {.frequency_penalty = 0.4f},  {.frequency_penalty = -0.6f},
      {.repetition_penalty = 1.2f, .presence_penalty = 0.5f, .frequency_penalty = 0.25f}};
  for (SamplingParams p : cases) {
    p.logprobs = true;
    p.top_logprobs = static_cast<int64_t>(logits.size());
    SCOPED_TRACE(testing::Message() << p.repetition_penalty << " " << p.presence_penalty << " " << p.frequency_penalty);
    const auto expected = penalised(logits, prompt, output, p);
    double m = -kInf, total = 0;
    for (double v : expected) m = std::max(m, v);
    for (double v : expected) total += std::exp(v - m);
    const auto got = processed_logprobs(p, prompt, output, logits);
    for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(got[i], expected[i] - m - std::log(total), 1e-5) << i;
  }
}

TEST(Sampler, PenaltiesMoveTheGreedyChoice) {
  const std::vector<float> logits = {3.0f, 2.9f, -1.0f};
  Sampler freq({.frequency_penalty = 0.5f});
  EXPECT_EQ(freq.sample(row(logits)).token, 0);
  EXPECT_EQ(freq.sample(row(logits)).token, 1);  // id 0 now at 2.5
  // Repetition penalty on a prompt token: 3.0 / 1.1 < 2.9.
  const std::vector<int32_t> prompt = {0};
  Sampler rep({.repetition_penalty = 1.1f}, {.prompt = prompt});
  EXPECT_EQ(rep.sample(row(logits)).token, 1);
  // A negative logit is multiplied: -1.0 * 2 stays below everything.
  const std::vector<float> negative = {-1.0f, -1.5f};
  const std::vector<int32_t> prompt0 = {0};
  Sampler neg({.repetition_penalty = 2.0f}, {.prompt = prompt0});
  EXPECT_EQ(neg.sample(row(negative)).token, 1);
}

// ---- min_tokens ----

TEST(Sampler, MinTokensMasksEosAndStopIds) {
  const std::vector<float> logits = {0.0f, 1.0f, 9.0f, 8.0f, 0.5f};  // 2 = EOS, 3 = a stop id
  Sampler s({.min_tokens = 3, .stop_token_ids = {3}}, {.eos_id = 2});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.sample(row(logits)).token, 1) << i;
  EXPECT_EQ(s.sample(row(logits)).token, 2);
  // Sampled too: never a masked id before min_tokens.
  Sampler r({.temperature = 1.0f, .seed = 3, .min_tokens = 50, .stop_token_ids = {3}}, {.eos_id = 2});
  for (int i = 0; i < 50; ++i) {
    const int32_t t = r.sample(row(logits)).token;
    EXPECT_TRUE(t != 2 && t != 3) << i;
  }
}

// ---- logprobs ----

TEST(Sampler, RawLogprobsAreTheModelsLogSoftmax) {
  std::mt19937 gen(21);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(16);
  for (float& v : logits) v = normal(gen);
  logits[7] = logits[3];  // a tie, ordered by id
  const std::vector<int32_t> prompt = {0, 1, 2};
  // Temperature, penalties and filters do not change the raw logprobs.
  Sampler s({.temperature = 0.6f, .top_k = 3, .repetition_penalty = 1.5f, .seed = 2, .logprobs = true,
             .top_logprobs = 16},
            {.prompt = prompt});
  const auto p = softmax(logits);
  for (int step = 0; step < 5; ++step) {
    const SampleResult r = s.sample(row(logits));
    ASSERT_EQ(r.top_logprobs.size(), 16u);
    double total = 0;
    for (size_t i = 0; i < r.top_logprobs.size(); ++i) {
      const auto& t = r.top_logprobs[i];
      EXPECT_NEAR(t.logprob, std::log(p[static_cast<size_t>(t.id)]), 1e-5);
      EXPECT_LE(t.logprob, 0.0f);
      total += std::exp(static_cast<double>(t.logprob));
      if (i > 0) {
        const auto& prev = r.top_logprobs[i - 1];
        EXPECT_TRUE(prev.logprob > t.logprob || (prev.logprob == t.logprob && prev.id < t.id));
      }
    }
    EXPECT_NEAR(std::log(total), 0.0, 1e-6);  // logsumexp == 0
    EXPECT_NEAR(r.logprob, std::log(p[static_cast<size_t>(r.token)]), 1e-5);
    const auto rank = std::find_if(r.top_logprobs.begin(), r.top_logprobs.end(),
                                   [&](const TokenLogprob& t) { return t.logprob == r.logprob; }) -
                      r.top_logprobs.begin() + 1;
    EXPECT_EQ(r.rank, rank);
  }
}

TEST(Sampler, ProcessedLogprobsDescribeTheSampledDistribution) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f, 2.5f};
  Sampler s({.temperature = 2.0f, .top_k = 3, .seed = 1, .logprobs = true, .top_logprobs = 5},
            {.logprobs_mode = LogprobsMode::kProcessed});
  const SampleResult r = s.sample(row(logits));
  const auto expected = restrict(softmax(logits, 2.0), [&](size_t i) { return logits[i] >= 2.0f; });
  double total = 0;
  for (const auto& t : r.top_logprobs) {
    if (expected[static_cast<size_t>(t.id)] == 0) {
      EXPECT_EQ(t.logprob, -kInf) << t.id;
    } else {
      EXPECT_NEAR(t.logprob, std::log(expected[static_cast<size_t>(t.id)]), 1e-5) << t.id;
      total += std::exp(static_cast<double>(t.logprob));
    }
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_EQ(r.top_logprobs.front().id, 1);
}

TEST(Sampler, NoLogprobsUnlessAsked) {
  Sampler s({.temperature = 1.0f, .seed = 1});
  const SampleResult r = s.sample(row(kLogits));
  EXPECT_TRUE(r.top_logprobs.empty());
  EXPECT_EQ(r.rank, 0);
  Sampler only_chosen({.seed = 1, .logprobs = true});
  const SampleResult c = only_chosen.sample(row(kLogits));
  EXPECT_TRUE(c.top_logprobs.empty());
  EXPECT_EQ(c.rank, 1);
  EXPECT_NEAR(c.logprob, std::log(softmax(kLogits)[1]), 1e-6);
}

}  // namespace
}  // namespace pixtral::engine
