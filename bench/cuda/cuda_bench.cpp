// cuda_bench: the CUDA backend on the exact Pixtral-12B shape with random weights. Each figure is
// the median of N timed repetitions after warm-up (host clock around work followed by a device
// synchronize; every measured step is milliseconds long) and is printed beside its H100 ceiling:
// 3.03 TB/s read, 789 TFLOP/s bf16 (perf/targets.md).
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "image/image.h"
#include "io/model_config.h"
#include "model/pixtral_model.h"
#include "jpeg_fixture.h"

namespace {

using pixtral::backend::Backend;
using pixtral::model::PixtralModel;

constexpr double kBandwidth = 3.03e12;   // bytes/s
constexpr double kBf16Flops = 789e12;    // flop/s
constexpr double kWeightBytes = 23.15e9;  // decoder weights read per decode step
constexpr double kKvBytesPerToken = 160.0 * 1024;

// Median seconds of `reps` runs of fn (each followed by a synchronize) after `warmup` runs.
double median_seconds(Backend& b, int warmup, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  b.synchronize();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    b.synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

pixtral::model::DecoderBatch one_chunk(int64_t start, int64_t len, int64_t block_size) {
  pixtral::model::SequenceChunk c;
  c.token_ids.assign(static_cast<size_t>(len), 0);
  for (int64_t i = 0; i < len; ++i) c.token_ids[i] = static_cast<int32_t>(1000 + (i * 7919) % 100000);
  c.start_pos = start;
  c.block_table.resize(static_cast<size_t>((start + len + block_size - 1) / block_size));
  std::iota(c.block_table.begin(), c.block_table.end(), 0);
  pixtral::model::DecoderBatch batch;
  batch.seqs.push_back(std::move(c));
  return batch;
}

// Cache blocks the decode sequences of an engine-like step may use: the last kChunkBlocks are left
// to the prefill chunk of a mixed step.
constexpr int64_t kChunkBlocks = 200;

// `seqs` sequences of `context` tokens decoding one token each (ids 1000 + s), each on its own
// ceil(context / block_size) consecutive cache blocks; when they need more blocks than the cache
// has (engine-like contexts of image prompts), block ids wrap around below the chunk's blocks, so
// sequences share blocks (reads as wide as distinct ones; the new tokens' writes may collide).
pixtral::model::DecoderBatch decode_batch(const pixtral::model::KvCache& cache, int64_t seqs, int64_t context) {
  const int64_t blocks_per_seq = (context + cache.block_size - 1) / cache.block_size;
  const int64_t usable = cache.num_blocks - kChunkBlocks;
  pixtral::model::DecoderBatch batch;
  for (int64_t s = 0; s < seqs; ++s) {
    auto one = one_chunk(context - 1, 1, cache.block_size);
    for (auto& id : one.seqs[0].block_table) id = static_cast<int32_t>((id + s * blocks_per_seq) % usable);
    one.seqs[0].token_ids[0] = static_cast<int32_t>(1000 + s);
    batch.seqs.push_back(std::move(one.seqs[0]));
  }
  return batch;
}

void bench_decode(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t context) {
  auto batch = one_chunk(context - 1, 1, cache.block_size);
  const double s = median_seconds(m.backend(), 3, 15, [&] { (void)m.forward(batch, cache); });
  const double ceiling = kBandwidth / (kWeightBytes + kKvBytesPerToken * static_cast<double>(context));
  std::printf("decode batch 1, context %6lld: %7.2f ms/token = %6.1f tok/s (ceiling %.1f tok/s, %.0f%%)\n",
              static_cast<long long>(context), s * 1e3, 1.0 / s, ceiling, 100.0 / s / ceiling);
}

// The engine's decode path: persistent buffers, the step recorded once as a CUDA graph and
// replayed (block tables and the attention launch sized for the context rounded up to a power of
// two blocks, as in the engine).
void bench_decode_graph(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t context) {
  auto runner = m.make_decode_runner(cache, 1, cache.num_blocks);
  auto batch = one_chunk(context - 1, 1, cache.block_size);
  const double s = median_seconds(m.backend(), 3, 30, [&] { (void)runner->step(batch); });
  const double ceiling = kBandwidth / (kWeightBytes + kKvBytesPerToken * static_cast<double>(context));
  std::printf("decode (graph) batch 1, context %6lld: %7.2f ms/token = %6.1f tok/s (ceiling %.1f tok/s, %.0f%%)\n",
              static_cast<long long>(context), s * 1e3, 1.0 / s, ceiling, 100.0 / s / ceiling);
}

// The engine's batched decode step: `seqs` sequences of `context` tokens each on distinct cache
// blocks, one new token per sequence, replayed as a graph. Ceiling: the weights plus every
// sequence's K/V read once per step.
double bench_decode_batch(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t seqs, int64_t context) {
  const int64_t blocks_per_seq = (context + cache.block_size - 1) / cache.block_size;
  auto runner = m.make_decode_runner(cache, seqs, blocks_per_seq);
  const pixtral::model::DecoderBatch batch = decode_batch(cache, seqs, context);
  std::vector<double> enqueue;  // host time of step() alone: inputs, uploads, graph launch
  const double s = median_seconds(m.backend(), 3, 20, [&] {
    const auto start = std::chrono::steady_clock::now();
    (void)runner->step(batch);
    enqueue.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  });
  std::sort(enqueue.begin(), enqueue.end());
  const double bytes = kWeightBytes + kKvBytesPerToken * static_cast<double>(context * seqs);
  std::printf("decode (graph) batch %lld, context %lld: %7.2f ms/step = %6.0f tok/s (ceiling %.0f tok/s, %.0f%%); "
              "host enqueue %.3f ms\n",
              static_cast<long long>(seqs), static_cast<long long>(context), s * 1e3, seqs / s,
              seqs * kBandwidth / bytes, 100.0 * bytes / s / kBandwidth, enqueue[enqueue.size() / 2] * 1e3);
  return s;
}

// A serving step that carries a prefill chunk: `decodes` sequences of 640 tokens decoding (first,
// as the scheduler orders them) and one chunk of `chunk` tokens after 2,048 cached ones, through
// the allocating forward() path the engine takes for such steps. Printed against a decode-only
// step of decodes + 1 sequences (`decode_step` seconds): the ratio bounds the running streams'
// inter-token latency while a long prompt (an image) prefills.
pixtral::model::DecoderBatch mixed_batch(const pixtral::model::KvCache& cache, int64_t decodes, int64_t chunk,
                                         int64_t context) {
  pixtral::model::DecoderBatch batch = decode_batch(cache, decodes, context);
  auto prefill = one_chunk(2048, chunk, cache.block_size);
  PX_CHECK(static_cast<int64_t>(prefill.seqs[0].block_table.size()) <= kChunkBlocks);
  for (auto& id : prefill.seqs[0].block_table) id += static_cast<int32_t>(cache.num_blocks - kChunkBlocks);
  batch.seqs.push_back(std::move(prefill.seqs[0]));
  return batch;
}

void bench_mixed_step(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t decodes, int64_t chunk,
                      int64_t context, double decode_step) {
  const auto batch = mixed_batch(cache, decodes, chunk, context);
  const double s = median_seconds(m.backend(), 2, 10, [&] { (void)m.forward(batch, cache); });
  std::printf("mixed step: %lld decodes (%lld context) + a %lld-token chunk after 2048: %7.2f ms = %.2fx the "
              "%lld-sequence decode step\n",
              static_cast<long long>(decodes), static_cast<long long>(context), static_cast<long long>(chunk),
              s * 1e3, s / decode_step, static_cast<long long>(decodes + 1));
}

// The steps of the image load (issue 5: 32 requests in flight, each a 1024² image + 100 tokens,
// so about 4,400 tokens of context while they decode): a decode-only step of 32 sequences, and
// mixed steps of 31 decodes plus the chunk that fills a token budget of 256, 384 or 512 (the
// scheduler counts the decodes in the budget). The ratio is the bound on the running streams'
// inter-token latency while images prefill (≤ 2x).
void bench_image_load_steps(const PixtralModel& m, pixtral::model::KvCache& cache) {
  const int64_t context = 4400, decodes = 31;
  const double step = bench_decode_batch(m, cache, decodes + 1, context);
  for (int64_t budget : {256, 384, 512}) bench_mixed_step(m, cache, decodes, budget - decodes, context, step);
}

void bench_prefill(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t tokens) {
  auto batch = one_chunk(0, tokens, cache.block_size);
  const double s = median_seconds(m.backend(), 1, 5, [&] { (void)m.forward(batch, cache); });
  const auto& t = m.config().text;
  // Causal attention: 4·T²/2·H·hd flops per layer (QKᵀ and PV).
  const double attn = 2.0 * static_cast<double>(tokens) * tokens * t.num_heads * t.head_dim * t.num_layers;
  const double flops = 21.8e9 * static_cast<double>(tokens) + attn;
  std::printf("prefill %lld tokens: %.1f ms = %.0f tok/s, %.0f TFLOP/s effective (ceiling %.0f, %.0f%%)\n",
              static_cast<long long>(tokens), s * 1e3, tokens / s, flops / s / 1e12, kBf16Flops / 1e12,
              100.0 * flops / s / kBf16Flops);
}

void bench_vision(const PixtralModel& m) {
  const int64_t side = 1024;
  std::vector<float> pixels(static_cast<size_t>(3 * side * side));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  std::vector<pixtral::model::ImageInput> images{{side, side, pixels.data()}};
  const double s = median_seconds(m.backend(), 2, 9, [&] { (void)m.encode_images(images); });
  const double flops = 5.2e12;  // perf/targets.md: ≈ 5.2 TFLOP for one 1024² image
  std::printf("vision encoder, one 1024x1024 image: %.2f ms (%.0f TFLOP/s; ceiling %.1f ms at 789 TFLOP/s)\n",
              s * 1e3, flops / s / 1e12, flops / kBf16Flops * 1e3);
}

// The prompt of one image of rows x cols patches + 20 text tokens: [BOS] [INST] image rows
// ([IMG]… [IMG_BREAK], the last row ending in [IMG_END]) then the text and [/INST].
std::vector<int32_t> image_prompt(int64_t rows, int64_t cols) {
  std::vector<int32_t> ids = {1, 3};
  for (int64_t r = 0; r < rows; ++r) {
    ids.insert(ids.end(), static_cast<size_t>(cols), 10);
    ids.push_back(r + 1 < rows ? 12 : 13);
  }
  for (int32_t t = 0; t < 20; ++t) ids.push_back(2000 + t);
  ids.push_back(4);
  return ids;
}

// One time to first token: vision encoder + adapter, prefill of the prompt with the image rows
// merged, the last row's logits copied back to the host.
void first_token(const PixtralModel& m, pixtral::model::KvCache& cache, const pixtral::model::ImageInput& image,
                 const std::vector<int32_t>& ids, std::vector<float>& logits) {
  auto feats = m.encode_images({image});
  pixtral::model::DecoderBatch batch;
  pixtral::model::SequenceChunk c;
  c.token_ids = ids;
  c.block_table.resize(static_cast<size_t>((ids.size() + cache.block_size - 1) / cache.block_size));
  std::iota(c.block_table.begin(), c.block_table.end(), 0);
  c.image_embeds = feats->tensor();
  batch.seqs.push_back(std::move(c));
  auto out = m.forward(batch, cache);
  m.backend().download_f32(*out, logits.data());
}

// Time to first token of one 1024x1024 image + 20 text tokens: the GPU part (pixels already
// normalized on the host), then the whole path from the JPEG bytes in memory (decode + resize +
// normalize on the host threads, then the GPU part).
void bench_ttft(const PixtralModel& m, pixtral::model::KvCache& cache) {
  const int64_t side = 1024, n = side / 16;
  std::vector<float> pixels(static_cast<size_t>(3 * side * side));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  const std::vector<int32_t> ids = image_prompt(n, n);
  std::vector<float> logits(static_cast<size_t>(m.config().text.vocab_size));
  const double gpu =
      median_seconds(m.backend(), 2, 7, [&] { first_token(m, cache, {side, side, pixels.data()}, ids, logits); });
  std::printf("TTFT one 1024x1024 image + 20 text tokens (GPU part, %zu positions): %.1f ms\n", ids.size(), gpu * 1e3);

  const std::vector<uint8_t> jpeg = pixtral::bench::photo_like_jpeg(side, side, 90);
  double preprocess_only = 0;
  const double total = median_seconds(m.backend(), 2, 7, [&] {
    const auto start = std::chrono::steady_clock::now();
    auto image = pixtral::image::decode_and_preprocess(jpeg);
    if (!image.is_ok()) {
      std::fprintf(stderr, "cuda_bench: %s\n", image.status().to_string().c_str());
      std::exit(1);
    }
    preprocess_only = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& px = image->pixels;
    first_token(m, cache, {px.height, px.width, px.data.data()}, image_prompt(image->grid.rows, image->grid.cols),
                logits);
  });
  std::printf("TTFT from a %zu-byte 1024x1024 JPEG + 20 text tokens (decode + preprocess + GPU): %.1f ms "
              "(preprocessing %.1f ms of it, %u host threads)\n",
              jpeg.size(), total * 1e3, preprocess_only * 1e3, std::thread::hardware_concurrency());
}

// The attention ops alone, one layer, for the many-rows kernel `name` (the backend's
// PIXTRAL_CUDA_ATTN / _WARPS choice): vision varlen (4096 tokens, 16 heads, hd 64) and causal
// paged prefill of 4160 tokens (32/8 heads, hd 128; T²/2 pairs counted), each with TFLOP/s and
// the share of the 789 TFLOP/s bf16 ceiling.
void bench_attention_rows(Backend& b, const char* name) {
  using pixtral::base::DType;
  auto i32 = [&](const std::vector<int32_t>& host) {
    auto t = b.alloc(DType::kI32, {static_cast<int64_t>(host.size())});
    b.upload(host.data(), DType::kI32, t);
    return t;
  };
  {
    const int64_t n = 4096, h = 16, hd = 64;
    auto q = b.alloc(DType::kBF16, {n, h, hd}), k = b.alloc(DType::kBF16, {n, h, hd});
    auto v = b.alloc(DType::kBF16, {n, h, hd}), o = b.alloc(DType::kBF16, {n, h, hd});
    for (auto* t : {&q, &k, &v}) b.fill_random(*t, 7, 0.0f, 1.0f);
    auto cu = i32({0, static_cast<int32_t>(n)});
    const double s = median_seconds(b, 3, 20, [&] {
      b.varlen_attention({.q = q, .k = k, .v = v, .cu_seqlens = cu, .out = o, .scale = 0.125f, .num_segments = 1,
                          .max_seqlen = n});
    });
    const double flops = 4.0 * n * n * h * hd;
    std::printf("attention %-9s varlen 4096 tok, 16 heads, hd 64: %7.1f us, %4.0f TFLOP/s "
                "(%2.0f%% of 789; x24 layers: %.2f ms)\n",
                name, s * 1e6, flops / s / 1e12, 100.0 * flops / s / kBf16Flops, 24 * s * 1e3);
  }
  const int64_t h = 32, hkv = 8, hd = 128, bs = 16, t = 4160;
  auto kc = b.alloc(DType::kBF16, {t / bs, bs, hkv, hd}), vc = b.alloc(DType::kBF16, {t / bs, bs, hkv, hd});
  b.fill_random(kc, 8, 0.0f, 1.0f);
  b.fill_random(vc, 9, 0.0f, 1.0f);
  std::vector<int32_t> table(static_cast<size_t>(t / bs));
  std::iota(table.begin(), table.end(), 0);
  auto bt = b.alloc(DType::kI32, {1, t / bs});
  b.upload(table.data(), DType::kI32, bt);
  auto q = b.alloc(DType::kBF16, {t, h, hd}), o = b.alloc(DType::kBF16, {t, h, hd});
  b.fill_random(q, 10, 0.0f, 1.0f);
  auto qs = i32({0, static_cast<int32_t>(t)}), kl = i32({static_cast<int32_t>(t)});
  const double s = median_seconds(b, 3, 20, [&] {
    b.paged_attention({.q = q, .k_cache = kc, .v_cache = vc, .q_start = qs, .kv_len = kl, .block_tables = bt,
                       .out = o, .scale = 0.088f, .num_seqs = 1, .max_kv_len = t, .max_q_len = t});
  });
  const double flops = 4.0 * t * t / 2 * h * hd;
  std::printf("attention %-9s paged prefill 4160 tok, 32/8 heads, hd 128: %7.1f us, %4.0f TFLOP/s "
              "(%2.0f%% of 789; x40 layers: %.2f ms)\n",
              name, s * 1e6, flops / s / 1e12, 100.0 * flops / s / kBf16Flops, 40 * s * 1e3);
}

// Decode attention alone, one layer, on the backend's decode path (`kernel` names its
// PIXTRAL_CUDA_DECODE_ATTN setting): 40 back-to-back calls recorded as one CUDA graph (as in a
// decode step: no host launch cost in the figure), batch 1 at 512 / 4096 / 32768 keys with the
// launch sized for 32768 (a graph captured at the cache capacity), and 64 sequences of 640 keys
// with the launch sized for 640 and for 32768. Rate: the K+V bytes read against 3.03 TB/s.
void bench_decode_attention(Backend& b, const char* kernel) {
  using pixtral::base::DType;
  const int64_t h = 32, hkv = 8, hd = 128, bs = 16, cap = 32768, tokens = 64 * 640;
  auto kc = b.alloc(DType::kBF16, {tokens / bs, bs, hkv, hd}), vc = b.alloc(DType::kBF16, {tokens / bs, bs, hkv, hd});
  b.fill_random(kc, 8, 0.0f, 1.0f);
  b.fill_random(vc, 9, 0.0f, 1.0f);
  struct Case {
    int64_t seqs, context, bound;
  };
  for (const Case c : {Case{1, 512, cap}, Case{1, 4096, cap}, Case{1, 32768, cap}, Case{64, 640, 640},
                       Case{64, 640, cap}}) {
    const int64_t max_blocks = c.bound / bs, per_seq = (c.context + bs - 1) / bs, blocks = tokens / bs;
    std::vector<int32_t> q_start{0}, kv_len;
    for (int64_t s = 0; s < c.seqs; ++s) {
      q_start.push_back(static_cast<int32_t>(s + 1));
      kv_len.push_back(static_cast<int32_t>(c.context));
    }
    // Each layer reads other blocks (as far as the cache allows), so short contexts are not
    // served from L2 by the previous layer.
    std::vector<pixtral::backend::TensorBuffer> tables;
    for (int64_t layer = 0; layer < 40; ++layer) {
      std::vector<int32_t> table(static_cast<size_t>(c.seqs * max_blocks), 0);
      for (int64_t s = 0; s < c.seqs; ++s)
        for (int64_t j = 0; j < per_seq; ++j)
          table[s * max_blocks + j] = static_cast<int32_t>(((layer * c.seqs + s) * per_seq + j) % blocks);
      tables.push_back(b.alloc(DType::kI32, {c.seqs, max_blocks}));
      b.upload(table.data(), DType::kI32, tables.back());
    }
    auto qs = b.alloc(DType::kI32, {c.seqs + 1}), kl = b.alloc(DType::kI32, {c.seqs});
    b.upload(q_start.data(), DType::kI32, qs);
    b.upload(kv_len.data(), DType::kI32, kl);
    auto q = b.alloc(DType::kBF16, {c.seqs, h, hd}), o = b.alloc(DType::kBF16, {c.seqs, h, hd});
    b.fill_random(q, 11, 0.0f, 1.0f);
    auto call = [&](int64_t layer) {
      b.paged_attention({.q = q, .k_cache = kc, .v_cache = vc, .q_start = qs, .kv_len = kl,
                         .block_tables = tables[static_cast<size_t>(layer)], .out = o, .scale = 0.088f,
                         .num_seqs = c.seqs, .max_kv_len = c.bound, .max_q_len = 1});
    };
    call(0);  // warm-up outside the capture (kernel attributes, workspace)
    b.synchronize();
    b.begin_capture();
    for (int64_t layer = 0; layer < 40; ++layer) call(layer);
    const auto graph = b.end_capture();
    const double s = median_seconds(b, 2, 15, [&] { graph->replay(); }) / 40;
    const double bytes = 2.0 * static_cast<double>(c.seqs * c.context * hkv * hd) * 2;
    std::printf("attention decode [%s] batch %2lld ctx %5lld (launch for %5lld), 32/8 heads, hd 128: %6.1f us, "
                "%5.0f GB/s (%3.0f%% of 3.03 TB/s; x40: %.2f ms)\n",
                kernel, static_cast<long long>(c.seqs), static_cast<long long>(c.context),
                static_cast<long long>(c.bound), s * 1e6, bytes / s / 1e9, 100.0 * bytes / s / kBandwidth,
                40 * s * 1e3);
  }
}

// Small-M matmul bandwidth: weights [n, k] streamed once per call. 20 calls back to back per timed
// repetition (no host gap between kernels, as in a graph), rotating over enough weight copies
// (>= 128 MB) that no call finds its matrix in the 50 MB L2.
void bench_small_m(Backend& b, const char* path, std::initializer_list<int64_t> ms) {
  using pixtral::base::DType;
  for (int64_t m : ms)
    for (auto [n, k] : {std::pair<int64_t, int64_t>{6144, 5120}, {4096, 5120}, {1024, 5120}, {5120, 4096},
                        {28672, 5120}, {5120, 14336}, {131072, 5120}}) {
      const double bytes = static_cast<double>(n * k * 2);
      const int copies = static_cast<int>(std::max(1.0, std::ceil(128e6 / bytes)));
      std::vector<pixtral::backend::TensorBuffer> ws;
      for (int i = 0; i < copies; ++i) {
        ws.push_back(b.alloc(DType::kBF16, {n, k}));
        b.fill_random(ws.back(), 1 + i, 0.0f, 0.02f);
      }
      auto x = b.alloc(DType::kBF16, {m, k});
      auto y = b.alloc(DType::kBF16, {m, n});
      b.fill_random(x, 2, 0.0f, 1.0f);
      constexpr int kCalls = 20;
      const double s = median_seconds(b, 2, 10, [&] {
        for (int i = 0; i < kCalls; ++i) b.matmul({.x = x, .w = ws[i % copies], .y = y});
      }) / kCalls;
      std::printf("matmul %-9s M=%lld N=%6lld K=%5lld: %7.1f us, %5.0f GB/s (%.0f%% of 3.03 TB/s)\n", path,
                  static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), s * 1e6,
                  bytes / s / 1e9, 100.0 * bytes / s / kBandwidth);
    }
}

// The sample op on random bf16 logits [R, 131072] (std 3): greedy; temperature 0.8 + top-k 50 +
// top-p 0.9; top-p 0.9 alone (the radix selects over weights). 20 calls back to back per timed
// repetition.
void bench_sample(Backend& b) {
  using pixtral::base::DType;
  const int64_t vocab = 131072;
  struct Config {
    const char* name;
    float temperature;
    int32_t top_k;
    float top_p;
  };
  const Config configs[] = {{"greedy", 0.0f, 0, 1.0f}, {"T 0.8, top-k 50, top-p 0.9", 0.8f, 50, 0.9f},
                            {"T 1.0, top-p 0.9", 1.0f, 0, 0.9f}};
  for (int64_t rows : {1, 64, 256}) {
    auto logits = b.alloc(DType::kBF16, {rows, vocab});
    b.fill_random(logits, 31, 0.0f, 3.0f);
    const auto n = static_cast<size_t>(rows);
    auto f32 = [&](float v) {
      auto t = b.alloc(DType::kF32, {rows});
      const std::vector<float> host(n, v);
      b.upload(host.data(), DType::kF32, t);
      return t;
    };
    auto i32 = [&](int32_t v) {
      auto t = b.alloc(DType::kI32, {rows});
      const std::vector<int32_t> host(n, v);
      b.upload(host.data(), DType::kI32, t);
      return t;
    };
    std::vector<int64_t> uniform_bits(n);  // F64 uniforms, uploaded as raw 64-bit words
    for (size_t i = 0; i < n; ++i) {
      const double u = (static_cast<double>(i) + 0.5) / static_cast<double>(n);
      std::memcpy(&uniform_bits[i], &u, sizeof u);
    }
    auto uniform = b.alloc(DType::kI64, {rows});
    b.upload(uniform_bits.data(), DType::kI64, uniform);
    pixtral::backend::Tensor uniform_f64 = uniform.tensor();
    uniform_f64.dtype = DType::kF64;
    auto out = b.alloc(DType::kI32, {rows});
    for (const Config& c : configs) {
      auto temperature = f32(c.temperature), top_p = f32(c.top_p), min_p = f32(0.0f);
      auto top_k = i32(c.top_k);
      constexpr int kCalls = 20;
      const double s = median_seconds(b, 2, 10, [&] {
        for (int i = 0; i < kCalls; ++i)
          b.sample({.logits = logits, .temperature = temperature, .top_k = top_k, .top_p = top_p, .min_p = min_p,
                    .uniform = uniform_f64, .out_ids = out});
      }) / kCalls;
      std::printf("sample R=%3lld V=131072 %-26s: %8.1f us (%.2f us per row)\n", static_cast<long long>(rows),
                  c.name, s * 1e6, s * 1e6 / static_cast<double>(rows));
    }
  }
}

// A backend made with `name` = `value` in the environment (the switch is read at construction).
std::unique_ptr<Backend> backend_with_env(const char* name, const char* value) {
  setenv(name, value, 1);
  auto b = std::move(pixtral::backend::make_cuda_backend(0)).value();
  unsetenv(name);
  return b;
}

// The GEMV streaming variants (cuda_common.h, GemvTuning) at M = 1, each on a backend made with
// its PIXTRAL_CUDA_GEMV_* settings: 8 loads per lane; the cp.async ring with block barriers
// (pipe1) and with barriers per column (pipe2) at several depths; the warp kernel (whole outputs
// per warp, no barriers); a block per column group (full grid); L2 evict-first weight reads.
void bench_gemv_variants() {
  using Setting = std::pair<const char*, const char*>;
  struct Variant {
    const char* label;
    std::vector<Setting> env;
  };
  const Variant variants[] = {
      {"gemv-u8", {{"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-gridfull", {{"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
      {"gemv-pipe1", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}}},
      {"gemv-pipe1-s4", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-pipe2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}}},
      {"gemv-pipe2-s2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}}},
      {"gemv-pipe2-s4", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-pipe2-s6", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_STAGES", "6"}}},
      {"gemv-pipe2-u8", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-pipe2-wpc1", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "1"}}},
      {"gemv-pipe2-wpc2", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "2"}}},
      {"gemv-pipe2-wpc4", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}}},
      {"gemv-pipe1-wpc4", {{"PIXTRAL_CUDA_GEMV_PIPE", "1"}, {"PIXTRAL_CUDA_GEMV_WPC", "4"}}},
      {"gemv-pipe2-evict", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_EVICT", "1"}}},
      {"gemv-pipe2-gridfull", {{"PIXTRAL_CUDA_GEMV_PIPE", "2"}, {"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
      {"gemv-warp", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}}},
      {"gemv-warp-s2", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "2"}}},
      {"gemv-warp-s4", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_STAGES", "4"}}},
      {"gemv-warp-u8", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_UNROLL", "8"}}},
      {"gemv-warp-evict", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_EVICT", "1"}}},
      {"gemv-warp-gridfull", {{"PIXTRAL_CUDA_GEMV_WARP", "1"}, {"PIXTRAL_CUDA_GEMV_GRID", "full"}}},
  };
  for (const Variant& v : variants) {
    for (const Setting& e : v.env) setenv(e.first, e.second, 1);
    auto b = std::move(pixtral::backend::make_cuda_backend(0)).value();
    for (const Setting& e : v.env) unsetenv(e.first);
    bench_small_m(*b, v.label, {1});
  }
}

// One phase run under the profiler: set up and warm up (graphs captured) outside the profiled
// range, then exactly one run between cudaProfilerStart/Stop, e.g.
//   ncu --profile-from-start off --metrics gpu__time_duration.sum --csv cuda_bench --profile decode64
int profile_phase(const std::string& phase, const PixtralModel& m, pixtral::model::KvCache& cache) {
  std::function<void()> run;
  std::unique_ptr<pixtral::model::DecodeRunner> runner;
  pixtral::model::DecoderBatch batch;
  std::vector<float> pixels(3 * 1024 * 1024, 0.5f);
  std::vector<pixtral::model::ImageInput> images{{1024, 1024, pixels.data()}};
  if (phase == "decode1" || phase == "decode1-32k" || phase == "decode64") {
    const int64_t seqs = phase == "decode64" ? 64 : 1, context = phase == "decode1-32k" ? 32768 : 640;
    const int64_t blocks_per_seq = phase == "decode64" ? context / cache.block_size : cache.num_blocks;
    runner = m.make_decode_runner(cache, seqs, blocks_per_seq);
    batch = decode_batch(cache, seqs, context);
    run = [&] { (void)runner->step(batch); };
  } else if (phase == "mixed" || phase == "mixed-image") {  // as the 512-token lines of bench_mixed_step
    batch = phase == "mixed" ? mixed_batch(cache, 31, 512, 640) : mixed_batch(cache, 31, 512 - 31, 4400);
    run = [&] { (void)m.forward(batch, cache); };
  } else if (phase == "prefill") {
    batch = one_chunk(0, 4160, cache.block_size);
    run = [&] { (void)m.forward(batch, cache); };
  } else if (phase == "vision") {
    run = [&] { (void)m.encode_images(images); };
  } else {
    std::fprintf(stderr,
                 "cuda_bench: --profile wants decode1, decode1-32k, decode64, mixed, mixed-image, prefill or vision, "
                 "not '%s'\n",
                 phase.c_str());
    return 2;
  }
  run();
  run();
  m.backend().synchronize();
  cudaProfilerStart();
  run();
  m.backend().synchronize();
  cudaProfilerStop();
  std::printf("cuda_bench: profiled one '%s' run\n", phase.c_str());
  return 0;
}

// The many-rows attention kernels side by side: mma32 with its per-head_dim warps (the default),
// with 4 and with 8 warps per block, and flash2 (the first tensor-core kernel).
void bench_attention_kernels() {
  const std::pair<const char*, const char*> variants[] = {{"mma32", "0"}, {"mma32", "4"}, {"mma32", "8"},
                                                          {"flash2", "0"}};
  for (auto [kernel, warps] : variants) {
    setenv("PIXTRAL_CUDA_ATTN_WARPS", warps, 1);
    auto b = backend_with_env("PIXTRAL_CUDA_ATTN", kernel);
    unsetenv("PIXTRAL_CUDA_ATTN_WARPS");
    const std::string name = std::strcmp(warps, "0") == 0 ? std::string(kernel) : std::string(kernel) + "-w" + warps;
    bench_attention_rows(*b, name.c_str());
  }
}

}  // namespace

