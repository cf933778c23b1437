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
#include "bench_common.h"
#include "jpeg_fixture.h"
#include "op_bench.h"

namespace {

using pixtral::backend::Backend;
using pixtral::bench::backend_with_env;
using pixtral::bench::kBandwidth;
using pixtral::bench::kBf16Flops;
using pixtral::bench::median_seconds;
using pixtral::model::PixtralModel;
using namespace pixtral::bench::ops;

constexpr double kWeightBytes = 23.15e9;  // decoder weights read per decode step
constexpr double kKvBytesPerToken = 160.0 * 1024;


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

// first: also time the first call alone (host and device, synchronized): what meeting a new
// token count still costs after the engine's start-up preparation (prepare_matmuls).
void bench_mixed_step(const PixtralModel& m, pixtral::model::KvCache& cache, int64_t decodes, int64_t chunk,
                      int64_t context, double decode_step, bool first = false) {
  const auto batch = mixed_batch(cache, decodes, chunk, context);
  double first_ms = 0.0;
  if (first) {
    m.backend().synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    (void)m.forward(batch, cache);
    m.backend().synchronize();
    first_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  const double s = median_seconds(m.backend(), 2, 10, [&] { (void)m.forward(batch, cache); });
  std::printf("mixed step: %lld decodes (%lld context) + a %lld-token chunk after 2048: %7.2f ms = %.2fx the "
              "%lld-sequence decode step",
              static_cast<long long>(decodes), static_cast<long long>(context), static_cast<long long>(chunk),
              s * 1e3, s / decode_step, static_cast<long long>(decodes + 1));
  if (first) std::printf("; first call %.2f ms", first_ms);
  std::printf("\n");
}

// The steps of the image load (issue 5: 32 requests in flight, each a 1024² image + 100 tokens,
// so about 4,400 tokens of context while they decode): a decode-only step of 32 sequences, and
// mixed steps of 31 decodes plus the chunk that fills a token budget of 256, 384 or 512 (the
// scheduler counts the decodes in the budget). The ratio is the bound on the running streams'
// inter-token latency while images prefill (≤ 2x).
void bench_image_load_steps(const PixtralModel& m, pixtral::model::KvCache& cache) {
  const int64_t context = 4400, decodes = 31;
  // As the engine does at start: the image load's settings (budget 512, 32 sequences, 1024²
  // images), then the text load's (budget 4,096, 64 sequences): what it adds to start-up.
  for (const auto& [budget, seqs] : {std::pair<int64_t, int64_t>{512, 32}, std::pair<int64_t, int64_t>{4096, 64}}) {
    m.backend().synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    m.prepare_matmuls(budget, seqs, 4096);
    m.backend().synchronize();
    std::printf("prepare_matmuls(budget %lld, %lld sequences, 4,096 patches): %.0f ms\n", static_cast<long long>(budget),
                static_cast<long long>(seqs),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double step = bench_decode_batch(m, cache, decodes + 1, context);
  for (int64_t budget : {256, 384, 512}) bench_mixed_step(m, cache, decodes, budget - decodes, context, step, true);
  // The last chunk of an image prompt (4,163 tokens in chunks of 362: 67 left), beside 21 and 31
  // decodes: the slowest decode-carrying step of the image load.
  for (int64_t d : {21, 31}) bench_mixed_step(m, cache, d, 67, context, step, true);
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
  if (flag == "--attention") {  // the many-rows attention kernels only (mma32, flash2, wgmma)
    bench_attention_kernels();
    return 0;
  }
  if (flag == "--skinny") {  // batched-decode GEMMs: cuBLASLt and the skinny GEMM (each geometry, K splits)
    auto lt = backend_with_env("PIXTRAL_CUDA_SKINNY", "0");
    bench_small_m(*lt, "cublasLt", {16, 32, 64});
    bench_norm_swiglu(*lt, "cublasLt", {16, 64});
    for (const char* geometry : {"0", "1", "2"}) {  // cuda_skinny.cu's Geometries
      for (const char* splits : {"0", "2", "4"}) {  // "0": the plan
        const std::string path = std::string("skinny-g") + geometry + "s" + splits;
        setenv("PIXTRAL_CUDA_SKINNY_GEOMETRY", geometry, 1);
        auto b = backend_with_env("PIXTRAL_CUDA_SKINNY_SPLITS", splits);
        unsetenv("PIXTRAL_CUDA_SKINNY_GEOMETRY");
        bench_small_m(*b, path.c_str(), std::strcmp(splits, "0") == 0 ? std::initializer_list<int64_t>{16, 64}
                                                                      : std::initializer_list<int64_t>{64});
        if (std::strcmp(splits, "0") == 0) bench_norm_swiglu(*b, path.c_str(), {16, 64});
      }
    }
    return 0;
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
    bench_small_m(*gemv, "skinny", {16});
    bench_small_m(*backend_with_env("PIXTRAL_CUDA_SKINNY", "0"), "cublasLt", {16, 64});
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
