// Every op of the CUDA backend against the CPU reference on a grid of shapes (odd sizes, several
// sequences and segments, block boundaries, GQA and not, head_dim 16/24/64/128): ‖cuda − cpu‖/‖cpu‖
// <= 1e-2 and never NaN. Inputs are bf16-exact so only the CUDA side's bf16 rounding differs.
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>

#include "cuda_test_util.h"

namespace pixtral::backend::testing {
namespace {

TEST(CudaConformance, FillRandomMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  for (int64_t n : {1, 1000, 65537}) {
    Both b = zeros_both({n});
    cpu().fill_random(b.c, 1234 + n, 0.5f, 0.02f);
    gpu().fill_random(b.g, 1234 + n, 0.5f, 0.02f);
    EXPECT_LE(rel_error(b), 4e-3) << n;  // bf16 rounding only
  }
}

TEST(CudaConformance, UploadDownloadRoundTrip) {
  SKIP_WITHOUT_CUDA();
  const auto host = random_bf16(3 * (1 << 20) + 5, 1);  // several staging chunks
  TensorBuffer t = gpu().alloc(DType::kBF16, {static_cast<int64_t>(host.size())});
  gpu().upload(host.data(), DType::kF32, t);
  TensorBuffer u = gpu().alloc(DType::kBF16, t.tensor().shape);
  gpu().copy(t, u);
  std::vector<float> back(host.size());
  gpu().download_f32(u, back.data());
  EXPECT_EQ(back, host);
}

// Uploads of values bf16 cannot hold, over several staging chunks, each copied by several
// threads: F32 stays exact, BF16 gets the host's rounding, I32 is raw.
TEST(CudaConformance, UploadConvertsEveryChunk) {
  SKIP_WITHOUT_CUDA();
  const int64_t n = 5 * (1 << 18) + 3;  // 2.5 chunks of 2^19 elements and a remainder
  std::vector<float> host(static_cast<size_t>(n));
  std::vector<int32_t> ids(host.size());
  uint64_t state = 12345;
  for (size_t i = 0; i < host.size(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    host[i] = static_cast<float>(static_cast<int64_t>(state >> 40) - (1 << 23)) / 4096.0f;
    ids[i] = static_cast<int32_t>(state >> 33);
  }
  for (DType dt : {DType::kF32, DType::kBF16}) {
    TensorBuffer t = gpu().alloc(dt, {n});
    gpu().upload(host.data(), DType::kF32, t);
    std::vector<float> back(host.size());
    gpu().download_f32(t, back.data());
    size_t wrong = 0;
    for (size_t i = 0; i < host.size(); ++i)
      wrong += back[i] != (dt == DType::kF32 ? host[i] : pixtral::base::round_bf16(host[i]));
    EXPECT_EQ(wrong, 0u) << (dt == DType::kF32 ? "f32" : "bf16");
  }
  TensorBuffer t = gpu().alloc(DType::kI32, {n});
  gpu().upload(ids.data(), DType::kI32, t);
  std::vector<int32_t> back(ids.size());
  gpu().download_i32(t, back.data());
  EXPECT_EQ(back, ids);
}

struct MatmulCase {
  int64_t m, n, k;
};

TEST(CudaConformance, Matmul) {
  SKIP_WITHOUT_CUDA();
  const MatmulCase cases[] = {{1, 64, 64},  {1, 130, 5120}, {3, 40, 24},   {8, 96, 64},   {5, 33, 20},
                              {9, 100, 72}, {33, 130, 72},  {128, 256, 512}, {257, 96, 200}};
  uint64_t seed = 10;
  for (const auto& c : cases)
    for (bool bias : {false, true})
      for (bool accumulate : {false, true}) {
        Both x = upload_both(random_bf16(c.m * c.k, ++seed), {c.m, c.k});
        Both w = upload_both(random_bf16(c.n * c.k, ++seed, 0.1f), {c.n, c.k});
        Both b = upload_both(random_bf16(c.n, ++seed), {c.n});
        Both y = upload_both(random_bf16(c.m * c.n, ++seed), {c.m, c.n});
        cpu().matmul({.x = x.c, .w = w.c, .bias = bias ? b.c.tensor() : Tensor{}, .y = y.c, .accumulate = accumulate});
        gpu().matmul({.x = x.g, .w = w.g, .bias = bias ? b.g.tensor() : Tensor{}, .y = y.g, .accumulate = accumulate});
        EXPECT_LE(rel_error(y), kOpTolerance) << c.m << "x" << c.n << "x" << c.k << " bias " << bias << " acc "
                                              << accumulate;
      }
}

// GEMMs on a backend that prepared the weight first (Backend::prepare_matmul: every M bucket's
// plan made and run once): row counts inside buckets (the bucket's algorithm, checked by cuBLASLt
// for the exact shape), at bucket tops, and past the prepared range, with bias and the residual add.
TEST(CudaConformance, MatmulAfterPrepare) {
  SKIP_WITHOUT_CUDA();
  std::unique_ptr<Backend> g = std::move(make_cuda_backend(0)).value();
  const int64_t n = 200, k = 136;
  uint64_t seed = 40;
  auto up = [&](const std::vector<float>& host, Shape shape) {
    Both b{cpu().alloc(DType::kF32, shape), g->alloc(DType::kBF16, shape)};
    cpu().upload(host.data(), DType::kF32, b.c);
    g->upload(host.data(), DType::kF32, b.g);
    return b;
  };
  Both w = up(random_bf16(n * k, ++seed, 0.1f), {n, k});
  Both b = up(random_bf16(n, ++seed), {n});
  for (bool bias : {false, true})
    for (bool accumulate : {false, true}) g->prepare_matmul(w.g, 700, bias, accumulate);
  for (int64_t m : {9, 13, 64, 65, 100, 256, 257, 300, 700, 1025})
    for (bool bias : {false, true})
      for (bool accumulate : {false, true}) {
        Both x = up(random_bf16(m * k, ++seed), {m, k});
        Both y = up(random_bf16(m * n, ++seed), {m, n});
        cpu().matmul({.x = x.c, .w = w.c, .bias = bias ? b.c.tensor() : Tensor{}, .y = y.c, .accumulate = accumulate});
        g->matmul({.x = x.g, .w = w.g, .bias = bias ? b.g.tensor() : Tensor{}, .y = y.g, .accumulate = accumulate});
        EXPECT_LE(rel_error(download(cpu(), y.c), download(*g, y.g)), kOpTolerance)
            << "M " << m << " bias " << bias << " acc " << accumulate;
      }
}

// Every split of the GEMV's K range over warps (PIXTRAL_CUDA_GEMV_WPC), on a backend of its own:
// uneven slices (K/8 not a multiple of the warps), slices with no work (K = 8), long slices (the
// 4-load unrolled loop), M = 1..8, bias and the residual add.
TEST(CudaConformance, MatmulGemvWarpsPerColumn) {
  SKIP_WITHOUT_CUDA();
  const MatmulCase cases[] = {{1, 130, 5120}, {1, 33, 1032}, {3, 17, 8}, {8, 40, 2056}, {1, 1024, 14336}};
  for (const char* wpc : {"1", "2", "4", "8"}) {
    setenv("PIXTRAL_CUDA_GEMV_WPC", wpc, 1);
    std::unique_ptr<Backend> g = std::move(make_cuda_backend(0)).value();
    unsetenv("PIXTRAL_CUDA_GEMV_WPC");
    uint64_t seed = 100;
    bool flag = false;
    for (const auto& c : cases) {
      flag = !flag;
      auto up = [&](const std::vector<float>& host, Shape shape) {
        Both b{cpu().alloc(DType::kF32, shape), g->alloc(DType::kBF16, shape)};
        cpu().upload(host.data(), DType::kF32, b.c);
        g->upload(host.data(), DType::kF32, b.g);
        return b;
      };
      Both x = up(random_bf16(c.m * c.k, ++seed), {c.m, c.k});
      Both w = up(random_bf16(c.n * c.k, ++seed, 0.1f), {c.n, c.k});
      Both bias = up(random_bf16(c.n, ++seed), {c.n});
      Both y = up(random_bf16(c.m * c.n, ++seed), {c.m, c.n});
      cpu().matmul({.x = x.c, .w = w.c, .bias = flag ? bias.c.tensor() : Tensor{}, .y = y.c, .accumulate = !flag});
      g->matmul({.x = x.g, .w = w.g, .bias = flag ? bias.g.tensor() : Tensor{}, .y = y.g, .accumulate = !flag});
      std::vector<float> want(static_cast<size_t>(c.m * c.n)), got(want.size());
      cpu().download_f32(y.c, want.data());
      g->download_f32(y.g, got.data());
      double num = 0, den = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_TRUE(std::isfinite(got[i])) << i;
        num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
        den += static_cast<double>(want[i]) * want[i];
      }
      EXPECT_LE(std::sqrt(num / den), kOpTolerance) << "wpc " << wpc << " " << c.m << "x" << c.n << "x" << c.k;
    }
  }
}

// The fused small-M ops (norm_matmul with and without SwiGLU, qkv_rope) against the CPU's
// composition of the unfused ops, on backends with each GEMV launch choice (warps per column,
// resident blocks, x staged or read through L1, programmatic dependent launch on/off). M > 8 and
// odd K take the composition on the device too.
constexpr EnvCase kGemvVariants[] = {{nullptr, nullptr},
                                     {"PIXTRAL_CUDA_GEMV_WPC", "1"},
                                     {"PIXTRAL_CUDA_GEMV_WPC", "2"},
                                     {"PIXTRAL_CUDA_GEMV_WPC", "4"},
                                     {"PIXTRAL_CUDA_GEMV_BLOCKS", "1"},
                                     {"PIXTRAL_CUDA_GEMV_STAGE", "0"},
                                     {"PIXTRAL_CUDA_PDL", "0"},
                                     {"PIXTRAL_CUDA_GEMV_PREFETCH", "1"},
                                     {"PIXTRAL_CUDA_SKINNY", "0"},
                                     {"PIXTRAL_CUDA_SKINNY", "64"},
                                     {"PIXTRAL_CUDA_SKINNY_SPLITS", "3"},
                                     {"PIXTRAL_CUDA_SKINNY_GEOMETRY", "1"}};

double rel_between(Backend& g, const Tensor& got_t, const Tensor& want_t) {
  std::vector<float> want(static_cast<size_t>(want_t.numel())), got(want.size());
  cpu().download_f32(want_t, want.data());
  g.download_f32(got_t, got.data());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return 1e9;
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

struct OnBoth {
  TensorBuffer c, g;
};

// host on the CPU backend (f32) and on CUDA backend g (bf16).
OnBoth on_both(Backend& g, const std::vector<float>& host, Shape shape) {
  OnBoth b{cpu().alloc(DType::kF32, shape), g.alloc(DType::kBF16, shape)};
  cpu().upload(host.data(), DType::kF32, b.c);
  g.upload(host.data(), DType::kF32, b.g);
  return b;
}

// The skinny GEMM (9-64 rows, k a multiple of its K slice, n of its tile rows) in each tile geometry
// with its K split by the plan and forced (1, 3, 8 blocks of a cluster, uneven splits): 16, 32 and
// 64-row kernels, bias and the residual add; the cluster's sum is in split order, so a second run
// gives the same bits. Shapes a geometry does not take go through cuBLASLt.
TEST(CudaConformance, MatmulSkinny) {
  SKIP_WITHOUT_CUDA();
  const MatmulCase cases[] = {{9, 128, 64},    {16, 256, 320},   {17, 384, 1024}, {33, 128, 5120},
                              {40, 1280, 256}, {64, 640, 4096},  {64, 128, 14336}, {24, 2048, 384}};
  const std::pair<const char*, const char*> variants[] = {{"0", "0"}, {"0", "1"}, {"0", "3"}, {"0", "8"},
                                                          {"1", "0"}, {"1", "2"}, {"2", "0"}, {"2", "4"}};
  for (const auto& [geometry, splits] : variants) {
    setenv("PIXTRAL_CUDA_SKINNY_GEOMETRY", geometry, 1);
    std::unique_ptr<Backend> g = cuda_with({"PIXTRAL_CUDA_SKINNY_SPLITS", splits});
    unsetenv("PIXTRAL_CUDA_SKINNY_GEOMETRY");
    auto up = [&](const std::vector<float>& host, Shape shape) { return on_both(*g, host, shape); };
    uint64_t seed = 700;
    for (const auto& c : cases)
      for (bool bias : {false, true})
        for (bool accumulate : {false, true}) {
          OnBoth x = up(random_bf16(c.m * c.k, ++seed), {c.m, c.k});
          OnBoth w = up(random_bf16(c.n * c.k, ++seed, 0.05f), {c.n, c.k});
          OnBoth b = up(random_bf16(c.n, ++seed), {c.n});
          const std::vector<float> y0 = random_bf16(c.m * c.n, ++seed);
          OnBoth y = up(y0, {c.m, c.n});
          cpu().matmul({.x = x.c, .w = w.c, .bias = bias ? b.c.tensor() : Tensor{}, .y = y.c, .accumulate = accumulate});
          g->matmul({.x = x.g, .w = w.g, .bias = bias ? b.g.tensor() : Tensor{}, .y = y.g, .accumulate = accumulate});
          const std::string what = std::string("geometry ") + geometry + " splits " + splits + " " +
                                   std::to_string(c.m) + "x" +
                                   std::to_string(c.n) + "x" + std::to_string(c.k) + " bias " + std::to_string(bias) +
                                   " acc " + std::to_string(accumulate);
          EXPECT_LE(rel_between(*g, y.g, y.c), kOpTolerance) << what;
          if (accumulate) continue;
          const std::vector<float> first = download(*g, y.g);
          g->matmul({.x = x.g, .w = w.g, .bias = bias ? b.g.tensor() : Tensor{}, .y = y.g});
          EXPECT_EQ(download(*g, y.g), first) << what << ": not deterministic";
        }
  }
}

TEST(CudaConformance, NormMatmulFused) {
  SKIP_WITHOUT_CUDA();
  // M > 8 with k % 64 == 0 and n % 128 == 0 (SwiGLU: F % 64 == 0) take the skinny GEMM.
  const MatmulCase cases[] = {{1, 130, 5120}, {1, 64, 64},    {3, 40, 1032},  {8, 96, 2048}, {5, 34, 24},
                              {9, 100, 72},   {33, 130, 72},  {12, 256, 192}, {64, 384, 1024}, {40, 1280, 5120}};
  for (const EnvCase& e : kGemvVariants) {
    std::unique_ptr<Backend> g = cuda_with(e);
    auto up = [&](const std::vector<float>& host, Shape shape) { return on_both(*g, host, shape); };
    uint64_t seed = 300;
    for (const auto& c : cases)
      for (bool swiglu : {false, true}) {
        OnBoth x = up(random_bf16(c.m * c.k, ++seed, 3.0f), {c.m, c.k});
        OnBoth nw = up(random_bf16(c.k, ++seed, 0.5f), {c.k});
        OnBoth w = up(random_bf16(c.n * c.k, ++seed, 0.1f), {c.n, c.k});
        const int64_t out = swiglu ? c.n / 2 : c.n;
        OnBoth y = up(std::vector<float>(static_cast<size_t>(c.m * out), 0.0f), {c.m, out});
        cpu().norm_matmul({.x = x.c, .norm_weight = nw.c, .w = w.c, .y = y.c, .eps = 1e-5f, .swiglu = swiglu});
        g->norm_matmul({.x = x.g, .norm_weight = nw.g, .w = w.g, .y = y.g, .eps = 1e-5f, .swiglu = swiglu});
        EXPECT_LE(rel_between(*g, y.g, y.c), kOpTolerance)
            << (e.name ? e.name : "default") << "=" << (e.value ? e.value : "") << " " << c.m << "x" << c.n << "x"
            << c.k << " swiglu " << swiglu;
      }
  }
}

TEST(CudaConformance, QkvRopeFused) {
  SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t t, d, h, hkv, hd;
  };
  // t > 8 takes the batched path (one GEMM + the split kernel; hd not a multiple of 8: the
  // composition); 10 + 2·3 heads leave a partial group of 8 heads per thread.
  const Case cases[] = {{1, 256, 4, 2, 64},  {1, 5120 / 8, 8, 2, 128}, {3, 64, 4, 4, 16},   {8, 128, 6, 2, 24},
                        {5, 96, 2, 1, 128},  {12, 64, 4, 2, 16},       {40, 128, 10, 3, 64}, {20, 96, 4, 2, 24},
                        {9, 64, 2, 1, 12},   {70, 256, 8, 2, 128}};
  for (const EnvCase& e : kGemvVariants) {
    std::unique_ptr<Backend> g = cuda_with(e);
    auto up = [&](const std::vector<float>& host, Shape shape) { return on_both(*g, host, shape); };
    auto up_i32 = [&](const std::vector<int32_t>& host) {
      const Shape shape{static_cast<int64_t>(host.size())};
      OnBoth b{cpu().alloc(DType::kI32, shape), g->alloc(DType::kI32, shape)};
      cpu().upload(host.data(), DType::kI32, b.c);
      g->upload(host.data(), DType::kI32, b.g);
      return b;
    };
    uint64_t seed = 500;
    for (const auto& c : cases) {
      // Enough cache slots that the t tokens' slots are distinct (as in a real step).
      const int64_t bs = 4, blocks = std::max<int64_t>(7, (c.t + bs - 1) / bs + 3), rows = (c.h + 2 * c.hkv) * c.hd;
      OnBoth x = up(random_bf16(c.t * c.d, ++seed, 2.0f), {c.t, c.d});
      OnBoth nw = up(random_bf16(c.d, ++seed, 0.5f), {c.d});
      OnBoth w = up(random_bf16(rows * c.d, ++seed, 0.1f), {rows, c.d});
      OnBoth q = up(std::vector<float>(static_cast<size_t>(c.t * c.h * c.hd), 0.0f), {c.t, c.h, c.hd});
      OnBoth kc = up(random_bf16(blocks * bs * c.hkv * c.hd, ++seed), {blocks, bs, c.hkv, c.hd});
      OnBoth vc = up(random_bf16(blocks * bs * c.hkv * c.hd, ++seed), {blocks, bs, c.hkv, c.hd});
      std::vector<int32_t> pos(static_cast<size_t>(c.t)), slots(static_cast<size_t>(blocks * bs));
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), std::mt19937(static_cast<unsigned>(seed)));
      slots.resize(static_cast<size_t>(c.t));  // distinct, shuffled
      for (int64_t i = 0; i < c.t; ++i) pos[i] = static_cast<int32_t>((i * 7919 + seed) % 40000);
      OnBoth p = up_i32(pos), sl = up_i32(slots);
      cpu().qkv_rope({.x = x.c, .norm_weight = nw.c, .w_qkv = w.c, .pos = p.c, .q = q.c, .k_cache = kc.c,
                      .v_cache = vc.c, .slot_mapping = sl.c, .eps = 1e-5f, .theta = 1e6f});
      g->qkv_rope({.x = x.g, .norm_weight = nw.g, .w_qkv = w.g, .pos = p.g, .q = q.g, .k_cache = kc.g,
                   .v_cache = vc.g, .slot_mapping = sl.g, .eps = 1e-5f, .theta = 1e6f});
      const std::string what = std::string(e.name ? e.name : "default") + "=" + (e.value ? e.value : "") + " t " +
                               std::to_string(c.t) + " d " + std::to_string(c.d) + " hd " + std::to_string(c.hd);
      EXPECT_LE(rel_between(*g, q.g, q.c), kOpTolerance) << what;
      EXPECT_LE(rel_between(*g, kc.g, kc.c), kOpTolerance) << what;
      EXPECT_LE(rel_between(*g, vc.g, vc.c), kOpTolerance) << what;
    }
  }
}

