// Engine::Impl: the state behind include/pixtral/engine.h. Requests are prepared (encoded,
// validated) on the submitting thread, handed to the loop thread through a mutex-guarded queue,
// and from then on owned by the loop thread, which alone touches the scheduler, the model, the KV
// cache and the image cache. Metrics are published under the mutex after every step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/image_cache.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/stop_checker.h"
#include "model/pixtral_model.h"
#include "pixtral/engine.h"
#include "prompt/chat_encoder.h"
#include "tokenizer/tokenizer.h"

namespace pixtral {

using Clock = std::chrono::steady_clock;

// A request after submit(): token ids, pixels and their content hashes, validated sampling.
struct PreparedRequest {
  RequestId id = 0;
  std::vector<int32_t> prompt;
  std::vector<PixelImage> images;
  std::vector<kv_cache::ImageSpan> spans;  // per image: hash and token range
  std::vector<int64_t> image_rows;         // per image: its [IMG] tokens (feature rows)
  engine::SamplingParams sampling;
  int64_t max_tokens = 0;
  EventCallback on_event;
  Clock::time_point submitted;
};

// The scheduler sequence of choice `index` of request `id`, and back (index < n <= kMaxN).
inline engine::SeqId seq_of(RequestId id, int64_t index) { return engine::SeqId{id * engine::kMaxN + index}; }
inline RequestId request_of(engine::SeqId seq) { return seq.value / engine::kMaxN; }
inline int64_t choice_of(engine::SeqId seq) { return seq.value % engine::kMaxN; }

// One completion of a request (OpenAI's choice `index`) and its generation state. Choice 0's
// sequence computes the prompt; the others are forked off it when the prompt is done.
struct Choice {
  int64_t index = 0;
  std::optional<engine::Sampler> sampler;  // child_params(request's sampling, index)
  std::optional<engine::StopChecker> stop;
  std::optional<tokenizer::StreamingDetokenizer> detok;
  int64_t generated = 0;
  std::optional<Clock::time_point> last_token;
  bool done = false;  // its last event went out
};

// A request the loop thread owns: the prepared request, its choices and what they share.
struct ActiveRequest {
  PreparedRequest req;
  std::vector<Choice> choices;  // req.sampling.n of them
  std::vector<std::shared_ptr<const engine::ImageFeatures>> features;  // per image, once encoded
  backend::TensorBuffer assembled;  // all images' rows when it has several
  int64_t cached_prompt_tokens = 0;
  int64_t num_done = 0;    // choices finished
  bool scheduled = false;  // cached_prompt_tokens recorded
  bool done = false;       // every choice finished (the last event went out); erased after the step
};

// One draw of a step: a choice's next token from row `row` of the logits. The first token of
// every choice of an n > 1 request comes from the row of the prompt's last chunk.
struct SampleJob {
  int64_t row = 0;
  ActiveRequest* request = nullptr;
  Choice* choice = nullptr;
};

// Adds one latency sample (milliseconds) to a histogram.
void record_latency(Histogram& h, double ms);
inline double ms_since(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

class Engine::Impl {
 public:
  static Result<std::unique_ptr<Impl>> create(const EngineOptions& options);
  ~Impl();

  Result<RequestId> submit(Request request, EventCallback on_event);
  Status cancel(RequestId id);
  MetricsSnapshot metrics() const;
  void wait_idle() const;
  int32_t eos_id() const { return eos_id_; }
  int64_t vocab_size() const { return model_->config().text.vocab_size; }

 private:
  Impl() = default;
  Status init(const EngineOptions& options);
  Status init_pool();
  void reset_histograms();
  Result<int64_t> budget_from_utilization() const;

  // engine_request.cpp (calling thread)
  Status prepare(Request& request, PreparedRequest& out) const;
  Status encode_chat(Request& request, PreparedRequest& out) const;
  Status hash_images(PreparedRequest& out) const;

  // engine_step.cpp (loop thread)
  void loop();
  bool take_inputs();  // admits queued requests, applies cancels; false when stopping
  void admit(std::unique_ptr<PreparedRequest> req);
  void apply_cancels();
  void run_step();
  // engine_images.cpp: requests with images wait in encoding_ until their features exist (the
  // only place images are encoded).
  void enqueue(ActiveRequest& a);  // into the scheduler (an error ends the request)
  Status start_image_job(ActiveRequest& a);
  Status finish_image_job(ActiveRequest& a);
  // Encoder layers for the waiting requests, first come first served: at most
  // options_.vision_layers_per_step while sequences run, else all; finished ones enter the scheduler.
  void advance_encoding();  // what it did: encoding_work_
  void record_slow_step(const engine::SchedulerOutput& out, Clock::time_point start, Clock::time_point end);
  Status check_image_features(const engine::SchedulerOutput& out);
  backend::Tensor features_of(engine::SeqId seq);
  // The step's logits [R, V] on the backend, one row per scheduled chunk (owned by `keep` or the
  // decode runner until the next step).
  Result<backend::Tensor> forward(const engine::SchedulerOutput& out, backend::TensorBuffer& keep);
  // Samples the rows whose chunk completes a prompt or decodes (engine_sample.cpp), then emits.
  void sample_step(const engine::SchedulerOutput& out, const backend::Tensor& logits);
  Result<std::vector<engine::SampleResult>> sample_jobs(const backend::Tensor& logits,
                                                        const std::vector<SampleJob>& jobs);
  Status sample_on_device(const backend::Tensor& logits, const std::vector<SampleJob>& jobs,
                          std::vector<engine::SampleResult>& results);
  void emit_token(const SampleJob& job, const engine::SampleResult& result, bool scheduler_ended,
                  Clock::time_point now);
  // The request that owns a scheduler sequence; nullptr when it is unknown or done.
  ActiveRequest* live_request(engine::SeqId seq);
  // Sends the last event of one choice (and, after the last choice, the request's usage).
  void finish(ActiveRequest& a, Choice& c, Event& event, FinishReason reason, bool remove_from_scheduler);
  // Ends every choice still running (cancel, error, shutdown).
  void finish_request(ActiveRequest& a, FinishReason reason, const Status& error, bool remove_from_scheduler);
  void fail_step(const engine::SchedulerOutput& out, const Status& status);
  void publish_metrics();
  void emit(ActiveRequest& a, const Event& event);

  EngineOptions options_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<model::PixtralModel> model_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<prompt::ChatEncoder> encoder_;
  int32_t eos_id_ = 2;
  int64_t max_len_ = 0;
  int64_t num_kv_blocks_ = 0;

  // Loop thread only.
  model::KvCache cache_;
  std::unique_ptr<model::DecodeRunner> runner_;
  std::unique_ptr<engine::Scheduler> scheduler_;
  std::unique_ptr<engine::ImageCache> image_cache_;
  engine::SamplerWorkspace workspace_;
  bool device_sampling_ = false;  // options_.sampling resolved against the backend
  std::unordered_map<RequestId, std::unique_ptr<ActiveRequest>> active_;
  // The vision encoder's job for the first request of encoding_ (images grouped by content: one
  // encoded row range per group).
  struct ImageJob {
    RequestId request = 0;
    std::vector<std::vector<size_t>> images;  // per encoded image: the request's image indices
    model::VisionJob encoding;
  };
  std::deque<RequestId> encoding_;  // requests waiting for image features, in arrival order
  // What the last advance_encoding() did (the slow-step record of the metrics).
  struct EncodingWork {
    int64_t layers = 0, started = 0, finished = 0;
    bool any() const { return layers > 0 || started > 0 || finished > 0; }
  } encoding_work_;
  std::vector<MetricsSnapshot::SlowStep> slowest_decode_steps_;
  std::optional<ImageJob> image_job_;
  int64_t image_encoder_runs_ = 0, image_cache_hits_ = 0, steps_ = 0, finished_ = 0, generated_ = 0;
  Histogram ttft_, itl_, decode_step_, mixed_step_, decode_host_schedule_, decode_host_launch_, decode_host_after_;
  Histogram decode_step_full_;
  Clock::time_point scheduled_at_, launched_at_, encoded_at_, sampled_at_;  // of the current step
  Status audit_;

  // Shared, under mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  mutable std::condition_variable idle_;
  std::deque<std::unique_ptr<PreparedRequest>> incoming_;
  std::vector<RequestId> cancels_;
  std::unordered_set<RequestId> live_;  // submitted and not finished
  RequestId next_id_ = 1;
  bool stopping_ = false;
  MetricsSnapshot snapshot_;
  std::thread thread_;
};

}  // namespace pixtral
