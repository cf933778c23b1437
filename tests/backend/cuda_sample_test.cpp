// The CUDA sample op picks exactly the CPU op's ids (the canonical algorithm of ops.h
// SampleParams): a randomized grid of R 1..128 rows, V 1000 / 4099 / 32000 / 131072 / 300000,
// bf16 and f32 logits (ties, -inf entries, fully masked rows, sharp peaks), every parameter
// combination (greedy, temperature, top-k incl. ties and off values, top-p incl. tiny, min-p),
// penalty entries with repeated tokens over several 1024-entry chunks; the draws' frequencies
// against the probabilities; and a CUDA graph replay with fresh inputs. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/sample_math.h"
#include "backend/sample_row.h"
#include "cuda_test_util.h"

namespace pixtral::backend::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// One call's inputs on the host.
struct Inputs {
  int64_t rows = 0, vocab = 0;
  std::vector<float> logits;  // [rows, vocab]
  std::vector<float> temperature, top_p, min_p;
  std::vector<int32_t> top_k;
  std::vector<double> uniform;
  std::vector<int32_t> entry_row, entry_token;  // sorted by row
  std::vector<float> entry_rep, entry_sub;

  void add_row(const std::vector<float>& x, const SampleRowParams& q) {
    ++rows;
    vocab = static_cast<int64_t>(x.size());
    logits.insert(logits.end(), x.begin(), x.end());
    temperature.push_back(q.temperature);
    top_k.push_back(static_cast<int32_t>(q.top_k));
    top_p.push_back(q.top_p);
    min_p.push_back(q.min_p);
    uniform.push_back(q.uniform);
  }
  void add_entry(int32_t row, int32_t token, float rep, float sub) {
    entry_row.push_back(row);
    entry_token.push_back(token);
    entry_rep.push_back(rep);
    entry_sub.push_back(sub);
  }
};

// The tensors of one call on one backend (kept alive by `keep`).
SampleParams make_params(Backend& b, const Inputs& in, DType logits_dtype, std::vector<TensorBuffer>& keep) {
  const auto tensor = [&](const void* host, DType host_dtype, DType dtype, int64_t n) {
    if (n == 0) return Tensor{};
    keep.push_back(b.alloc(dtype, {n}));
    b.upload(host, host_dtype, keep.back());
    return keep.back().tensor();
  };
  const auto e = static_cast<int64_t>(in.entry_row.size());
  keep.push_back(b.alloc(logits_dtype, {in.rows, in.vocab}));
  b.upload(in.logits.data(), DType::kF32, keep.back());
  const Tensor logits = keep.back().tensor();
  Tensor uniform = tensor(in.uniform.data(), DType::kI64, DType::kI64, in.rows);  // raw bits, seen as F64
  uniform.dtype = DType::kF64;
  keep.push_back(b.alloc(DType::kI32, {in.rows}));
  const Tensor out = keep.back().tensor();
  return {.logits = logits,
          .temperature = tensor(in.temperature.data(), DType::kF32, DType::kF32, in.rows),
          .top_k = tensor(in.top_k.data(), DType::kI32, DType::kI32, in.rows),
          .top_p = tensor(in.top_p.data(), DType::kF32, DType::kF32, in.rows),
          .min_p = tensor(in.min_p.data(), DType::kF32, DType::kF32, in.rows),
          .uniform = uniform,
          .penalty_row = tensor(in.entry_row.data(), DType::kI32, DType::kI32, e),
          .penalty_token = tensor(in.entry_token.data(), DType::kI32, DType::kI32, e),
          .penalty_rep = tensor(in.entry_rep.data(), DType::kF32, DType::kF32, e),
          .penalty_sub = tensor(in.entry_sub.data(), DType::kF32, DType::kF32, e),
          .out_ids = out};
}

std::vector<int32_t> run(Backend& b, const Inputs& in, DType logits_dtype) {
  std::vector<TensorBuffer> keep;
  const SampleParams p = make_params(b, in, logits_dtype, keep);
  b.sample(p);
  std::vector<int32_t> ids(static_cast<size_t>(in.rows));
  b.download_i32(p.out_ids, ids.data());
  return ids;
}

// Logits of one of several shapes; bf16-exact unless `full_f32`.
std::vector<float> random_logits(int64_t v, int kind, bool full_f32, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(v));
  const float scale = kind == 4 ? 12.0f : 3.0f;
  for (float& f : x) {
    f = scale * normal(rng);
    if (kind == 1) f = std::round(f * 2.0f) / 2.0f;  // many ties
    if (kind == 2 && rng() % 3 == 0) f = -kInf;
    if (!full_f32) f = base::round_bf16(f);
  }
  if (kind == 3) std::fill(x.begin(), x.end(), 0.75f);
  if (kind == 5) {  // a few finite values
    std::fill(x.begin(), x.end(), -kInf);
    for (int i = 0; i < 3; ++i) x[rng() % x.size()] = base::round_bf16(normal(rng));
  }
  if (kind == 6) std::fill(x.begin(), x.end(), -kInf);
  return x;
}