TEST(CudaConformance, RmsNorm) {
  SKIP_WITHOUT_CUDA();
  // d % 8 == 0 up to 8192 takes the 16-byte kernel (1, 2, 4 or 8 chunks per thread); 100 and
  // 8200 (more than 8 chunks per thread) the scalar one.
  for (int64_t t : {1, 5, 17, 64})
    for (int64_t d : {64, 100, 1024, 2056, 5120, 8200}) {
      Both x = upload_both(random_bf16(t * d, t * d, 3.0f), {t, d});
      Both w = upload_both(random_bf16(d, d + 1), {d});
      Both y = zeros_both({t, d});
      cpu().rms_norm({.x = x.c, .weight = w.c, .y = y.c, .eps = 1e-5f});
      gpu().rms_norm({.x = x.g, .weight = w.g, .y = y.g, .eps = 1e-5f});
      EXPECT_LE(rel_error(y), kOpTolerance) << t << "x" << d;
      cpu().rms_norm({.x = x.c, .weight = w.c, .y = x.c, .eps = 1e-5f});  // in place
      gpu().rms_norm({.x = x.g, .weight = w.g, .y = x.g, .eps = 1e-5f});
      EXPECT_LE(rel_error(x), kOpTolerance) << t << "x" << d << " in place";
    }
}

