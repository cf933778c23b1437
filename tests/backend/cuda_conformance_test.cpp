// Every op of the CUDA backend against the CPU reference on a grid of shapes (odd sizes, several
// sequences and segments, block boundaries, GQA and not, head_dim 16/24/64/128): ‖cuda − cpu‖/‖cpu‖
// <= 1e-2 and never NaN. Inputs are bf16-exact so only the CUDA side's bf16 rounding differs.
#include <algorithm>
#include <cstdlib>
#include <numeric>

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

TEST(CudaConformance, RmsNorm) {
  SKIP_WITHOUT_CUDA();
  for (int64_t t : {1, 5, 17})
    for (int64_t d : {64, 100, 5120}) {
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
  for (int64_t hd : {16, 24, 64, 128})
    for (bool two_d : {false, true}) {
      if (two_d && hd % 4 != 0) continue;
      const int64_t t = 37, h = 3;
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
      EXPECT_LE(rel_error(x), kOpTolerance) << "hd " << hd << " 2d " << two_d;
    }
}

TEST(CudaConformance, SiluMulAndGelu) {
  SKIP_WITHOUT_CUDA();
  for (int64_t t : {1, 7, 64})
    for (int64_t f : {48, 14336}) {
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