// Parameter combination `c` (of kCombos) for a row: every combination occurs over a grid.
constexpr int kCombos = 7 * 9 * 7 * 6;
SampleRowParams combo(int c, int64_t v, std::mt19937_64& rng) {
  const float temperatures[] = {0.0f, 5e-6f, 0.05f, 0.3f, 0.8f, 1.0f, 1.7f};
  const int64_t top_ks[] = {0, -1, 1, 2, 3, 50, v - 1, v, v + 5};
  const float top_ps[] = {1.0f, 0.9f, 0.5f, 0.999f, 1e-7f, 0.1f, 0.95f};
  const float min_ps[] = {0.0f, 0.05f, 0.5f, 1.0f, 1e-30f, 0.0f};
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double uniform = u(rng);
  if (rng() % 16 == 0) uniform = rng() % 2 == 0 ? 0.0 : 1.0 - 0x1p-53;
  return {.temperature = temperatures[c % 7],
          .top_k = top_ks[(c / 7) % 9],
          .top_p = top_ps[(c / 63) % 7],
          .min_p = min_ps[(c / 441) % 6],
          .uniform = uniform};
}

// n entries for row r: tokens repeated (each about 4 times), or distinct (at most vocab of them);
// every kind of (rep, sub).
void add_entries(Inputs& in, int32_t r, int n, bool repeats, std::mt19937_64& rng) {
  const float reps[] = {0.5f, 1.0f, 1.3f, 2.0f};
  const float subs[] = {0.0f, 0.5f, -1.2f, kInf, 0.0f};
  if (!repeats) n = static_cast<int>(std::min<int64_t>(n, in.vocab));
  const auto range = static_cast<uint64_t>(repeats ? std::max(1, n / 4) : in.vocab);
  std::set<int32_t> seen;
  for (int i = 0; i < n; ++i) {
    auto t = static_cast<int32_t>(rng() % range);
    while (!repeats && !seen.insert(t).second) t = static_cast<int32_t>(rng() % range);
    in.add_entry(r, t, reps[rng() % 4], subs[rng() % 5]);
  }
}

std::string describe(const Inputs& in, size_t r) {
  return "row " + std::to_string(r) + " of " + std::to_string(in.rows) + ", V " + std::to_string(in.vocab) +
         ", T " + std::to_string(in.temperature[r]) + ", top_k " + std::to_string(in.top_k[r]) + ", top_p " +
         std::to_string(in.top_p[r]) + ", min_p " + std::to_string(in.min_p[r]) + ", u " +
         std::to_string(in.uniform[r]);
}

TEST(CudaSample, RandomGridMatchesCpuExactly) {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(11);
  int next_combo = 0, compared = 0, drawn = 0, mismatches = 0;
  // V = 4099 (not a multiple of 8) takes the id-by-id loads; V = 300000 (> 2^18) the uint64 weight
  // histograms.
  for (int64_t v : {1000, 4099, 32000, 131072, 300000})
    for (int64_t rows : {1, 7, 64, 128})
      for (DType dtype : {DType::kBF16, DType::kF32})
        for (bool penalties : {false, true}) {
          if ((v == 4099 && rows == 128) || (v == 300000 && rows > 7)) continue;
          Inputs in;
          for (int64_t r = 0; r < rows; ++r) {
            const int kind = static_cast<int>(rng() % 7);
            in.add_row(random_logits(v, kind, dtype == DType::kF32, rng), combo(next_combo, v, rng));
            next_combo = (next_combo + 1009) % kCombos;  // 1009 is prime to kCombos: all combinations
            if (penalties && rng() % 3 != 0) {
              const int n = static_cast<int>(rng() % 4 == 0 ? 2500 + rng() % 1000 : rng() % 300);
              add_entries(in, static_cast<int32_t>(r), n, rng() % 2 == 0, rng);
            }
          }
          const auto expected = run(cpu(), in, DType::kF32);
          const auto got = run(gpu(), in, dtype);
          for (size_t r = 0; r < expected.size(); ++r) {
            if (got[r] != expected[r] && ++mismatches <= 10)
              ADD_FAILURE() << "cuda " << got[r] << " cpu " << expected[r] << ": " << describe(in, r)
                            << (dtype == DType::kBF16 ? " bf16" : " f32")
                            << (penalties ? " with penalties" : "");
            ++compared;
            drawn += in.temperature[r] >= kSampleGreedyTemperature;
          }
        }
  EXPECT_EQ(compared, (3 * (1 + 7 + 64 + 128) + (1 + 7 + 64) + (1 + 7)) * 4);
  EXPECT_GT(drawn, compared / 2);
  EXPECT_EQ(mismatches, 0);
}

