// The engine loop (its own thread): take submissions and cancels, advance the image encodings of
// waiting requests (engine_images.cpp), schedule a step, copy the blocks it writes that others
// share, run the model, sample each choice, emit events, update the scheduler. One request's failure ends that
// request only (all its choices).
#include <algorithm>

#include "base/check.h"
#include "engine/engine_impl.h"
#include "engine/scheduler_batch.h"

namespace pixtral {

void Engine::Impl::loop() {
  while (take_inputs()) {
    if (!active_.empty()) run_step();
    publish_metrics();
  }
  for (auto& [id, a] : active_)  // shutdown: every request still here is cancelled
    if (!a->done) finish_request(*a, FinishReason::kCancelled, Status::ok(), true);
  publish_metrics();
}

bool Engine::Impl::take_inputs() {
  std::deque<std::unique_ptr<PreparedRequest>> incoming;
  std::vector<RequestId> cancels;
  bool stopping = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait(lock, [&] { return stopping_ || !incoming_.empty() || !cancels_.empty() || !active_.empty(); });
    incoming.swap(incoming_);
    cancels.swap(cancels_);
    stopping = stopping_;
  }
  for (auto& req : incoming) admit(std::move(req));
  for (RequestId id : cancels) {
    auto it = active_.find(id);
    if (it == active_.end() || it->second->done) continue;
    finish_request(*it->second, FinishReason::kCancelled, Status::ok(), true);
  }
  return !stopping;
}

// Choice i samples with child_params(sampling, i); choice 0's sequence computes the prompt and
// the scheduler forks the others off it (seq_of(id, i)) when the prompt is done.
void Engine::Impl::admit(std::unique_ptr<PreparedRequest> req) {
  auto a = std::make_unique<ActiveRequest>();
  a->req = std::move(*req);
  const RequestId id = a->req.id;
  const int64_t n = a->req.sampling.n;
  a->choices.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Choice& c = a->choices[static_cast<size_t>(i)];
    const engine::SamplingParams params = engine::child_params(a->req.sampling, i);
    c.index = i;
    c.sampler.emplace(params, engine::SamplerContext{.prompt = a->req.prompt, .eos_id = eos_id_});
    c.stop.emplace(engine::StopConfig::from(params, eos_id_, a->req.max_tokens));
    if (tokenizer_) c.detok.emplace(*tokenizer_);
  }
  a->features.resize(a->req.images.size());
  ActiveRequest& ref = *a;
  active_.emplace(id, std::move(a));
  if (ref.req.images.empty()) return enqueue(ref);  // submit() refused images for a text-only model
  encoding_.push_back(id);  // enters the scheduler when its images have features (advance_encoding)
}

void Engine::Impl::emit(ActiveRequest& a, const Event& event) {
  if (a.req.on_event) a.req.on_event(event);
}

ActiveRequest* Engine::Impl::live_request(engine::SeqId seq) {
  auto it = active_.find(request_of(seq));
  return it == active_.end() || it->second->done ? nullptr : it->second.get();
}

// Sends the last event of a choice; after the request's last choice, the request is forgotten
// (erased after the step) and this event carries its usage.
void Engine::Impl::finish(ActiveRequest& a, Choice& c, Event& event, FinishReason reason, bool remove_from_scheduler) {
  PX_CHECK(!c.done);
  if (remove_from_scheduler) (void)scheduler_->finish(seq_of(a.req.id, c.index));  // not found: never forked
  event.id = a.req.id;
  event.index = c.index;
  event.finish = reason;
  if (reason == FinishReason::kError && event.error.is_ok()) event.error = internal_error("request failed");
  c.done = true;
  if (++a.num_done == static_cast<int64_t>(a.choices.size())) {
    int64_t completion_tokens = 0;
    for (const Choice& other : a.choices) completion_tokens += other.generated;
    event.usage = {.prompt_tokens = static_cast<int64_t>(a.req.prompt.size()),
                   .completion_tokens = completion_tokens,
                   .cached_prompt_tokens = a.cached_prompt_tokens};
    event.request_finished = true;
    a.done = true;
    a.features.clear();
    a.assembled = {};
    ++finished_;
  }
  emit(a, event);
}