TEST(CudaConformance, Rope1dAnd2d) {
  SKIP_WITHOUT_CUDA();
  // hd % 8 == 0: the 16-byte kernel (8 heads per thread: 3 and 11 heads leave partial groups);
  // hd 12: the scalar kernel.
  for (int64_t hd : {12, 16, 24, 64, 128})
    for (int64_t h : {3, 11})
    for (bool two_d : {false, true}) {
      if (two_d && hd % 4 != 0) continue;
      const int64_t t = 37;
      std::vector<int32_t> pos(t), col(t);
      std::mt19937 rng(static_cast<unsigned>(hd));
      for (int64_t i = 0; i < t; ++i) {
        pos[i] = two_d ? static_cast<int32_t>(rng() % 64) : static_cast<int32_t>(rng() % 40000);
        col[i] = static_cast<int32_t>(rng() % 64);
      }
      Both x = upload_both(random_bf16(t * h * hd, hd), {t, h, hd});
      Both p = upload_i32_both(pos, {t}), pc = upload_i32_both(col, {t});
      const float theta = two_d ? 10000.0f : 1e9f;
      cpu().rope({.x = x.c, .pos = p.c, .pos_col = two_d ? pc.c.tensor() : Tensor{}, .theta = theta});
      gpu().rope({.x = x.g, .pos = p.g, .pos_col = two_d ? pc.g.tensor() : Tensor{}, .theta = theta});
      EXPECT_LE(rel_error(x), kOpTolerance) << "hd " << hd << " h " << h << " 2d " << two_d;
    }
}

