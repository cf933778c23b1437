// The end of a step: each sampling chunk's row sampled (on the device, or through its request's
// host Sampler), the scheduler update, then the StopChecker and the streaming detokenizer, and the
// events.
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

}  // namespace

// Rows of a device-sampling step: requests without logprobs go through the backend's sample op
// (greedy placeholders for the rows that do not sample), and only the ids come back; requests with
// logprobs download their own row and run their host Sampler (the same draws). Host sampling:
// every row downloaded, one Sampler after another.
Result<std::vector<engine::SampleResult>> Engine::Impl::sample_rows(const backend::Tensor& logits,
                                                                    const std::vector<ActiveRequest*>& rows) {
  const int64_t vocab = model_->config().text.vocab_size, r_count = logits.dim(0);
  std::vector<engine::SampleResult> results(static_cast<size_t>(r_count));
  const auto on_host = [](const ActiveRequest* a) { return a->req.sampling.logprobs; };
  if (device_sampling_) {
    engine::DeviceSampleBatch batch;
    bool any = false;
    for (const ActiveRequest* a : rows) {
      const bool device = a != nullptr && !on_host(a);
      batch.add(device ? a->sampler->device_row() : engine::DeviceSampleRow{});
      any = any || device;
    }
    if (any) {
      std::vector<int32_t> ids;
      PX_RETURN_IF_ERROR(batch.run(*backend_, logits, &ids));
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r] == nullptr || on_host(rows[r])) continue;
        rows[r]->sampler->accept(ids[r]);
        results[r].token = ids[r];
      }
    }
    std::vector<float> row;  // allocated only when some request wants logprobs
    for (size_t r = 0; r < rows.size(); ++r) {
      if (rows[r] == nullptr || !on_host(rows[r])) continue;
      const auto i = static_cast<int64_t>(r);
      row.resize(static_cast<size_t>(vocab));
      backend_->download_f32(logits.rows(i, i + 1), row.data());
      results[r] = rows[r]->sampler->sample(std::span<const float>(row), workspace_);
    }
    return results;
  }
  std::vector<float> all(static_cast<size_t>(r_count * vocab));
  backend_->download_f32(logits, all.data());
  for (size_t r = 0; r < rows.size(); ++r)
    if (rows[r] != nullptr)
      results[r] = rows[r]->sampler->sample(
          std::span<const float>(all.data() + r * static_cast<size_t>(vocab), static_cast<size_t>(vocab)), workspace_);
  return results;
}

void Engine::Impl::sample_step(const engine::SchedulerOutput& out, const backend::Tensor& logits) {
  std::vector<ActiveRequest*> rows(out.chunks.size(), nullptr);  // the request sampling at row r
  for (size_t r = 0; r < out.chunks.size(); ++r) {
    const engine::ScheduledChunk& chunk = out.chunks[r];
    if (!chunk.sample) continue;
    auto it = active_.find(chunk.seq.value);
    if (it == active_.end() || it->second->done) continue;
    rows[r] = it->second.get();
  }
  auto sampled_rows = sample_rows(logits, rows);
  sampled_at_ = Clock::now();
  if (!sampled_rows.is_ok()) return fail_step(out, sampled_rows.status());
  std::vector<engine::SampledToken> sampled;
  std::vector<std::pair<ActiveRequest*, engine::SampleResult>> results;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r] == nullptr) continue;
    sampled.push_back({out.chunks[r].seq, (*sampled_rows)[r].token});
    results.emplace_back(rows[r], std::move((*sampled_rows)[r]));
  }
  std::unordered_set<int64_t> ended;  // removed by the scheduler (max_tokens, length limit)
  for (const auto& f : scheduler_->update(out, sampled)) ended.insert(f.seq.value);
  const auto now = Clock::now();
  for (auto& [a, res] : results) {
    record_latency(a->last_token ? itl_ : ttft_, ms_since(a->last_token.value_or(a->req.submitted), now));
    a->last_token = now;
    ++a->generated;
    ++generated_;
    Event event;
    event.id = a->req.id;
    event.token_ids.push_back(res.token);
    if (a->req.sampling.logprobs) event.logprobs.push_back(to_info(res));
    std::string text = a->detok ? a->detok->push(res.token) : std::string();
    const bool scheduler_ended = ended.count(a->req.id) != 0;
    if (a->detok && (a->stop->ends_on(res.token) || scheduler_ended)) text += a->detok->flush();
    const engine::StopStep step = a->stop->append(res.token, text);
    event.text = step.text;
    if (step.finished()) {
      event.stop_string = step.stop_string;
      finish(*a, event, step.finish == engine::FinishKind::kStop ? FinishReason::kStop : FinishReason::kLength,
             !scheduler_ended);
    } else if (scheduler_ended) {  // the context or the KV pool is full
      finish(*a, event, FinishReason::kLength, false);
    } else {
      emit(*a, event);
    }
  }
}

}  // namespace pixtral