void Engine::Impl::finish_request(ActiveRequest& a, FinishReason reason, const Status& error,
                                  bool remove_from_scheduler) {
  for (Choice& c : a.choices) {
    if (c.done) continue;
    Event event;
    event.error = error;
    finish(a, c, event, reason, remove_from_scheduler);
  }
}

// Ends every request of a step that could not run.
void Engine::Impl::fail_step(const engine::SchedulerOutput& out, const Status& status) {
  for (const auto& chunk : out.chunks)
    if (ActiveRequest* a = live_request(chunk.seq)) finish_request(*a, FinishReason::kError, status, true);
}

void Engine::Impl::run_step() {
  const auto start = Clock::now();
  const engine::SchedulerOutput out = scheduler_->schedule();
  if (out.empty()) {  // nothing admitted yet: only images to encode (all layers, no stream waits)
    advance_encoding();
    return;
  }
  ++steps_;
  for (const auto& chunk : out.chunks) {
    ActiveRequest* a = live_request(chunk.seq);
    if (a != nullptr && !a->scheduled) {
      a->scheduled = true;
      a->cached_prompt_tokens = chunk.start_pos;
    }
  }
  for (const kv_cache::BlockCopy& copy : out.block_copies)  // copy on write, before the step writes
    cache_.copy_block(*backend_, copy.src.value, copy.dst.value);
  if (Status s = check_image_features(out); !s.is_ok()) return fail_step(out, s);
  backend::TensorBuffer keep;
  scheduled_at_ = Clock::now();
  auto logits = forward(out, keep);
  if (!logits.is_ok()) return fail_step(out, logits.status());
  launched_at_ = Clock::now();
  // The waiting requests' image encoding (a few layers), queued behind the step's forward: its
  // host part (pixels into staging memory, launches) runs while the device computes the step. It
  // admits requests for the next schedule() only.
  advance_encoding();
  encoded_at_ = Clock::now();
  const bool decode_only =
      !encoding_work_.any() && out.images_to_encode.empty() &&
      std::all_of(out.chunks.begin(), out.chunks.end(), [](const engine::ScheduledChunk& c) { return c.num_tokens == 1; });
  // Cancels that arrived while the step ran: update() skips the cancelled sequences. A cancel of
  // a request still in the submission queue (not admitted yet) goes back to the queue of cancels:
  // the next take_inputs() admits before it cancels, so it is never lost.
  std::vector<RequestId> cancels, not_admitted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels.swap(cancels_);
  }
  for (RequestId id : cancels) {
    auto it = active_.find(id);
    if (it == active_.end()) {
      not_admitted.push_back(id);
      continue;
    }
    if (!it->second->done) finish_request(*it->second, FinishReason::kCancelled, Status::ok(), true);
  }
  if (!not_admitted.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.insert(cancels_.end(), not_admitted.begin(), not_admitted.end());
  }
  sample_step(out, *logits);
  const auto end = Clock::now();
  record_latency(decode_only ? decode_step_ : mixed_step_, ms_since(start, end));
  if (decode_only && 10 * static_cast<int64_t>(out.chunks.size()) >= 9 * options_.max_num_seqs)
    record_latency(decode_step_full_, ms_since(start, end));
  if (decode_only) {
    record_latency(decode_host_schedule_, ms_since(start, scheduled_at_));
    record_latency(decode_host_launch_, ms_since(scheduled_at_, launched_at_));
    record_latency(decode_host_after_, ms_since(sampled_at_, end));
  }
  record_slow_step(out, start, end);
}

