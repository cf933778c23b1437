// A fake model driving the Scheduler and the BlockManager on the CPU, for the scheduler tests. It
// checks every step as the real model would see it (model::build_step_inputs validates the block
// tables and image rows), performs the step's block copies, and keeps a fake KV cache: each slot
// holds a digest of the whole sequence up to its position, so a block shared with the wrong
// content, written while another sequence still reads it, or read before it was written, is caught.
// The token a chunk samples is a function of that digest (a fork's: of the digest and its id).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "engine/scheduler.h"
#include "engine/scheduler_batch.h"
#include "model/step_inputs.h"

namespace pixtral::engine::testing {

using kv_cache::ContentHash;
using kv_cache::ImageSpan;

constexpr int32_t kImg = 10, kImgBreak = 12, kImgEnd = 13;
constexpr int64_t kBlockSize = 16;

inline uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  return x * 0xBF58476D1CE4E5B9ull;
}

inline std::vector<int32_t> text(int64_t n, uint64_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 1000 + static_cast<int32_t>(mix(seed, i) % 3000);
  return t;
}

// Pixtral's layout: rows x (cols [IMG] + [IMG_BREAK]), the last break an [IMG_END].
inline void append_image(std::vector<int32_t>& tokens, std::vector<ImageSpan>& images, int64_t rows, int64_t cols,
                  uint64_t content) {
  const auto begin = static_cast<int64_t>(tokens.size());
  for (int64_t r = 0; r < rows; ++r) {
    tokens.insert(tokens.end(), static_cast<size_t>(cols), kImg);
    tokens.push_back(r + 1 == rows ? kImgEnd : kImgBreak);
  }
  images.push_back({.hash = {content, ~content}, .begin = begin, .end = static_cast<int64_t>(tokens.size())});
}

// Drives a Scheduler like the engine loop does, with a fake model.
class FakeEngine {
 public:
  explicit FakeEngine(const SchedulerParams& params)
      : scheduler(params), kv_(static_cast<size_t>(params.num_blocks * params.block_size), 0) {}

  Scheduler scheduler;
  std::map<int64_t, std::vector<int32_t>> outputs;  // finished: seq id -> generated tokens
  std::map<int64_t, int64_t> image_encodes;         // seq id -> images encoded (over its life)
  std::function<bool(SeqId, int32_t)> stop;         // the engine's own stop rule (EOS), optional

  std::map<int64_t, int64_t> computed;               // seq id -> tokens computed (over its life)
  int64_t num_block_copies = 0;

  Status add(int64_t id, std::vector<int32_t> prompt, int64_t max_tokens, std::vector<ImageSpan> images = {},
             std::vector<int64_t> forks = {}) {
    std::vector<SeqId> fork_ids;
    for (int64_t f : forks) fork_ids.push_back(SeqId{f});
    return scheduler.add({.id = SeqId{id}, .prompt = std::move(prompt), .images = std::move(images),
                          .max_tokens = max_tokens, .forks = std::move(fork_ids)});
  }

  // Runs the fake model on a planned step and records it. Returns the sampled tokens.
  std::vector<SampledToken> run(const SchedulerOutput& out) {
    for (SeqId id : out.preempted) encoded_[id.value].clear();
    for (const ImageToEncode& img : out.images_to_encode) {
      EXPECT_TRUE(encoded_[img.seq.value].insert(img.image).second) << "image encoded twice";
      ++image_encodes[img.seq.value];
    }
    auto batch = build_decoder_batch({.step = &out, .scheduler = &scheduler, .image_features = [&](SeqId id) {
                                        return features(id);
                                      }});
    EXPECT_TRUE(batch.is_ok()) << batch.status().to_string();
    if (!batch.is_ok()) return {};
    const auto& p = scheduler.params();
    auto inputs = model::build_step_inputs(*batch, p.block_size, p.num_blocks, p.image_token_id);
    EXPECT_TRUE(inputs.is_ok()) << inputs.status().to_string();
    copy_blocks(out.block_copies);
    std::vector<SampledToken> sampled;
    for (const ScheduledChunk& chunk : out.chunks) {
      const int32_t next = compute_chunk(chunk);
      if (!chunk.sample) continue;
      sampled.push_back({chunk.seq, next});
      // The forks draw their first tokens from the same row: "another seed" each.
      for (SeqId f : chunk.forks) sampled.push_back({f, 1000 + static_cast<int32_t>(mix(next, f.value) % 3000)});
    }
    return sampled;
  }

  // One engine iteration; returns the step's plan.
  SchedulerOutput step() {
    SchedulerOutput out = scheduler.schedule();
    const auto sampled = run(out);
    record(scheduler.update(out, sampled));
    apply_stops(sampled);
    return out;
  }

  void record(const std::vector<FinishedSequence>& finished) {
    for (const auto& f : finished) outputs[f.seq.value] = f.output_ids;
  }