TEST(CudaConformance, SiluMulAndGelu) {
  SKIP_WITHOUT_CUDA();
  for (int64_t t : {1, 7, 64})
    for (int64_t f : {20, 48, 14336}) {  // 20: the scalar kernels
      Both gu = upload_both(random_bf16(t * 2 * f, t + f, 2.0f), {t, 2 * f});
      Both out = zeros_both({t, f});
      cpu().silu_mul({.gate_up = gu.c, .out = out.c});
      gpu().silu_mul({.gate_up = gu.g, .out = out.g});
      EXPECT_LE(rel_error(out), kOpTolerance) << t << "x" << f;
      cpu().gelu({.x = gu.c});
      gpu().gelu({.x = gu.g});
      EXPECT_LE(rel_error(gu), kOpTolerance) << t << "x" << f << " gelu";
    }
}

TEST(CudaConformance, EmbeddingScatterGather) {
  SKIP_WITHOUT_CUDA();
  for (int64_t d : {24, 64, 5120}) {  // 48 B rows (2-byte path) and 16-byte multiples
    const int64_t vocab = 100, t = 13;
    Both table = upload_both(random_bf16(vocab * d, d), {vocab, d});
    std::vector<int32_t> ids(t);
    for (int64_t i = 0; i < t; ++i) ids[i] = static_cast<int32_t>((i * 37 + 5) % vocab);
    Both id = upload_i32_both(ids, {t});
    Both x = zeros_both({t, d});
    cpu().embedding({.table = table.c, .ids = id.c, .out = x.c});
    gpu().embedding({.table = table.g, .ids = id.g, .out = x.g});
    EXPECT_LE(rel_error(x), 1e-6);
    Both src = upload_both(random_bf16(4 * d, d + 3), {4, d});
    Both rows = upload_i32_both({11, 0, 6, 3}, {4});
    cpu().scatter_rows({.src = src.c, .index = rows.c, .dst = x.c});
    gpu().scatter_rows({.src = src.g, .index = rows.g, .dst = x.g});
    EXPECT_LE(rel_error(x), 1e-6);
    Both out = zeros_both({4, d});
    cpu().gather_rows({.src = x.c, .index = rows.c, .out = out.c});
    gpu().gather_rows({.src = x.g, .index = rows.g, .out = out.g});
    EXPECT_LE(rel_error(out), 1e-6);
  }
}