// Keeps the 5 slowest steps that carried decodes, with what they held.
void Engine::Impl::record_slow_step(const engine::SchedulerOutput& out, Clock::time_point start,
                                   Clock::time_point end) {
  MetricsSnapshot::SlowStep step{.wall_ms = ms_since(start, end),
                                 .encoder_layers = encoding_work_.layers,
                                 .images_started = encoding_work_.started,
                                 .images_finished = encoding_work_.finished,
                                 .schedule_ms = ms_since(start, scheduled_at_),
                                 .launch_ms = ms_since(scheduled_at_, launched_at_),
                                 .encode_ms = ms_since(launched_at_, encoded_at_),
                                 .wait_ms = ms_since(encoded_at_, sampled_at_),
                                 .after_ms = ms_since(sampled_at_, end)};
  for (const auto& chunk : out.chunks) {
    if (chunk.num_tokens == 1 && chunk.sample) {
      ++step.decodes;
    } else {
      ++step.prefill_seqs;
      step.prefill_tokens += chunk.num_tokens;
    }
  }
  if (step.decodes == 0) return;
  auto& v = slowest_decode_steps_;
  v.push_back(step);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.wall_ms > b.wall_ms; });
  if (v.size() > 5) v.pop_back();
}

// Every image listed by the step has features: a request enters the scheduler only once its
// images are encoded (engine_images.cpp) and keeps them until it ends, preemptions included.
Status Engine::Impl::check_image_features(const engine::SchedulerOutput& out) {
  for (const engine::ImageToEncode& e : out.images_to_encode) {
    ActiveRequest* a = live_request(e.seq);
    if (a != nullptr && !a->features[static_cast<size_t>(e.image)])
      return internal_error("image " + std::to_string(e.image) + " of request " + std::to_string(a->req.id) +
                            " has no features when its chunk is scheduled");
  }
  return Status::ok();
}

// All of a sequence's feature rows: the one image's features, or (several images) a buffer the
// request owns into which the features present now are copied (rows of images that are not
// encoded belong to the cached prefix and are never read).
backend::Tensor Engine::Impl::features_of(engine::SeqId seq) {
  auto it = active_.find(request_of(seq));
  if (it == active_.end()) return {};
  ActiveRequest& a = *it->second;
  if (a.features.size() == 1) return a.features[0] ? a.features[0]->rows : backend::Tensor{};
  int64_t total = 0;
  for (int64_t r : a.req.image_rows) total += r;
  const engine::ImageFeatures* first = nullptr;
  for (const auto& f : a.features)
    if (f && !first) first = f.get();
  if (first == nullptr) return {};
  if (a.assembled.tensor().empty()) a.assembled = backend_->alloc(first->rows.dtype, {total, first->rows.dim(1)});
  int64_t row = 0;
  for (size_t k = 0; k < a.features.size(); ++k) {
    const int64_t n = a.req.image_rows[k];
    if (a.features[k]) backend_->copy(a.features[k]->rows, a.assembled.tensor().rows(row, row + n));
    row += n;
  }
  return a.assembled.tensor();
}

Result<backend::Tensor> Engine::Impl::forward(const engine::SchedulerOutput& out, backend::TensorBuffer& keep) {
  engine::DecoderBatchParams params{.step = &out, .scheduler = scheduler_.get(),
                                    .image_features = [this](engine::SeqId s) { return features_of(s); }};
  PX_ASSIGN_OR_RETURN(model::DecoderBatch batch, engine::build_decoder_batch(params));
  const bool pure_decode = std::all_of(batch.seqs.begin(), batch.seqs.end(), [](const model::SequenceChunk& c) {
    return c.token_ids.size() == 1 && c.image_embeds.empty();
  });
  if (pure_decode && runner_) return runner_->step(batch);
  PX_ASSIGN_OR_RETURN(keep, model_->forward(batch, cache_));
  return keep.tensor();
}

}  // namespace pixtral
