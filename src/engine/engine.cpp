// Engine: construction (backend, model, tokenizer, KV pool, scheduler), the thread-safe entry
// points, and metrics. The loop itself is in engine_step.cpp, request preparation in
// engine_request.cpp.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine_impl.h"
#include "io/model_config.h"
#if PIXTRAL_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace pixtral {

namespace {

Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name) {
  if (name == "cpu") return backend::make_cpu_backend();
#if PIXTRAL_HAVE_CUDA
  if (name == "cuda") return backend::make_cuda_backend(0);
  if (name == "auto" || name.empty())
    return backend::cuda_device_count() > 0 ? backend::make_cuda_backend(0) : backend::make_cpu_backend();
#else
  if (name == "cuda") return unimplemented("backend cuda: this build has no CUDA backend");
  if (name == "auto" || name.empty()) return backend::make_cpu_backend();
#endif
  return invalid_argument("unknown backend '" + name + "' (expected cpu, cuda or auto)");
}

Histogram make_histogram() {
  Histogram h;
  h.bounds_ms = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
  h.counts.assign(h.bounds_ms.size() + 1, 0);
  return h;
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
    case FinishReason::kError: return "error";
  }
  return "";
}

void record_latency(Histogram& h, double ms) {
  const auto it = std::lower_bound(h.bounds_ms.begin(), h.bounds_ms.end(), ms);
  ++h.counts[static_cast<size_t>(it - h.bounds_ms.begin())];
  ++h.total;
  h.sum_ms += ms;
  h.max_ms = std::max(h.max_ms, ms);
}

namespace {

// "pixtral-12b" or a params.json / config.json path -> random weights of that shape on `backend`.
Result<std::unique_ptr<model::PixtralModel>> random_model(const std::string& which, backend::Backend& backend) {
  io::ModelConfig config;
  if (which == "pixtral-12b") {
    PX_ASSIGN_OR_RETURN(config, io::parse_model_config(io::pixtral_12b_params_json(), "params.json"));
  } else {
    std::ifstream in(which);
    if (!in) return not_found("random_weights_config: cannot read '" + which + "'");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = std::filesystem::path(which).filename().string();
    PX_ASSIGN_OR_RETURN(config, io::parse_model_config(text, name == "config.json" ? "config.json" : "params.json"));
  }
  return model::PixtralModel::random(config, backend, /*seed=*/1);
}

}  // namespace

Result<std::unique_ptr<Engine::Impl>> Engine::Impl::create(const EngineOptions& options) {
  std::unique_ptr<Impl> impl(new Impl());
  PX_RETURN_IF_ERROR(impl->init(options));
  impl->thread_ = std::thread([p = impl.get()] { p->loop(); });
  return impl;
}

void Engine::Impl::reset_histograms() {
  for (Histogram* h : {&ttft_, &itl_, &decode_step_, &mixed_step_, &decode_host_schedule_, &decode_host_launch_,
                       &decode_host_after_, &decode_step_full_})
    *h = make_histogram();
  slowest_decode_steps_.clear();
}

Status Engine::Impl::init(const EngineOptions& options) {
  options_ = options;
  if (options.max_num_seqs <= 0 || options.max_num_batched_tokens <= 0 || options.block_size <= 0)
    return invalid_argument("max_num_seqs, max_num_batched_tokens and block_size must be positive");
  PX_ASSIGN_OR_RETURN(backend_, make_backend(options.backend));
  if (options.sampling != "auto" && options.sampling != "device" && options.sampling != "host")
    return invalid_argument("sampling must be \"auto\", \"device\" or \"host\", got \"" + options.sampling + "\"");
  device_sampling_ = options.sampling == "device" || (options.sampling == "auto" && backend_->name() != "cpu");
  if (!options.random_weights_config.empty()) {
    PX_ASSIGN_OR_RETURN(model_, random_model(options.random_weights_config, *backend_));
    PX_RETURN_IF_ERROR(init_pool());
    image_cache_ = std::make_unique<engine::ImageCache>(options.image_cache_entries);
    reset_histograms();
    publish_metrics();
    return Status::ok();
  }
  PX_ASSIGN_OR_RETURN(model_, model::PixtralModel::load(options.model_dir, *backend_));
  const std::string dir = options.model_dir;
  std::string tok_path = dir + "/tekken.json";
  if (!std::filesystem::exists(tok_path)) tok_path = dir + "/tokenizer.json";
  if (std::filesystem::exists(tok_path)) {
    PX_ASSIGN_OR_RETURN(tokenizer_, tokenizer::Tokenizer::load(tok_path));
    if (tokenizer_->vocab_size() != model_->config().text.vocab_size)
      return invalid_argument(tok_path + ": vocabulary of " + std::to_string(tokenizer_->vocab_size()) +
                              " tokens, but the model has " + std::to_string(model_->config().text.vocab_size));
    eos_id_ = tokenizer_->eos_id();
    auto encoder = prompt::ChatEncoder::create(*tokenizer_);
    if (encoder.is_ok()) encoder_ = std::make_unique<prompt::ChatEncoder>(std::move(encoder).value());
    if (encoder_ && model_->config().has_vision &&
        encoder_->geometry().patch_size != model_->config().vision.patch_size)
      return invalid_argument(tok_path + ": image patch size differs from the model's");
  }
  PX_RETURN_IF_ERROR(init_pool());
  image_cache_ = std::make_unique<engine::ImageCache>(options.image_cache_entries);
  reset_histograms();
  publish_metrics();
  return Status::ok();
}

