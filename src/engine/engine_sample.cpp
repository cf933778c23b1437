// The end of a step: each sampling chunk's row through its request's Sampler, the scheduler
// update, then the StopChecker and the streaming detokenizer, and the events.
#include <unordered_set>

#include "engine/engine_impl.h"

namespace pixtral {

namespace {

TokenLogprobInfo to_info(const engine::SampleResult& r) {
  TokenLogprobInfo info{.token = r.token, .logprob = r.logprob, .rank = r.rank, .top = {}};
  for (const auto& t : r.top_logprobs) info.top.emplace_back(t.id, t.logprob);
  return info;
}

}  // namespace

void Engine::Impl::sample_step(const engine::SchedulerOutput& out, const std::vector<float>& logits) {
  const auto vocab = static_cast<size_t>(model_->config().text.vocab_size);
  std::vector<engine::SampledToken> sampled;
  std::vector<std::pair<ActiveRequest*, engine::SampleResult>> results;
  for (size_t r = 0; r < out.chunks.size(); ++r) {
    const engine::ScheduledChunk& chunk = out.chunks[r];
    if (!chunk.sample) continue;
    auto it = active_.find(chunk.seq.value);
    if (it == active_.end() || it->second->done) continue;
    ActiveRequest& a = *it->second;
    engine::SampleResult res = a.sampler->sample(std::span<const float>(logits.data() + r * vocab, vocab), workspace_);
    sampled.push_back({chunk.seq, res.token});
    results.emplace_back(&a, std::move(res));
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
