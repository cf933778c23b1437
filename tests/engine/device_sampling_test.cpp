// Device sampling equals host sampling: for requests of random parameters (temperature, top-k,
// top-p, min-p, repetition / frequency / presence penalties, min_tokens with EOS and stop ids,
// seeds) sampled together step after step, Sampler::sample on the host and device_row() +
// DeviceSampleBatch::run on the CPU backend + accept() pick the same token every time, on logits
// with ties, masked (-inf) entries and fully masked rows.
#include "engine/device_sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/dtype.h"

namespace pixtral::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

backend::Backend& cpu() {
  static std::unique_ptr<backend::Backend> b = backend::make_cpu_backend();
  return *b;
}

std::vector<int32_t> run_batch(const DeviceSampleBatch& batch, const std::vector<float>& logits,
                               int64_t vocab) {
  const backend::TensorBuffer t = cpu().alloc(base::DType::kF32, {batch.rows(), vocab});
  cpu().upload(logits.data(), base::DType::kF32, t);
  std::vector<int32_t> ids;
  const Status s = batch.run(cpu(), t, &ids);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return ids;
}

SamplingParams random_params(int64_t vocab, uint64_t seed, std::mt19937_64& rng) {
  const float temperatures[] = {0.0f, 0.5f, 0.8f, 1.0f, 1.5f};
  const int64_t top_ks[] = {0, -1, 1, 5, 40};
  const float top_ps[] = {1.0f, 0.9f, 0.5f};
  const float min_ps[] = {0.0f, 0.0f, 0.05f, 0.2f};
  const float reps[] = {1.0f, 1.0f, 1.2f, 0.8f};
  const float additive[] = {0.0f, 0.0f, 0.5f, -0.5f, 0.3f};
  SamplingParams p;
  p.temperature = temperatures[rng() % 5];
  p.top_k = top_ks[rng() % 5];
  p.top_p = top_ps[rng() % 3];
  p.min_p = min_ps[rng() % 4];
  p.repetition_penalty = reps[rng() % 4];
  p.presence_penalty = additive[rng() % 5];
  p.frequency_penalty = additive[rng() % 5];
  p.seed = seed;
  p.min_tokens = rng() % 2 == 0 ? 0 : 4;
  if (rng() % 2 == 0)
    p.stop_token_ids = {static_cast<int32_t>(rng() % vocab), static_cast<int32_t>(rng() % vocab)};
  EXPECT_TRUE(validate(p, vocab).is_ok());
  return p;
}

// One row of logits: bf16-exact values, often tied, sometimes masked; EOS sometimes on top.
std::vector<float> random_row(int64_t vocab, int32_t eos, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> x(static_cast<size_t>(vocab));
  const int kind = static_cast<int>(rng() % 5);
  for (float& v : x) {
    v = base::round_bf16(normal(rng));
    if (kind == 1) v = std::round(v);
    if (kind == 2 && rng() % 4 == 0) v = -kInf;
  }
  if (kind == 3) x[static_cast<size_t>(eos)] = 30.0f;
  if (kind == 4 && rng() % 4 == 0) std::fill(x.begin(), x.end(), -kInf);
  return x;
}