Status Engine::Impl::init_pool() {
  const auto& text = model_->config().text;
  int64_t num_blocks = options_.num_kv_blocks;
  if (num_blocks <= 0) {
    int64_t budget = options_.kv_cache_bytes > 0 ? options_.kv_cache_bytes : (int64_t{1} << 30);
    if (options_.kv_cache_bytes <= 0 && options_.gpu_memory_utilization > 0) {
      PX_ASSIGN_OR_RETURN(budget, budget_from_utilization());
    }
    const int64_t per_token = model::KvCache::bytes_per_token(text, backend_->activation_dtype());
    PX_ASSIGN_OR_RETURN(num_blocks, kv_cache::num_blocks_for_budget(
                                        {.budget_bytes = budget, .bytes_per_token = per_token,
                                         .block_size = options_.block_size}));
  }
  engine::SchedulerParams params{
      .num_blocks = num_blocks, .block_size = options_.block_size,
      .max_num_batched_tokens = options_.max_num_batched_tokens, .max_num_seqs = options_.max_num_seqs,
      .max_model_len = options_.max_model_len > 0 ? options_.max_model_len : text.max_position_embeddings,
      .image_token_id = static_cast<int32_t>(model_->config().vision.image_token_id),
      .enable_prefix_caching = options_.enable_prefix_caching};
  scheduler_ = std::make_unique<engine::Scheduler>(params);
  num_kv_blocks_ = num_blocks;
  max_len_ = scheduler_->max_len();
  cache_ = model_->make_kv_cache(num_blocks, options_.block_size);
  runner_ = model_->make_decode_runner(cache_, options_.max_num_seqs,
                                       (max_len_ + options_.block_size - 1) / options_.block_size);
  // GEMM plans and kernels for every step size and image size the scheduler can produce, so that
  // no running stream waits on a first meeting (measured on the H100: a mixed step of a new row
  // count took 52.7 ms the first time, 16.7 after).
  const auto& vision = model_->config().vision;
  const int64_t side = std::max(vision.image_size, vision.max_image_size);
  const int64_t patches = vision.patch_size > 0 ? (side / vision.patch_size) * (side / vision.patch_size) : 0;
  model_->prepare_matmuls(options_.max_num_batched_tokens, options_.max_num_seqs, patches);
  // Decode graphs for every padded batch size, contexts up to 512 blocks (8k tokens at 16 per
  // block: a 1024² image prompt is 260 blocks), before any request (the dummy steps write into
  // block 0); longer contexts are recorded when first met.
  runner_->capture_graphs(512);
  return Status::ok();
}

// The KV pool's share of gpu_memory_utilization × device memory (vLLM's meaning): what is left
// after the memory in use now (weights) and a reserve for one step's activations — the
// max_num_batched_tokens rows of the block's scratch tensors, max_num_seqs rows of logits (and
// their f32 sampling copy), plus 1 GiB for the vision encoder, cuBLAS and the allocator.
Result<int64_t> Engine::Impl::budget_from_utilization() const {
  const double util = options_.gpu_memory_utilization;
  if (!(util > 0 && util <= 1))
    return invalid_argument("gpu_memory_utilization must be in (0, 1], got " + std::to_string(util));
  const auto info = backend_->memory_info();
  if (!info) return invalid_argument("gpu_memory_utilization: the " + backend_->name() +
                                     " backend has no device memory to share; give num_kv_blocks or kv_cache_bytes");
  const auto [free_bytes, total_bytes] = *info;
  const auto& t = model_->config().text;
  const int64_t elem = static_cast<int64_t>(base::dtype_size(backend_->activation_dtype()));
  const int64_t per_token = elem * (2 * t.hidden_dim + 2 * t.num_heads * t.head_dim + 2 * t.num_kv_heads * t.head_dim +
                                    3 * t.ffn_dim);
  const int64_t reserve = options_.max_num_batched_tokens * per_token +
                          options_.max_num_seqs * t.vocab_size * (elem + 4) + (int64_t{1} << 30);
  const int64_t used = total_bytes - free_bytes;
  const auto budget = static_cast<int64_t>(util * static_cast<double>(total_bytes)) - used - reserve;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (budget <= 0) {
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "gpu_memory_utilization %.2f of %.1f GiB leaves no room for the KV cache: %.1f GiB in use "
                  "(weights), %.1f GiB reserved for activations",
                  util, static_cast<double>(total_bytes) / kGiB, static_cast<double>(used) / kGiB,
                  static_cast<double>(reserve) / kGiB);
    return out_of_range(msg);
  }
  return budget;
}

