// The GEMV streaming variants (PIXTRAL_CUDA_GEMV_UNROLL / _PIPE / _STAGES / _WARP / _GRID /
// _EVICT, alone and combined with the older launch choices), each on a backend of its own, over
// every GEMV-backed op at M = 1..8: matmul (plain store, with and without bias and residual add),
// norm_matmul (with and without SwiGLU) and qkv_rope (q and both cache writes).
//   VariantsMatchCpu: against the CPU backend (‖cuda − cpu‖/‖cpu‖ <= 1e-2, never NaN).
//   VariantsBitIdentical: for a forced K split (PIXTRAL_CUDA_GEMV_WPC), every variant adds the
//   same products in the same order as the register kernel, so the outputs are bit-identical
//   (the warp kernel: to one warp per column).
// Shapes cover uneven and empty K slices, several column groups or outputs per block or warp
// (BLOCKS=1), rings deeper than a slice, and a staging that leaves no room for the ring (the
// fused ops then take the register kernel, the plain store reads x through L1).
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <utility>

#include "cuda_test_util.h"

namespace pixtral::backend::testing {
namespace {

struct PlainCase {
  int64_t m, n, k;
  bool bias, accumulate;
};
const PlainCase kPlain[] = {
    {1, 130, 5120, true, false}, {1, 130, 5120, false, true}, {1, 1024, 14336, false, true},
    {2, 8192, 256, true, true},  {3, 33, 1032, true, true},   {3, 17, 8, false, false},
    {4, 520, 4096, false, true}, {5, 300, 520, true, true},   {6, 96, 64, false, false},
    {7, 45, 2048, true, false},  {8, 40, 2056, true, false},  {8, 64, 12288, false, true}};

struct NormCase {
  int64_t m, n, k;
};
const NormCase kNorm[] = {{1, 130, 5120}, {1, 8192, 256}, {2, 64, 64},  {3, 40, 1032}, {4, 200, 520},
                          {5, 34, 24},    {6, 72, 1024},  {7, 36, 264}, {8, 96, 2048}, {8, 64, 12288}};

struct QkvCase {
  int64_t t, d, h, hkv, hd;
};
const QkvCase kQkv[] = {{1, 256, 4, 2, 64}, {1, 640, 8, 2, 128}, {2, 512, 32, 8, 128},
                        {3, 64, 4, 4, 16},  {4, 256, 8, 2, 64},  {5, 96, 2, 1, 128},
                        {6, 64, 10, 3, 16}, {7, 64, 4, 2, 16},   {8, 128, 6, 2, 24}};

// Host data by seed (bf16-exact normals), generated once for all backends.
const std::vector<float>& host_data(uint64_t seed, int64_t n, float scale) {
  static std::map<uint64_t, std::vector<float>> cache;
  auto it = cache.find(seed);
  if (it == cache.end()) it = cache.emplace(seed, random_bf16(static_cast<size_t>(n), seed, scale)).first;
  return it->second;
}

struct Output {
  std::string what;
  std::vector<float> values;
};

// Every case above run on backend b (the CPU: f32 tensors, CUDA: bf16), outputs in call order.
std::vector<Output> run_gemv_ops(Backend& b, bool is_cpu) {
  const DType dt = is_cpu ? DType::kF32 : DType::kBF16;
  uint64_t seed = 7000;
  auto up = [&](Shape shape, float scale) {
    TensorBuffer t = b.alloc(dt, shape);
    b.upload(host_data(++seed, shape.numel(), scale).data(), DType::kF32, t);
    return t;
  };
  auto up_i32 = [&](const std::vector<int32_t>& host) {
    TensorBuffer t = b.alloc(DType::kI32, {static_cast<int64_t>(host.size())});
    b.upload(host.data(), DType::kI32, t);
    return t;
  };
  std::vector<Output> outs;
  for (const PlainCase& c : kPlain) {
    TensorBuffer x = up({c.m, c.k}, 1.0f), w = up({c.n, c.k}, 0.1f), bias = up({c.n}, 1.0f),
                 y = up({c.m, c.n}, 1.0f);
    b.matmul({.x = x, .w = w, .bias = c.bias ? bias.tensor() : Tensor{}, .y = y, .accumulate = c.accumulate});
    outs.push_back({"matmul " + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) +
                        (c.bias ? " bias" : "") + (c.accumulate ? " acc" : ""),
                    download(b, y)});
  }
  for (const NormCase& c : kNorm)
    for (bool swiglu : {false, true}) {
      TensorBuffer x = up({c.m, c.k}, 3.0f), nw = up({c.k}, 0.5f), w = up({c.n, c.k}, 0.1f);
      TensorBuffer y = b.alloc(dt, {c.m, swiglu ? c.n / 2 : c.n});
      b.norm_matmul({.x = x, .norm_weight = nw, .w = w, .y = y, .eps = 1e-5f, .swiglu = swiglu});
      outs.push_back({"norm_matmul " + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
                          std::to_string(c.k) + (swiglu ? " swiglu" : ""),
                      download(b, y)});
    }
  for (const QkvCase& c : kQkv) {
    const int64_t bs = 4, blocks = 7, rows = (c.h + 2 * c.hkv) * c.hd;
    TensorBuffer x = up({c.t, c.d}, 2.0f), nw = up({c.d}, 0.5f), w = up({rows, c.d}, 0.1f);
    TensorBuffer kc = up({blocks, bs, c.hkv, c.hd}, 1.0f), vc = up({blocks, bs, c.hkv, c.hd}, 1.0f);
    TensorBuffer q = b.alloc(dt, {c.t, c.h, c.hd});
    std::vector<int32_t> pos(static_cast<size_t>(c.t)), slots(static_cast<size_t>(c.t));
    for (int64_t i = 0; i < c.t; ++i) {
      pos[i] = static_cast<int32_t>((i * 7919 + c.d) % 40000);
      slots[i] = static_cast<int32_t>((i * 5 + 3) % (blocks * bs));  // distinct for t <= 28
    }
    TensorBuffer p = up_i32(pos), sl = up_i32(slots);
    b.qkv_rope({.x = x,
                .norm_weight = nw,
                .w_qkv = w,
                .pos = p,
                .q = q,
                .k_cache = kc,
                .v_cache = vc,
                .slot_mapping = sl,
                .eps = 1e-5f,
                .theta = 1e6f});
    const std::string what = "qkv_rope t " + std::to_string(c.t) + " d " + std::to_string(c.d) + " heads " +
                             std::to_string(c.h) + "/" + std::to_string(c.hkv) + " hd " +
                             std::to_string(c.hd);
    outs.push_back({what + " q", download(b, q)});
    outs.push_back({what + " k_cache", download(b, kc)});
    outs.push_back({what + " v_cache", download(b, vc)});
  }
  return outs;
}

using Env = std::vector<EnvCase>;

// A CUDA backend made with every name=value of env set (the switches are read at construction).
std::unique_ptr<Backend> cuda_with_env(const Env& env) {
  for (const EnvCase& e : env) setenv(e.name, e.value, 1);
  std::unique_ptr<Backend> g = std::move(make_cuda_backend(0)).value();
  for (const EnvCase& e : env) unsetenv(e.name);
  return g;
}

std::string label(const Env& env) {
  std::string s;
  for (const EnvCase& e : env)
    s += std::string(s.empty() ? "" : " ") + (e.name + 13) + "=" + e.value;  // less PIXTRAL_CUDA_
  return s.empty() ? "default" : s;
}

const Env kVariants[] = {
    {},
    {{"PIXTRAL_CUDA_GEMV_UNROLL", "8"}},
    {{"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_WPC", "2"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_STAGES", "8"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_STAGE", "0"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "1"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "2"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "8"}},
    {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_BLOCKS", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "5"}},
    {{"PIXTRAL_CUDA_GEMV_WARP", "1"}},
    {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}},
    {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}, {"PIXTRAL_CUDA_GEMV_BLOCKS", "1"}},
    {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGE", "0"}},
    {{"PIXTRAL_CUDA_GEMV_GRID", "full"}},
    {{"PIXTRAL_CUDA_GEMV_GRID", "full"}, {"PIXTRAL_CUDA_GEMV_PIPE", "2"}},
    {{"PIXTRAL_CUDA_GEMV_GRID", "full"}, {"PIXTRAL_CUDA_GEMV_WARP", "1"}},
    {{"PIXTRAL_CUDA_GEMV_EVICT", "1"}, {"PIXTRAL_CUDA_GEMV_PIPE", "1"}},
    {{"PIXTRAL_CUDA_GEMV_EVICT", "1"}, {"PIXTRAL_CUDA_GEMV_WARP", "1"}},
    {{"PIXTRAL_CUDA_GEMV_PREFETCH", "1"}, {"PIXTRAL_CUDA_GEMV_PIPE", "2"}},
    {{"PIXTRAL_CUDA_GEMV_PREFETCH", "1"}, {"PIXTRAL_CUDA_GEMV_WARP", "1"}},
    {{"PIXTRAL_CUDA_PDL", "0"}, {"PIXTRAL_CUDA_GEMV_WARP", "1"}},
};

TEST(CudaGemv, VariantsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const std::vector<Output> want = run_gemv_ops(cpu(), true);
  for (const Env& env : kVariants) {
    std::unique_ptr<Backend> g = cuda_with_env(env);
    const std::vector<Output> got = run_gemv_ops(*g, false);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_LE(rel_error(want[i].values, got[i].values), kOpTolerance) << label(env) << ": " << want[i].what;
  }
}

// Same products in the same order: the variants (with WPC forced) against the register kernel.
TEST(CudaGemv, VariantsBitIdentical) {
  SKIP_WITHOUT_CUDA();
  const Env kSameSplit[] = {
      {{"PIXTRAL_CUDA_GEMV_UNROLL", "8"}},
      {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}},
      {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}},
      {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}},
      {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_STAGES", "6"}},
      {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_BLOCKS", "1"}},
      {{"PIXTRAL_CUDA_GEMV_GRID", "full"}},
      {{"PIXTRAL_CUDA_GEMV_GRID", "full"}, {"PIXTRAL_CUDA_GEMV_PIPE", "1"}},
      {{"PIXTRAL_CUDA_GEMV_EVICT", "1"}, {"PIXTRAL_CUDA_GEMV_PIPE", "2"}},
  };
  const Env kWarpKernel[] = {
      {{"PIXTRAL_CUDA_GEMV_WARP", "1"}},
      {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}, {"PIXTRAL_CUDA_GEMV_STAGES", "3"}},
      {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_BLOCKS", "1"}},
      {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_GRID", "full"}},
  };
  auto compare = [](const std::vector<Output>& want, const std::vector<Output>& got,
                    const std::string& what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const auto& a = want[i].values;
      const auto& b = got[i].values;
      ASSERT_EQ(a.size(), b.size());
      size_t differ = 0;
      for (size_t j = 0; j < a.size(); ++j) differ += std::memcmp(&a[j], &b[j], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0u) << what << ": " << want[i].what << " (" << a.size() << " values)";
    }
  };
  for (const char* wpc : {"1", "2", "4"}) {
    const EnvCase split{"PIXTRAL_CUDA_GEMV_WPC", wpc};
    const std::vector<Output> want = run_gemv_ops(*cuda_with_env({split}), false);
    for (Env env : kSameSplit) {
      env.push_back(split);
      compare(want, run_gemv_ops(*cuda_with_env(env), false), label(env));
    }
    if (std::strcmp(wpc, "1") != 0) continue;
    for (const Env& env : kWarpKernel) compare(want, run_gemv_ops(*cuda_with_env(env), false), label(env));
  }
}

}  // namespace
}  // namespace pixtral::backend::testing
