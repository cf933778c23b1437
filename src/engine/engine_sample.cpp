// The end of a step: each sampling chunk's row sampled for its choice (and, at the end of an n > 1
// prompt, for every choice forked off it), on the device or through each choice's host Sampler;
// the scheduler update, then the StopChecker and the streaming detokenizer, and the events.
#include <unordered_set>

#include "engine/device_sampling.h"
#include "engine/engine_impl.h"

namespace pixtral {

namespace {

TokenLogprobInfo to_info(const engine::SampleResult& r) {
  TokenLogprobInfo info{.token = r.token, .logprob = r.logprob, .rank = r.rank, .top = {}};
  for (const auto& t : r.top_logprobs) info.top.emplace_back(t.id, t.logprob);
  return info;
}

bool wants_logprobs(const SampleJob& job) { return job.request->req.sampling.logprobs; }

}  // namespace

// Device sampling: jobs without logprobs go through the backend's sample op and only the ids come
// back; jobs with logprobs download their own row and run their host Sampler (the same draws).
// Host sampling: every row downloaded, one Sampler after another.
Result<std::vector<engine::SampleResult>> Engine::Impl::sample_jobs(const backend::Tensor& logits,
                                                                    const std::vector<SampleJob>& jobs) {
  const auto vocab = static_cast<size_t>(model_->config().text.vocab_size);
  std::vector<engine::SampleResult> results(jobs.size());
  if (!device_sampling_) {
    std::vector<float> all(static_cast<size_t>(logits.dim(0)) * vocab);
    backend_->download_f32(logits, all.data());
    for (size_t j = 0; j < jobs.size(); ++j)
      results[j] = jobs[j].choice->sampler->sample(
          std::span<const float>(all.data() + static_cast<size_t>(jobs[j].row) * vocab, vocab), workspace_);
    return results;
  }
  PX_RETURN_IF_ERROR(sample_on_device(logits, jobs, results));
  std::vector<float> row;  // allocated only when some request wants logprobs
  int64_t row_index = -1;  // the row held in `row` (the choices of one prompt share it)
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (!wants_logprobs(jobs[j])) continue;
    if (jobs[j].row != row_index) {
      row_index = jobs[j].row;
      row.resize(vocab);
      backend_->download_f32(logits.rows(row_index, row_index + 1), row.data());
    }
    results[j] = jobs[j].choice->sampler->sample(std::span<const float>(row), workspace_);
  }
  return results;
}

// The device jobs in one call of the sample op: on the step's logits (greedy placeholders for the
// rows nobody samples) when no row has two jobs, else on a copy gathered with one row per job (the
// step that ends an n > 1 prompt samples that row once per choice).
Status Engine::Impl::sample_on_device(const backend::Tensor& logits, const std::vector<SampleJob>& jobs,
                                      std::vector<engine::SampleResult>& results) {
  std::vector<int64_t> device;  // the jobs of the op, in job order
  std::vector<int64_t> job_of_row(static_cast<size_t>(logits.dim(0)), -1);
  bool one_per_row = true;
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (wants_logprobs(jobs[j])) continue;
    device.push_back(static_cast<int64_t>(j));
    int64_t& job = job_of_row[static_cast<size_t>(jobs[j].row)];
    one_per_row = one_per_row && job < 0;
    job = static_cast<int64_t>(j);
  }
  if (device.empty()) return Status::ok();
  // Per row of the op's input: the job it samples (-1: a placeholder).
  const std::vector<int64_t>& op_jobs = one_per_row ? job_of_row : device;
  engine::DeviceSampleBatch batch;
  for (int64_t j : op_jobs)
    batch.add(j >= 0 ? jobs[static_cast<size_t>(j)].choice->sampler->device_row() : engine::DeviceSampleRow{});
  backend::TensorBuffer gathered;
  if (!one_per_row) {
    gathered = backend_->alloc(logits.dtype, {static_cast<int64_t>(device.size()), logits.dim(1)});
    for (size_t d = 0; d < device.size(); ++d) {
      const int64_t row = jobs[static_cast<size_t>(device[d])].row;
      const auto dst = static_cast<int64_t>(d);
      backend_->copy(logits.rows(row, row + 1), gathered.tensor().rows(dst, dst + 1));
    }
  }
  std::vector<int32_t> ids;
  PX_RETURN_IF_ERROR(batch.run(*backend_, one_per_row ? logits : gathered.tensor(), &ids));
  for (size_t r = 0; r < op_jobs.size(); ++r) {
    if (op_jobs[r] < 0) continue;
    const auto j = static_cast<size_t>(op_jobs[r]);
    jobs[j].choice->sampler->accept(ids[r]);
    results[j].token = ids[r];
  }
  return Status::ok();
}

