#include "engine/scheduler.h"

#include <algorithm>

#include "base/check.h"

namespace pixtral::engine {

namespace {

int32_t sampled_token(std::span<const SampledToken> sampled, SeqId seq) {
  auto it = std::find_if(sampled.begin(), sampled.end(), [&](const SampledToken& t) { return t.seq == seq; });
  PX_CHECK_MSG(it != sampled.end(), "update: no sampled token for a chunk that samples (or one of its forks)");
  return it->token;
}

}  // namespace

// The step being planned: chunk sizes in scheduling order and the budget left.
struct Scheduler::Plan {
  struct Entry {
    SeqId seq;
    int64_t num_tokens = 0;
  };
  int64_t budget = 0;
  std::vector<Entry> entries;
  std::vector<SeqId> preempted;
  std::vector<kv_cache::BlockCopy> copies;

  bool contains(SeqId seq) const {
    return std::any_of(entries.begin(), entries.end(), [&](const Entry& e) { return e.seq == seq; });
  }
  void add(SeqId seq, int64_t num_tokens) {
    entries.push_back({seq, num_tokens});
    budget -= num_tokens;
  }
  // Drops seq's chunk (its sequence was preempted) and returns its tokens to the budget.
  void drop(SeqId seq) {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.seq == seq; });
    if (it == entries.end()) return;
    budget += it->num_tokens;
    entries.erase(it);
  }
};

Scheduler::Scheduler(const SchedulerParams& params)
    : params_(params),
      max_len_(std::min(params.max_model_len, params.num_blocks * params.block_size)),
      blocks_({.num_blocks = params.num_blocks, .block_size = params.block_size,
               .enable_prefix_caching = params.enable_prefix_caching}) {
  PX_CHECK(params.max_num_batched_tokens > 0 && params.max_num_seqs > 0 && params.max_model_len > 1);
}

Status Scheduler::validate(const SequenceParams& p) const {
  const auto prompt_len = static_cast<int64_t>(p.prompt.size());
  if (prompt_len == 0) return invalid_argument("the prompt is empty");
  if (p.max_tokens < 1) return invalid_argument("max_tokens must be at least 1");
  const auto in_use = [&](SeqId id) { return seqs_.count(id) != 0 || fork_ids_.count(id) != 0; };
  if (in_use(p.id)) return invalid_argument("sequence id " + std::to_string(p.id.value) + " is in use");
  for (auto f = p.forks.begin(); f != p.forks.end(); ++f)
    if (*f == p.id || in_use(*f) || std::find(p.forks.begin(), f, *f) != f)
      return invalid_argument("fork id " + std::to_string(f->value) + " is in use");
  const auto num_samples = static_cast<int64_t>(p.forks.size()) + 1;
  if (num_samples > params_.max_num_seqs)
    return out_of_range(std::to_string(num_samples) + " samples of one prompt run together, but at most " +
                        std::to_string(params_.max_num_seqs) + " sequences run at once");
  int64_t previous_end = 0;
  for (const auto& img : p.images) {
    if (img.begin < previous_end || img.end <= img.begin || img.end > prompt_len)
      return invalid_argument("image token ranges must be sorted, disjoint and inside the prompt");
    previous_end = img.end;
  }
  if (prompt_len + 1 > params_.max_model_len)
    return out_of_range("the prompt has " + std::to_string(prompt_len) + " tokens (images included); the model " +
                        "takes at most " + std::to_string(params_.max_model_len - 1) + " to generate one token");
  if (prompt_len + 1 > params_.num_blocks * params_.block_size)
    return out_of_range("the prompt has " + std::to_string(prompt_len) + " tokens (images included); the KV cache " +
                        "holds " + std::to_string(params_.num_blocks * params_.block_size) +
                        " tokens in all, so it could never run");
  const int64_t needed = blocks_.blocks_for(prompt_len + 1) + num_samples - 1;
  if (needed > params_.num_blocks)
    return out_of_range(std::to_string(num_samples) + " samples of a " + std::to_string(prompt_len) +
                        "-token prompt need " + std::to_string(needed) + " KV blocks at once; the pool has " +
                        std::to_string(params_.num_blocks));
  return Status::ok();
}

