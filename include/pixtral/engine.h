// The serving engine's public API: submit requests, receive their tokens as a stream of events,
// cancel them, read metrics. Continuous batching over a paged KV cache with prefix caching and an
// image-embedding cache (docs/decisions/0004-kv-cache-and-scheduler.md).
//
// Thread-safety: every method may be called from any thread. The engine runs its loop on its own
// thread; event callbacks are called on that thread, one at a time, and must not block for long.
// A callback may call submit() and cancel(). The destructor cancels what is still running (each
// gets its final event) and joins the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pixtral/request.h"
#include "pixtral/status.h"

namespace pixtral {

struct EngineOptions {
  std::string model_dir;            // a checkpoint directory (the caller resolves "demo")
  // Instead of model_dir: random weights of a config, initialised on the backend (benchmarks of
  // the real shape without files): "pixtral-12b", or a path to a params.json / config.json. Such an
  // engine has no tokenizer: requests give prompt_ids.
  std::string random_weights_config;
  std::string backend = "auto";     // "cpu", "cuda" or "auto" (cuda when built and present)
  int64_t max_num_seqs = 64;        // running sequences at most
  int64_t max_num_batched_tokens = 2048;  // tokens computed per step
  int64_t block_size = 16;
  // The KV pool: num_kv_blocks if > 0, else kv_cache_bytes if > 0, else a share of device memory
  // (gpu_memory_utilization, needs a backend that reports it), else 1 GiB.
  int64_t num_kv_blocks = 0;
  int64_t kv_cache_bytes = 0;
  double gpu_memory_utilization = 0.0;
  bool enable_prefix_caching = true;
  int64_t max_model_len = 0;        // 0: the model's context length
  int64_t image_cache_entries = 64;  // encoded images kept by content hash
  // A request's images are encoded before it enters the scheduler, at most this many vision
  // encoder layers per step while other sequences run (so their inter-token latency does not take
  // a whole encoder at once); all layers at once when nothing runs, or when 0.
  int64_t vision_layers_per_step = 3;
  bool audit_blocks = false;        // check the block manager's invariants after every step (tests)
  // Where tokens are sampled: "device" (the backend's sample op; only the ids come back to the
  // host), "host" (all logits downloaded, engine::Sampler per request), or "auto": device on GPU
  // backends. Both give the same tokens for the same request and seed. Requests that ask for
  // logprobs are sampled on the host either way (only their rows are downloaded).
  std::string sampling = "auto";
};

using RequestId = int64_t;

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "abort", "error"

struct TokenLogprobInfo {
  int32_t token = 0;
  float logprob = 0.0f;
  int64_t rank = 0;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), most likely first
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // taken from the prefix cache at (last) admission
};

// What one choice of a request produced since its previous event. A request with
// SamplingOptions::n = k has k choices (index 0..k-1), each with its own stream of events; the
// last event of a choice has `finish` set (and `error` when it failed), and every choice of a
// submitted request gets exactly one. The last event of the whole request (all its choices
// finished) also has `request_finished` and the request's `usage`. With n = 1 the choice's last
// event is the request's: finished() == request_finished.
struct Event {
  RequestId id = 0;
  int64_t index = 0;                       // the choice, 0..n-1
  std::string text;                        // new text (stop strings and held-back text excluded)
  std::vector<int32_t> token_ids;          // new tokens (a terminating EOS / stop id included)
  std::vector<TokenLogprobInfo> logprobs;  // one per token when sampling.logprobs
  std::optional<FinishReason> finish;      // on the choice's last event
  std::optional<std::string> stop_string;  // the stop string that ended it
  // On the request's last event: prompt tokens counted once, completion tokens over all choices
  // (OpenAI's usage for n > 1).
  Usage usage;
  Status error;                            // non-ok with finish == kError
  bool request_finished = false;           // the request's last event (every choice finished)
  bool finished() const { return finish.has_value(); }
};

using EventCallback = std::function<void(const Event&)>;

// Latency histogram: counts[i] counts samples <= bounds_ms[i]; the last count is the overflow.
struct Histogram {
  std::vector<double> bounds_ms;
  std::vector<int64_t> counts;
  int64_t total = 0;
  double sum_ms = 0.0;
  double max_ms = 0.0;
  double mean_ms() const { return total ? sum_ms / static_cast<double>(total) : 0.0; }
};

struct MetricsSnapshot {
  int64_t num_running = 0, num_waiting = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_cached = 0;
  double kv_usage = 0.0;  // used / total
  int64_t prefix_query_blocks = 0, prefix_hit_blocks = 0;
  double prefix_cache_hit_rate = 0.0;
  int64_t image_encoder_runs = 0;  // images run through the vision encoder
  int64_t image_cache_hits = 0;    // images taken from the image-embedding cache
  int64_t num_preemptions = 0;
  int64_t num_steps = 0, requests_finished = 0, generated_tokens = 0;
  Status block_audit;  // the block manager's invariants, checked when the loop goes idle
  Histogram ttft, itl;
  // Wall time of the loop's steps (schedule, images, model, sampling, events): steps that only
  // decode (one token per sequence) and steps with prefill chunks or images. Of a decode-only
  // step, the host time before the model's work is enqueued (the schedule, then the model call:
  // batch, uploads, graph launch) and after the sampled ids are back (scheduler update,
  // detokenizer, stop checks, events): the device idles during both.
  Histogram decode_step, mixed_step, decode_host_schedule, decode_host_launch, decode_host_after;
  // Decode-only steps that run at least 90 % of max_num_seqs sequences: the normal step of a full
  // batch, the reference of the inter-token-latency bound while prompts prefill.
  Histogram decode_step_full;
  // The slowest steps that carried decodes (what running streams waited for), slowest first, at
  // most 5: their wall time and what they held.
  struct SlowStep {
    double wall_ms = 0.0;
    int64_t decodes = 0, prefill_tokens = 0, prefill_seqs = 0;
    int64_t encoder_layers = 0, images_started = 0, images_finished = 0;  // the step's image encoding
    // Where the wall time went (host clock): scheduling; batch, uploads and launches; the image
    // encoding's host part (queued behind the forward); waiting for the sampled ids; the rest.
    double schedule_ms = 0.0, launch_ms = 0.0, encode_ms = 0.0, wait_ms = 0.0, after_ms = 0.0;
  };
  std::vector<SlowStep> slowest_decode_steps;
};

class Engine {
 public:
  // Loads the model and tokenizer (tekken.json or tokenizer.json, optional for token-id requests),
  // sizes the KV pool and starts the loop thread.
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and encodes the request on the calling thread (errors come back here, no event),
  // then queues it; `on_event` receives its stream (all its choices) on the loop thread.
  Result<RequestId> submit(Request request, EventCallback on_event);
  // Cancels a request at any stage, all its choices: the last event of each choice still running
  // has finish == kCancelled. kNotFound when it is unknown or already finished.
  Status cancel(RequestId id);
  MetricsSnapshot metrics() const;
  // Blocks until no request is queued or running.
  void wait_idle() const;

  // The model's tokenizer facts (eos, vocabulary) for callers that build token-id requests.
  int32_t eos_id() const;
  int64_t vocab_size() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pixtral