Engine::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<RequestId> Engine::Impl::submit(Request request, EventCallback on_event) {
  auto prepared = std::make_unique<PreparedRequest>();
  PX_RETURN_IF_ERROR(prepare(request, *prepared));
  prepared->on_event = std::move(on_event);
  prepared->submitted = Clock::now();
  RequestId id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status(StatusCode::kCancelled, "the engine is shutting down");
    id = next_id_++;
    prepared->id = id;
    live_.insert(id);
    incoming_.push_back(std::move(prepared));
  }
  wake_.notify_all();
  return id;
}

Status Engine::Impl::cancel(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (live_.count(id) == 0) return not_found("request " + std::to_string(id) + " is unknown or finished");
    cancels_.push_back(id);
  }
  wake_.notify_all();
  return Status::ok();
}

MetricsSnapshot Engine::Impl::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void Engine::Impl::wait_idle() const {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return live_.empty(); });
}

// Called by the loop thread after each step: erases finished requests, refreshes the snapshot.
void Engine::Impl::publish_metrics() {
  std::vector<RequestId> done;
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->second->done) {
      done.push_back(it->first);
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  if (options_.audit_blocks || (active_.empty() && !done.empty())) audit_ = scheduler_->block_manager().audit();
  const kv_cache::BlockStats stats = scheduler_->block_manager().stats();
  MetricsSnapshot m;
  m.num_running = scheduler_->num_running();
  m.num_waiting = scheduler_->num_waiting();
  m.kv_blocks_total = stats.num_blocks;
  m.kv_blocks_used = stats.num_used;
  m.kv_blocks_cached = stats.num_cached;
  m.kv_usage = stats.num_blocks ? static_cast<double>(stats.num_used) / static_cast<double>(stats.num_blocks) : 0;
  m.prefix_query_blocks = stats.prefix_query_blocks;
  m.prefix_hit_blocks = stats.prefix_hit_blocks;
  m.prefix_cache_hit_rate = stats.prefix_query_blocks
                                ? static_cast<double>(stats.prefix_hit_blocks) /
                                      static_cast<double>(stats.prefix_query_blocks)
                                : 0.0;
  m.image_encoder_runs = image_encoder_runs_;
  m.image_cache_hits = image_cache_hits_;
  m.num_preemptions = scheduler_->num_preemptions();
  m.num_steps = steps_;
  m.requests_finished = finished_;
  m.generated_tokens = generated_;
  m.block_audit = audit_;
  m.ttft = ttft_;
  m.itl = itl_;
  m.decode_step = decode_step_;
  m.mixed_step = mixed_step_;
  m.decode_step_full = decode_step_full_;
  m.slowest_decode_steps = slowest_decode_steps_;
  m.decode_host_schedule = decode_host_schedule_;
  m.decode_host_launch = decode_host_launch_;
  m.decode_host_after = decode_host_after_;
  bool idle = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m.num_waiting += static_cast<int64_t>(incoming_.size());
    snapshot_ = std::move(m);
    for (RequestId id : done) live_.erase(id);
    idle = live_.empty();
  }
  if (idle) idle_.notify_all();
}

// ---- Engine ----

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  PX_ASSIGN_OR_RETURN(std::unique_ptr<Impl> impl, Impl::create(options));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Result<RequestId> Engine::submit(Request request, EventCallback on_event) {
  return impl_->submit(std::move(request), std::move(on_event));
}
Status Engine::cancel(RequestId id) { return impl_->cancel(id); }
MetricsSnapshot Engine::metrics() const { return impl_->metrics(); }
void Engine::wait_idle() const { impl_->wait_idle(); }
int32_t Engine::eos_id() const { return impl_->eos_id(); }
int64_t Engine::vocab_size() const { return impl_->vocab_size(); }

}  // namespace pixtral