TEST(CudaConformance, Patchify) {
  SKIP_WITHOUT_CUDA();
  for (int64_t p : {8, 16}) {
    const int64_t c = 3, h = 3 * p, w = 5 * p;
    Both img = upload_both(random_bf16(c * h * w, p), {c, h, w}, DType::kF32);
    Both out = zeros_both({(h / p) * (w / p), c * p * p});
    cpu().patchify({.image = img.c, .patches = out.c, .patch_size = p});
    gpu().patchify({.image = img.g, .patches = out.g, .patch_size = p});
    EXPECT_LE(rel_error(out), 1e-6);
  }
}

TEST(CudaConformance, KvWrite) {
  SKIP_WITHOUT_CUDA();
  const int64_t blocks = 6, bs = 4, hkv = 2, hd = 24, t = 5;
  Both kc = upload_both(random_bf16(blocks * bs * hkv * hd, 1), {blocks, bs, hkv, hd});
  Both vc = upload_both(random_bf16(blocks * bs * hkv * hd, 2), {blocks, bs, hkv, hd});
  Both k = upload_both(random_bf16(t * hkv * hd, 3), {t, hkv, hd});
  Both v = upload_both(random_bf16(t * hkv * hd, 4), {t, hkv, hd});
  Both slots = upload_i32_both({23, 0, 4, 17, 9}, {t});
  cpu().kv_write({.k = k.c, .v = v.c, .k_cache = kc.c, .v_cache = vc.c, .slot_mapping = slots.c});
  gpu().kv_write({.k = k.g, .v = v.g, .k_cache = kc.g, .v_cache = vc.g, .slot_mapping = slots.g});
  EXPECT_LE(rel_error(kc), 1e-6);
  EXPECT_LE(rel_error(vc), 1e-6);
}

}  // namespace
}  // namespace pixtral::backend::testing