  void run_to_completion(int64_t max_steps = 100000) {
    for (int64_t i = 0; i < max_steps && scheduler.num_running() + scheduler.num_waiting() > 0; ++i) step();
    ASSERT_EQ(scheduler.num_running() + scheduler.num_waiting(), 0);
  }

  // The engine's stop rule (EOS, stop strings) applied to a step's sampled tokens.
  void apply_stops(const std::vector<SampledToken>& sampled) {
    if (!stop) return;
    for (const SampledToken& t : sampled) {
      const Sequence* seq = scheduler.find(t.seq);
      if (seq == nullptr || !stop(t.seq, t.token)) continue;
      outputs[t.seq.value] = {seq->token_ids().begin() + seq->num_prompt_tokens(), seq->token_ids().end()};
      EXPECT_TRUE(scheduler.finish(t.seq).is_ok());
    }
  }

 private:
  backend::Tensor features(SeqId id) {
    const Sequence* seq = scheduler.find(id);
    const auto rows = std::count(seq->token_ids().begin(), seq->token_ids().end(), kImg);
    backend::Tensor t;
    t.data = reinterpret_cast<void*>(0x1000);  // never dereferenced
    t.shape = {rows, 8};
    return t;
  }

  // The fake KV of position pos: a digest of tokens [0, pos] and of the image each token belongs to.
  static std::vector<uint64_t> digests(const Sequence& seq, int64_t end) {
    std::vector<uint64_t> d(static_cast<size_t>(end));
    uint64_t h = 7;
    for (int64_t pos = 0; pos < end; ++pos) {
      h = mix(h, static_cast<uint64_t>(seq.token_ids()[static_cast<size_t>(pos)]));
      for (int64_t image : seq.images_in(pos, pos + 1)) h = mix(h, seq.images()[static_cast<size_t>(image)].hash.low);
      d[static_cast<size_t>(pos)] = h | 1;  // never 0: 0 marks an unwritten slot
    }
    return d;
  }

  void copy_blocks(const std::vector<kv_cache::BlockCopy>& copies) {
    for (const kv_cache::BlockCopy& c : copies) {
      ++num_block_copies;
      std::copy_n(kv_.begin() + c.src.value * kBlockSize, kBlockSize, kv_.begin() + c.dst.value * kBlockSize);
    }
  }

  int32_t compute_chunk(const ScheduledChunk& chunk) {
    const Sequence& seq = *scheduler.find(chunk.seq);
    const int64_t end = chunk.start_pos + chunk.num_tokens;
    const auto expected = digests(seq, end);
    auto slot = [&](int64_t pos) {
      return static_cast<size_t>(chunk.block_table[static_cast<size_t>(pos / kBlockSize)].value * kBlockSize +
                                 pos % kBlockSize);
    };
    for (int64_t pos = 0; pos < chunk.start_pos; ++pos)
      if (kv_[slot(pos)] != expected[static_cast<size_t>(pos)]) {
        ADD_FAILURE() << "seq " << chunk.seq.value << " reads wrong KV at position " << pos;
        break;
      }
    for (int64_t image : seq.images_in(chunk.start_pos, end))
      EXPECT_TRUE(encoded_[chunk.seq.value].count(image)) << "a chunk ran before its image was encoded";
    for (int64_t pos = chunk.start_pos; pos < end; ++pos) kv_[slot(pos)] = expected[static_cast<size_t>(pos)];
    computed[chunk.seq.value] += chunk.num_tokens;
    return 1000 + static_cast<int32_t>(expected.back() % 3000);
  }

  std::vector<uint64_t> kv_;
  std::map<int64_t, std::set<int64_t>> encoded_;
};

// The bookkeeping invariants, checked after every step of the tests below.
inline void expect_consistent(const Scheduler& s) {
  const auto& bm = s.block_manager();
  const Status audit = bm.audit();
  ASSERT_TRUE(audit.is_ok()) << audit.to_string();
  const auto st = bm.stats();
  ASSERT_EQ(st.num_free + st.num_cached + st.num_used, st.num_blocks);
  ASSERT_EQ(st.num_sequences, s.num_running());
  for (SeqId id : s.running()) ASSERT_GE(static_cast<int64_t>(bm.block_table(id).size()) * kBlockSize, s.find(id)->num_computed());
  for (SeqId id : s.waiting()) ASSERT_FALSE(bm.contains(id));
}

inline void expect_all_released(const Scheduler& s) {
  expect_consistent(s);
  const auto st = s.block_manager().stats();
  EXPECT_EQ(st.num_used, 0);
  EXPECT_EQ(st.num_free + st.num_cached, st.num_blocks);
}

inline SchedulerParams params(int64_t num_blocks, int64_t budget, int64_t max_num_seqs = 64) {
  return {.num_blocks = num_blocks, .block_size = kBlockSize, .max_num_batched_tokens = budget,
          .max_num_seqs = max_num_seqs, .max_model_len = 32768, .image_token_id = kImg};
}

}  // namespace pixtral::engine::testing