void Engine::Impl::sample_step(const engine::SchedulerOutput& out, const backend::Tensor& logits) {
  std::vector<SampleJob> jobs;
  for (size_t r = 0; r < out.chunks.size(); ++r) {
    const engine::ScheduledChunk& chunk = out.chunks[r];
    ActiveRequest* a = chunk.sample ? live_request(chunk.seq) : nullptr;
    if (a == nullptr) continue;
    const auto row = static_cast<int64_t>(r);
    Choice& c = a->choices[static_cast<size_t>(choice_of(chunk.seq))];
    jobs.push_back({.row = row, .request = a, .choice = &c});
    for (engine::SeqId fork : chunk.forks)
      jobs.push_back({.row = row, .request = a, .choice = &a->choices[static_cast<size_t>(choice_of(fork))]});
  }
  auto results = sample_jobs(logits, jobs);
  sampled_at_ = Clock::now();
  if (!results.is_ok()) return fail_step(out, results.status());
  std::vector<engine::SampledToken> sampled;
  for (size_t j = 0; j < jobs.size(); ++j)
    sampled.push_back({seq_of(jobs[j].request->req.id, jobs[j].choice->index), (*results)[j].token});
  std::unordered_set<int64_t> ended;  // removed by the scheduler (max_tokens, length limit)
  for (const auto& f : scheduler_->update(out, sampled)) ended.insert(f.seq.value);
  const auto now = Clock::now();
  for (size_t j = 0; j < jobs.size(); ++j)
    emit_token(jobs[j], (*results)[j], ended.count(sampled[j].seq.value) != 0, now);
}

// One sampled token of a choice through its detokenizer and StopChecker, out as an event (its last
// when it ends the choice).
void Engine::Impl::emit_token(const SampleJob& job, const engine::SampleResult& result, bool scheduler_ended,
                              Clock::time_point now) {
  ActiveRequest& a = *job.request;
  Choice& c = *job.choice;
  if (c.last_token) {
    record_latency(itl_, ms_since(*c.last_token, now));
  } else if (c.index == 0) {  // the other choices' first tokens come from the same step
    record_latency(ttft_, ms_since(a.req.submitted, now));
  }
  c.last_token = now;
  ++c.generated;
  ++generated_;
  Event event;
  event.id = a.req.id;
  event.index = c.index;
  event.token_ids.push_back(result.token);
  if (a.req.sampling.logprobs) event.logprobs.push_back(to_info(result));
  std::string text = c.detok ? c.detok->push(result.token) : std::string();
  if (c.detok && (c.stop->ends_on(result.token) || scheduler_ended)) text += c.detok->flush();
  const engine::StopStep step = c.stop->append(result.token, text);
  event.text = step.text;
  if (step.finished()) {
    event.stop_string = step.stop_string;
    finish(a, c, event, step.finish == engine::FinishKind::kStop ? FinishReason::kStop : FinishReason::kLength,
           !scheduler_ended);
  } else if (scheduler_ended) {  // the context or the KV pool is full
    finish(a, c, event, FinishReason::kLength, false);
  } else {
    emit(a, event);
  }
}

}  // namespace pixtral