// cuda_bench [--decode-only | --decode-graph | --mixed | --prefill | --gemv-ops | --profile PHASE]:
// --decode-only skips the op-level sweeps and the attention kernels (to compare whole-model
// figures under different PIXTRAL_CUDA_* settings quickly); --decode-graph only times the batch-1
// decode graph at 512 and 32768 context (one run per PIXTRAL_CUDA_GEMV_* setting, e.g. to compare
// the GEMV variants whole-token); --mixed prints only the serving steps that carry a prefill chunk
// (and the decode steps they compare to); --prefill only the prefill, vision encoder and
// time-to-first-token lines; --gemv-ops only the M=1 GEMV rates of the default and of every
// streaming variant; --profile runs one phase inside a profiler range (see profile_phase).
int main(int argc, char** argv) {
  if (pixtral::backend::cuda_device_count() == 0) {
    std::printf("cuda_bench: no CUDA device\n");
    return 0;
  }
  const std::string flag = argc > 1 ? argv[1] : "";
  const bool decode_only = flag == "--decode-only", decode_graph = flag == "--decode-graph";
  const bool mixed_only = flag == "--mixed", prefill_only = flag == "--prefill";
  const std::string profile = flag == "--profile" && argc > 2 ? argv[2] : "";
  if (decode_graph) {
    std::printf("cuda_bench --decode-graph, GEMV settings:");
    for (const char* name : {"PIXTRAL_CUDA_GEMV", "PIXTRAL_CUDA_GEMV_WPC", "PIXTRAL_CUDA_GEMV_BLOCKS",
                             "PIXTRAL_CUDA_GEMV_STAGE", "PIXTRAL_CUDA_GEMV_PREFETCH", "PIXTRAL_CUDA_GEMV_UNROLL",
                             "PIXTRAL_CUDA_GEMV_PIPE", "PIXTRAL_CUDA_GEMV_STAGES", "PIXTRAL_CUDA_GEMV_WARP",
                             "PIXTRAL_CUDA_GEMV_GRID", "PIXTRAL_CUDA_GEMV_EVICT", "PIXTRAL_CUDA_PDL"})
      if (const char* v = std::getenv(name); v != nullptr) std::printf(" %s=%s", name, v);
    std::printf("\n");
  }
  if (flag == "--gemv-ops") {  // the M=1 GEMV rates of the default and of each streaming variant
    auto gemv = std::move(pixtral::backend::make_cuda_backend(0)).value();
    bench_small_m(*gemv, "gemv", {1});
    bench_gemv_variants();
    return 0;
  }
  if (!decode_only && !decode_graph && !mixed_only && !prefill_only && profile.empty()) {
    auto gemv = std::move(pixtral::backend::make_cuda_backend(0)).value();
    bench_small_m(*gemv, "gemv", {1, 4, 8});
    bench_small_m(*backend_with_env("PIXTRAL_CUDA_GEMV", "0"), "cublasLt", {1, 4, 8});
    // The GEMV's launch choices, one at a time from the default, to tune the defaults: warps per
    // output column (K split), resident blocks per SM, x read through L1 instead of staged in
    // shared memory, no programmatic dependent launch.
    for (const char* wpc : {"1", "2", "4", "8"}) {
      const std::string path = std::string("gemv-wpc") + wpc;
      bench_small_m(*backend_with_env("PIXTRAL_CUDA_GEMV_WPC", wpc), path.c_str(), {1});
    }
    for (const char* blocks : {"1", "2", "4"}) {
      const std::string path = std::string("gemv-blk") + blocks;
      bench_small_m(*backend_with_env("PIXTRAL_CUDA_GEMV_BLOCKS", blocks), path.c_str(), {1});
    }
    bench_small_m(*backend_with_env("PIXTRAL_CUDA_GEMV_STAGE", "0"), "gemv-l1x", {1});
    bench_small_m(*backend_with_env("PIXTRAL_CUDA_PDL", "0"), "gemv-nopdl", {1});
    bench_gemv_variants();
  }
  auto backend = std::move(pixtral::backend::make_cuda_backend(0)).value();
  if (!decode_only && !decode_graph && !mixed_only && !prefill_only && profile.empty()) {
    bench_attention_kernels();
    bench_decode_attention(*backend_with_env("PIXTRAL_CUDA_DECODE_ATTN", "new"), "new");
    bench_decode_attention(*backend_with_env("PIXTRAL_CUDA_DECODE_ATTN", "old"), "old");
  }
  auto config = pixtral::io::parse_model_config(pixtral::io::pixtral_12b_params_json(), "params.json");
  if (!config.is_ok()) {
    std::fprintf(stderr, "%s\n", config.status().to_string().c_str());
    return 1;
  }
  auto model = PixtralModel::random(*config, *backend, 1);
  // Blocks for one 32k-token sequence, or for 64 sequences of 640 tokens on distinct blocks.
  const int64_t block_size = 16, max_context = 32768;
  auto cache = model->make_kv_cache(std::max(max_context / block_size + 1, 64 * 640 / block_size) + kChunkBlocks,
                                    block_size);
  for (size_t l = 0; l < cache.k.size(); ++l) {  // random K/V, never zeros
    backend->fill_random(cache.k[l], 100 + l, 0.0f, 1.0f);
    backend->fill_random(cache.v[l], 200 + l, 0.0f, 1.0f);
  }
  backend->synchronize();
  if (!profile.empty()) return profile_phase(profile, *model, cache);
  if (mixed_only) {
    const double step32 = bench_decode_batch(*model, cache, 32, 640);
    for (int64_t chunk : {128, 256, 512}) bench_mixed_step(*model, cache, 31, chunk, 640, step32);
    bench_image_load_steps(*model, cache);
    return 0;
  }
  if (prefill_only) {
    bench_prefill(*model, cache, 4160);
    bench_vision(*model);
    bench_ttft(*model, cache);
    return 0;
  }
  if (decode_graph) {
    bench_decode_graph(*model, cache, 512);
    bench_decode_graph(*model, cache, 32768);
    return 0;
  }
  bench_decode(*model, cache, 512);
  bench_decode(*model, cache, 4096);
  bench_decode(*model, cache, 32768);
  bench_decode_graph(*model, cache, 512);
  bench_decode_graph(*model, cache, 4096);
  bench_decode_graph(*model, cache, 32768);
  bench_decode_batch(*model, cache, 16, 640);
  const double step32 = bench_decode_batch(*model, cache, 32, 640);
  for (int64_t chunk : {128, 256, 512}) bench_mixed_step(*model, cache, 31, chunk, 640, step32);
  bench_image_load_steps(*model, cache);
  bench_decode_batch(*model, cache, 64, 640);
  if (decode_only) return 0;
  bench_prefill(*model, cache, 4160);
  bench_vision(*model);
  bench_ttft(*model, cache);
  bench_sample(*backend);
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  std::printf("device memory in use at the end (pool keeps its peak): %.2f GiB of %.2f GiB\n",
              static_cast<double>(total_bytes - free_bytes) / (1u << 30), static_cast<double>(total_bytes) / (1u << 30));
  return 0;
}
