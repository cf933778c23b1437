// Scheduler: continuous batching over the paged KV cache (after vLLM's scheduler, nano-vllm's
// engine/scheduler.py). Each step spends a token budget (max_num_batched_tokens) on
//   1. one token for every running sequence in decode (oldest first),
//   2. the next chunk of every running sequence still in prefill,
//   3. first-come-first-served admissions from the waiting queue (longest cached prefix reused),
// with at most max_num_seqs running. When a running sequence needs a block and none is left, the
// newest running sequence is preempted by recompute: its blocks are freed and it goes back to the
// front of the waiting queue (its computed blocks usually stay in the prefix cache).
//
// n > 1 (SequenceParams::forks): the prompt is computed once, by the first sequence; the step that
// completes it samples one token per sample from that chunk's row, and update() forks the others
// off it (BlockManager::fork: every prompt block shared, the partial last one copied on write).
// From then on each sample is an ordinary running sequence: it decodes, stops and is preempted
// (recomputing the prompt and its own tokens, the prompt's full blocks mostly from the prefix
// cache) on its own. Admission counts the samples against max_num_seqs and checks one block for
// each fork beyond the first chunk's.
// Decisions: docs/decisions/0004-kv-cache-and-scheduler.md.
//
// Use per step: out = schedule(); perform out.block_copies, encode out.images_to_encode; run the
// model on build_decoder_batch(out, ...) (scheduler_batch.h); sample the chunks with sample == true
// (and their forks); update(out, sampled); then finish() the sequences the engine stops (EOS, stop
// strings).
// Thread-compatibility: not thread-safe; the engine loop thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/sequence.h"
#include "kv_cache/block_manager.h"
#include "pixtral/status.h"

namespace pixtral::engine {

using kv_cache::BlockId;

struct SchedulerParams {
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t max_num_batched_tokens = 8192;  // tokens computed per step, over all sequences
  int64_t max_num_seqs = 256;             // running sequences at most
  int64_t max_model_len = 131072;         // prompt + generated tokens at most
  int32_t image_token_id = 10;            // [IMG]: the rows that receive image features
  bool enable_prefix_caching = true;
};

// One sequence's work in a step: tokens [start_pos, start_pos + num_tokens) of its token_ids()
// are computed into the slots of block_table; sample: the last row's logits give its next token.
struct ScheduledChunk {
  SeqId seq;
  int64_t start_pos = 0;
  int64_t num_tokens = 0;
  std::vector<BlockId> block_table;  // covers [0, start_pos + num_tokens)
  bool sample = false;
  // With sample, at the end of an n > 1 prompt: the samples update() forks off seq; each needs its
  // own first token, drawn from this chunk's row too.
  std::vector<SeqId> forks;
};

// An image whose features must exist before the step runs: its [IMG] tokens fall in a chunk of
// this step. Listed once per sequence (again after a preemption); the engine encodes it or takes it
// from its cache keyed by `hash`.
struct ImageToEncode {
  SeqId seq;
  int64_t image = 0;  // index in the sequence's images
  kv_cache::ContentHash hash;
};

struct SchedulerOutput {
  // Copy on write: blocks to copy (K and V, every layer), in order, before the step's forward.
  std::vector<kv_cache::BlockCopy> block_copies;
  std::vector<ScheduledChunk> chunks;  // decodes first, then prefill chunks
  std::vector<ImageToEncode> images_to_encode;
  std::vector<SeqId> preempted;        // went back to waiting in this step
  int64_t num_batched_tokens = 0;
  bool empty() const { return chunks.empty(); }
};

// One per chunk with sample == true, plus one per fork of such a chunk (seq = the fork's id).
struct SampledToken {
  SeqId seq;
  int32_t token = 0;
};

enum class FinishReason { kMaxTokens, kMaxModelLen };

struct FinishedSequence {
  SeqId seq;
  FinishReason reason = FinishReason::kMaxTokens;
  std::vector<int32_t> output_ids;  // the generated tokens
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerParams& params);

  // Queues a request. kInvalidArgument for an empty prompt, bad image ranges or a known id (forks
  // included); kOutOfRange when it can never run (prompt + 1 over max_model_len, or the prompt + 1
  // block per fork over the whole pool, or more samples than max_num_seqs).
  Status add(SequenceParams params);
  // Plans the next step (empty when nothing can run); see the file comment.
  SchedulerOutput schedule();
  // Records a computed step: advances the sequences, registers completed blocks in the prefix
  // cache, forks the samples of chunks that have forks (running from now on), appends the sampled
  // tokens (sequences cancelled since schedule() are skipped). Returns those that reached
  // max_tokens or the length limit (forks included); they are already removed.
  std::vector<FinishedSequence> update(const SchedulerOutput& step, std::span<const SampledToken> sampled);
  // Removes a sequence at any stage (waiting, running, preempted) and frees its blocks.
  // kNotFound for an unknown id. finish() is the same for a sequence the engine stopped.
  Status cancel(SeqId seq);
  Status finish(SeqId seq) { return cancel(seq); }

  const Sequence* find(SeqId seq) const;
  const SchedulerParams& params() const { return params_; }
  // The longest sequence the pool and the model allow: min(max_model_len, num_blocks * block_size).
  int64_t max_len() const { return max_len_; }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  // Running sequences plus the forks their prompts will add (what max_num_seqs bounds).
  int64_t num_seq_slots() const;
  int64_t num_preemptions() const { return num_preemptions_; }
  const std::deque<SeqId>& waiting() const { return waiting_; }   // front: admitted next
  const std::vector<SeqId>& running() const { return running_; }  // oldest first
  const kv_cache::BlockManager& block_manager() const { return blocks_; }

 private:
  struct Plan;
  void schedule_running(Plan& plan, bool decodes);
  void admit_waiting(Plan& plan);
  void preempt(SeqId seq, Plan& plan);
  SchedulerOutput finalize(Plan& plan);
  void fork_samples(Sequence& parent, std::span<const SampledToken> sampled, std::vector<FinishedSequence>& finished);
  void append_sampled(Sequence& seq, int32_t token, std::vector<FinishedSequence>& finished);
  Status validate(const SequenceParams& params) const;
  Sequence& at(SeqId seq);

  SchedulerParams params_;
  int64_t max_len_ = 0;
  kv_cache::BlockManager blocks_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>, kv_cache::SeqIdHasher> seqs_;
  std::unordered_set<SeqId, kv_cache::SeqIdHasher> fork_ids_;  // promised to forks not made yet
  std::deque<SeqId> waiting_;
  std::vector<SeqId> running_;  // admission order: the back is the newest (first to be preempted)
  int64_t num_preemptions_ = 0;
};

}  // namespace pixtral::engine