Status Scheduler::add(SequenceParams params) {
  PX_RETURN_IF_ERROR(validate(params));
  const SeqId id = params.id;
  fork_ids_.insert(params.forks.begin(), params.forks.end());
  seqs_.emplace(id, std::make_unique<Sequence>(std::move(params)));
  waiting_.push_back(id);
  return Status::ok();
}

Sequence& Scheduler::at(SeqId seq) {
  auto it = seqs_.find(seq);
  PX_CHECK_MSG(it != seqs_.end(), "unknown sequence");
  return *it->second;
}

int64_t Scheduler::num_seq_slots() const {
  int64_t n = num_running();
  for (SeqId id : running_) n += static_cast<int64_t>(seqs_.at(id)->forks().size());
  return n;
}

const Sequence* Scheduler::find(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : it->second.get();
}

SchedulerOutput Scheduler::schedule() {
  Plan plan{.budget = params_.max_num_batched_tokens};
  schedule_running(plan, /*decodes=*/true);
  schedule_running(plan, /*decodes=*/false);
  // A step that had to preempt admits nobody: the freed blocks would only be fought over again.
  if (plan.preempted.empty()) admit_waiting(plan);
  return finalize(plan);
}

void Scheduler::schedule_running(Plan& plan, bool decodes) {
  for (size_t i = 0; i < running_.size() && plan.budget > 0; ++i) {
    const SeqId id = running_[i];
    Sequence& seq = at(id);
    if ((seq.num_uncomputed() == 1) != decodes || plan.contains(id)) continue;
    const int64_t n = std::min(seq.num_uncomputed(), plan.budget);
    const kv_cache::AppendParams append{
        .seq = id, .write_begin = seq.num_computed(), .num_tokens = seq.num_computed() + n};
    bool self_preempted = false;
    while (!blocks_.can_append(append)) {
      // Victims are newer than seq (they sit behind it in running_); one already planned in this
      // step (a decode, seen by the prefill pass) loses its chunk and its tokens return to the budget.
      const SeqId victim = running_.back();
      preempt(victim, plan);
      if (victim == id) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;  // seq was the newest: nothing behind it is left
    auto copies = blocks_.append_slots(append);
    PX_CHECK(copies.is_ok());
    plan.copies.insert(plan.copies.end(), copies->begin(), copies->end());
    plan.add(id, n);
  }
}

void Scheduler::admit_waiting(Plan& plan) {
  const int64_t bs = params_.block_size;
  while (!waiting_.empty() && plan.budget > 0) {
    const SeqId id = waiting_.front();
    Sequence& seq = at(id);
    const auto num_forks = static_cast<int64_t>(seq.forks().size());
    if (num_seq_slots() + 1 + num_forks > params_.max_num_seqs) break;
    const auto& all_hashes = seq.update_block_hashes(bs);
    // At least one token is left to compute: its logits give the next token.
    const auto max_cached = std::min<int64_t>((seq.num_tokens() - 1) / bs, static_cast<int64_t>(all_hashes.size()));
    const std::span<const kv_cache::ContentHash> hashes(all_hashes.data(), static_cast<size_t>(max_cached));
    const int64_t hit = blocks_.match_prefix(hashes);
    const int64_t cached_tokens = hit * bs;
    const int64_t n = std::min(seq.num_tokens() - cached_tokens, plan.budget);
    const kv_cache::AllocateParams alloc{.seq = id, .block_hashes = hashes, .num_cached_blocks = hit,
                                         .num_tokens = cached_tokens + n, .num_extra_blocks = num_forks};
    if (!blocks_.can_allocate(alloc)) break;  // first come first served: nobody overtakes the head
    PX_CHECK(blocks_.allocate(alloc).is_ok());
    seq.start_running(cached_tokens);
    waiting_.pop_front();
    running_.push_back(id);
    plan.add(id, n);
  }
}

void Scheduler::preempt(SeqId seq, Plan& plan) {
  PX_CHECK(!running_.empty() && running_.back() == seq);
  running_.pop_back();
  // Copies into the victim's fresh blocks are moot (copies from its blocks still happen first:
  // they run before the step, whoever takes the blocks next).
  const auto table = blocks_.block_table(seq);
  std::erase_if(plan.copies, [&](const kv_cache::BlockCopy& c) {
    return std::find(table.begin(), table.end(), c.dst) != table.end();
  });
  blocks_.free(seq);
  at(seq).reset_for_recompute();
  waiting_.push_front(seq);
  plan.drop(seq);
  plan.preempted.push_back(seq);
  ++num_preemptions_;
}

SchedulerOutput Scheduler::finalize(Plan& plan) {
  SchedulerOutput out;
  out.preempted = std::move(plan.preempted);
  out.block_copies = std::move(plan.copies);
  for (const Plan::Entry& e : plan.entries) {
    Sequence& seq = at(e.seq);
    const int64_t start = seq.num_computed();
    const auto table = blocks_.block_table(e.seq);
    out.chunks.push_back({.seq = e.seq, .start_pos = start, .num_tokens = e.num_tokens,
                          .block_table = {table.begin(), table.end()},
                          .sample = start + e.num_tokens == seq.num_tokens()});
    if (out.chunks.back().sample) out.chunks.back().forks = seq.forks();
    out.num_batched_tokens += e.num_tokens;
    for (int64_t image : seq.images_in(start, start + e.num_tokens)) {
      if (seq.image_encoded(image)) continue;
      seq.mark_image_encoded(image);
      out.images_to_encode.push_back({.seq = e.seq, .image = image, .hash = seq.images()[static_cast<size_t>(image)].hash});
    }
  }
  return out;
}

std::vector<FinishedSequence> Scheduler::update(const SchedulerOutput& step, std::span<const SampledToken> sampled) {
  std::vector<FinishedSequence> finished;
  for (const ScheduledChunk& chunk : step.chunks) {
    auto it = seqs_.find(chunk.seq);
    if (it == seqs_.end()) continue;  // cancelled while the step ran
    Sequence& seq = *it->second;
    PX_CHECK_MSG(seq.state() == SequenceState::kRunning && seq.num_computed() == chunk.start_pos,
                 "update: the step does not match the sequence (one update per schedule)");
    seq.advance(chunk.num_tokens);
    blocks_.commit(chunk.seq, seq.update_block_hashes(params_.block_size), seq.num_computed());
    if (!chunk.sample) continue;
    if (!seq.forks().empty()) fork_samples(seq, sampled, finished);
    append_sampled(seq, sampled_token(sampled, chunk.seq), finished);
  }
  return finished;
}

// The end of an n > 1 prompt: every fork becomes a running sequence (the newest) that shares the
// prompt's blocks and starts with its own token.
void Scheduler::fork_samples(Sequence& parent, std::span<const SampledToken> sampled,
                             std::vector<FinishedSequence>& finished) {
  const std::vector<SeqId> forks = parent.forks();
  for (SeqId child : forks) {
    const bool promised = fork_ids_.erase(child) == 1;
    PX_CHECK_MSG(promised && seqs_.count(child) == 0, "fork: the sample's id is in use");
    auto seq = std::make_unique<Sequence>(parent.fork(child));
    blocks_.fork({.parent = parent.id(), .child = child, .num_tokens = parent.num_computed()});
    Sequence& ref = *seq;
    seqs_.emplace(child, std::move(seq));
    running_.push_back(child);
    append_sampled(ref, sampled_token(sampled, child), finished);
  }
}

// Appends a sampled token; a sequence that reaches max_tokens or the length limit is removed and
// reported.
void Scheduler::append_sampled(Sequence& seq, int32_t token, std::vector<FinishedSequence>& finished) {
  seq.append_token(token);
  const bool at_max_tokens = seq.num_generated() >= seq.max_tokens();
  if (!at_max_tokens && seq.num_tokens() < max_len_) return;
  finished.push_back({.seq = seq.id(),
                      .reason = at_max_tokens ? FinishReason::kMaxTokens : FinishReason::kMaxModelLen,
                      .output_ids = {seq.token_ids().begin() + seq.num_prompt_tokens(), seq.token_ids().end()}});
  PX_CHECK(cancel(seq.id()).is_ok());
}

Status Scheduler::cancel(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return not_found("no sequence " + std::to_string(seq.value));
  for (SeqId f : it->second->forks()) fork_ids_.erase(f);  // never forked now
  if (it->second->state() == SequenceState::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
    blocks_.free(seq);
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq));
  }
  seqs_.erase(it);
  return Status::ok();
}

}  // namespace pixtral::engine