TEST(DeviceSampling, SameTokensAsTheHostSamplerStepAfterStep) {
  std::mt19937_64 rng(2024);
  int compared = 0;
  for (int64_t vocab : {50, 1000, 5000}) {
    const int num_requests = 6, steps = 25;
    const auto eos = static_cast<int32_t>(vocab - 1);
    std::vector<Sampler> host, device;
    std::vector<std::vector<int32_t>> prompts(num_requests);
    for (int i = 0; i < num_requests; ++i) {
      for (int j = 0; j < 30; ++j)
        prompts[static_cast<size_t>(i)].push_back(static_cast<int32_t>(rng() % vocab));
      const SamplingParams p = random_params(vocab, 100 + static_cast<uint64_t>(i), rng);
      const SamplerContext context{.prompt = prompts[static_cast<size_t>(i)], .eos_id = eos};
      host.emplace_back(p, context);
      device.emplace_back(p, context);
    }
    for (int step = 0; step < steps; ++step) {
      // Rows: the requests, plus an idle row (a default DeviceSampleRow: greedy) in the middle.
      std::vector<float> logits;
      DeviceSampleBatch batch;
      std::vector<int32_t> expected;
      for (int i = 0; i < num_requests; ++i) {
        if (i == 3) {
          const auto idle = random_row(vocab, eos, rng);
          logits.insert(logits.end(), idle.begin(), idle.end());
          batch.add(DeviceSampleRow{});
          expected.push_back(argmax(idle.data(), vocab));
        }
        const auto row = random_row(vocab, eos, rng);
        logits.insert(logits.end(), row.begin(), row.end());
        batch.add(device[static_cast<size_t>(i)].device_row());
        expected.push_back(host[static_cast<size_t>(i)].sample(std::span<const float>(row)).token);
      }
      const auto ids = run_batch(batch, logits, vocab);
      ASSERT_EQ(ids.size(), expected.size());
      for (size_t r = 0; r < ids.size(); ++r) {
        ASSERT_EQ(ids[r], expected[r]) << "vocab " << vocab << " step " << step << " row " << r;
        ++compared;
      }
      for (int i = 0; i < num_requests; ++i)
        device[static_cast<size_t>(i)].accept(ids[static_cast<size_t>(i < 3 ? i : i + 1)]);
    }
  }
  EXPECT_EQ(compared, 3 * 25 * 7);
}

TEST(DeviceSampling, DeviceRowFoldsPenaltiesAndMasks) {
  const std::vector<int32_t> prompt = {4, 1, 4};
  Sampler s({.temperature = 0.7f,
             .top_p = 0.9f,
             .top_k = 5,
             .min_p = 0.1f,
             .repetition_penalty = 1.5f,
             .presence_penalty = 0.25f,
             .frequency_penalty = 0.5f,
             .seed = 3,
             .min_tokens = 2,
             .stop_token_ids = {6}},
            {.prompt = prompt, .eos_id = 9});
  DeviceSampleRow row = s.device_row();
  EXPECT_EQ(row.temperature, 0.7f);
  EXPECT_EQ(row.top_k, 5);
  EXPECT_EQ(row.top_p, 0.9f);
  EXPECT_EQ(row.min_p, 0.1f);
  EXPECT_EQ(row.uniform, uniform_at(3, 0));
  using Entries = std::vector<std::pair<int32_t, std::pair<float, float>>>;
  EXPECT_EQ(row.penalties,
            (Entries{{1, {1.5f, 0.0f}}, {4, {1.5f, 0.0f}}, {6, {1.0f, kInf}}, {9, {1.0f, kInf}}}));
  s.accept(4);
  s.accept(7);
  s.accept(4);
  row = s.device_row();
  EXPECT_EQ(row.uniform, uniform_at(3, 3));
  // min_tokens reached: no masks; 4 (prompt and twice out) and 7 (once out).
  EXPECT_EQ(row.penalties,
            (Entries{{1, {1.5f, 0.0f}}, {4, {1.5f, 0.5f * 2 + 0.25f}}, {7, {1.5f, 0.5f + 0.25f}}}));
  EXPECT_EQ(s.num_generated(), 3);
  // Without penalties nothing but the masks.
  Sampler plain({.min_tokens = 1}, {.eos_id = 2});
  EXPECT_EQ(plain.device_row().penalties, (Entries{{2, {1.0f, kInf}}}));
  plain.accept(0);
  EXPECT_TRUE(plain.device_row().penalties.empty());
}

TEST(DeviceSampling, RunChecksTheRowCountAndDropsOutOfVocabularyEntries) {
  DeviceSampleBatch batch;
  batch.add({.temperature = 0.0f, .penalties = {{1, {1.0f, kInf}}, {70, {1.0f, kInf}}}});
  const std::vector<float> logits = {0.0f, 5.0f, 4.0f};
  EXPECT_EQ(run_batch(batch, logits, 3), std::vector<int32_t>{2});  // 1 masked, 70 ignored
  const backend::TensorBuffer two_rows = cpu().alloc(base::DType::kF32, {2, 3});
  std::vector<int32_t> ids;
  EXPECT_EQ(batch.run(cpu(), two_rows, &ids).code(), StatusCode::kInvalidArgument);
  batch.clear();
  EXPECT_EQ(batch.rows(), 0);
}

}  // namespace
}  // namespace pixtral::engine