// Many draws of one small row with uniforms from uniform_at-like hashing: a chi-square bound
// against the exact (double) probabilities of the kept tokens, and the CPU's ids.
TEST(CudaSample, DrawFrequenciesFollowTheProbabilities) {
  SKIP_WITHOUT_CUDA();
  std::mt19937_64 rng(5);
  const int64_t v = 40, draws = 50000;
  const auto x = random_logits(v, 0, false, rng);
  const SampleRowParams q{.temperature = 0.9f, .top_k = 20, .top_p = 0.95f, .min_p = 0.01f};
  Inputs in;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t i = 0; i < draws; ++i) {
    SampleRowParams row = q;
    row.uniform = u(rng);
    in.add_row(x, row);
  }
  const auto got = run(gpu(), in, DType::kBF16);
  EXPECT_EQ(got, run(cpu(), in, DType::kF32));
  // The kept set from the host algorithm; probabilities from exp in double over it.
  RowSampler host;
  host.sample(x, q);
  const float x_max = *std::max_element(x.begin(), x.end());
  std::vector<double> prob(static_cast<size_t>(v));
  double total = 0;
  for (int64_t i = 0; i < v; ++i)
    if (host.kept(i))
      total += prob[static_cast<size_t>(i)] = std::exp((x[static_cast<size_t>(i)] - x_max) / 0.9);
  std::vector<int64_t> counts(static_cast<size_t>(v));
  for (int32_t id : got) ++counts[static_cast<size_t>(id)];
  double chi2 = 0;
  int kept = 0;
  for (int64_t i = 0; i < v; ++i) {
    const double expected = draws * prob[static_cast<size_t>(i)] / total;
    if (expected == 0) {
      EXPECT_EQ(counts[static_cast<size_t>(i)], 0) << i;
      continue;
    }
    ++kept;
    chi2 +=
        (counts[static_cast<size_t>(i)] - expected) * (counts[static_cast<size_t>(i)] - expected) / expected;
  }
  ASSERT_GT(kept, 3);
  const double dof = kept - 1;
  EXPECT_LT(chi2, dof + 6 * std::sqrt(2 * dof)) << kept << " kept tokens";
}

// The op recorded in a CUDA graph (after a warm-up that sized the workspace) and replayed on
// inputs uploaded into the same tensors.
TEST(CudaSample, GraphReplayWithFreshInputs) {
  SKIP_WITHOUT_CUDA();
  if (!gpu().supports_graphs()) GTEST_SKIP() << "no graphs";
  std::mt19937_64 rng(9);
  const int64_t v = 32000, rows = 16;
  const auto make = [&] {
    Inputs in;
    for (int64_t r = 0; r < rows; ++r) {
      in.add_row(random_logits(v, static_cast<int>(rng() % 6), false, rng),
                 combo(static_cast<int>(rng() % kCombos), v, rng));
      add_entries(in, static_cast<int32_t>(r), 100, r % 2 == 0, rng);
    }
    return in;
  };
  const Inputs first = make();
  std::vector<TensorBuffer> keep;
  const SampleParams p = make_params(gpu(), first, DType::kBF16, keep);
  gpu().sample(p);  // warm-up: sizes the workspace
  gpu().synchronize();
  gpu().begin_capture();
  gpu().sample(p);
  const auto graph = gpu().end_capture();
  ASSERT_NE(graph, nullptr);
  for (int replay = 0; replay < 3; ++replay) {
    const Inputs in = replay == 0 ? first : make();
    gpu().upload(in.logits.data(), DType::kF32, p.logits);
    gpu().upload(in.temperature.data(), DType::kF32, p.temperature);
    gpu().upload(in.top_k.data(), DType::kI32, p.top_k);
    gpu().upload(in.top_p.data(), DType::kF32, p.top_p);
    gpu().upload(in.min_p.data(), DType::kF32, p.min_p);
    Tensor uniform_bits = p.uniform;
    uniform_bits.dtype = DType::kI64;
    gpu().upload(in.uniform.data(), DType::kI64, uniform_bits);
    gpu().upload(in.entry_row.data(), DType::kI32, p.penalty_row);
    gpu().upload(in.entry_token.data(), DType::kI32, p.penalty_token);
    gpu().upload(in.entry_rep.data(), DType::kF32, p.penalty_rep);
    gpu().upload(in.entry_sub.data(), DType::kF32, p.penalty_sub);
    graph->replay();
    std::vector<int32_t> got(static_cast<size_t>(rows));
    gpu().download_i32(p.out_ids, got.data());
    EXPECT_EQ(got, run(cpu(), in, DType::kF32)) << "replay " << replay;
  }
}

}  // namespace
}  // namespace pixtral::backend::testing
