// The scheduler and the block manager driven by a fake model on the CPU (fake_model.h): chunked
// prefill, FCFS admission, preemption by recompute, the prefix cache, cancellation at every stage,
// and a randomized run with n > 1 requests in it. n > 1 in detail: scheduler_fork_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "fake_model.h"

namespace pixtral::engine {
namespace {

using testing::append_image;
using testing::expect_all_released;
using testing::expect_consistent;
using testing::FakeEngine;
using testing::kBlockSize;
using testing::kImg;
using testing::params;
using testing::text;
using kv_cache::ImageSpan;

TEST(Scheduler, FirstComeFirstServedWithinTheTokenBudget) {
  FakeEngine e(params(64, 100));
  for (int64_t id = 1; id <= 3; ++id) ASSERT_TRUE(e.add(id, text(60, id), 5).is_ok());
  SchedulerOutput s1 = e.step();
  ASSERT_EQ(s1.chunks.size(), 2u);
  EXPECT_EQ(s1.chunks[0].seq, SeqId{1});
  EXPECT_EQ(s1.chunks[0].num_tokens, 60);
  EXPECT_TRUE(s1.chunks[0].sample);
  EXPECT_EQ(s1.chunks[1].seq, SeqId{2});
  EXPECT_EQ(s1.chunks[1].num_tokens, 40);  // chunked: the budget is spent
  EXPECT_FALSE(s1.chunks[1].sample);
  EXPECT_EQ(e.scheduler.waiting().front(), SeqId{3});
  SchedulerOutput s2 = e.step();  // decode of 1 first, the rest of 2, then 3 with what is left
  ASSERT_EQ(s2.chunks.size(), 3u);
  EXPECT_EQ(s2.chunks[0].seq, SeqId{1});
  EXPECT_EQ(s2.chunks[0].num_tokens, 1);
  EXPECT_EQ(s2.chunks[1].seq, SeqId{2});
  EXPECT_EQ(s2.chunks[1].start_pos, 40);
  EXPECT_EQ(s2.chunks[1].num_tokens, 20);
  EXPECT_EQ(s2.chunks[2].seq, SeqId{3});
  EXPECT_EQ(s2.chunks[2].num_tokens, 60);
  EXPECT_EQ(s2.num_batched_tokens, 81);
  e.run_to_completion();
  EXPECT_EQ(e.outputs.size(), 3u);
  for (const auto& [id, out] : e.outputs) EXPECT_EQ(out.size(), 5u);
  expect_all_released(e.scheduler);
}

TEST(Scheduler, MaxNumSeqsBoundsTheRunningSet) {
  FakeEngine e(params(64, 1000, 2));
  for (int64_t id = 1; id <= 4; ++id) ASSERT_TRUE(e.add(id, text(10, id), 3).is_ok());
  EXPECT_EQ(e.step().chunks.size(), 2u);
  EXPECT_EQ(e.scheduler.num_waiting(), 2);
  e.run_to_completion();
  EXPECT_EQ(e.outputs.size(), 4u);
}

TEST(Scheduler, ImagePrefillIsChunkedWhileDecodesKeepOneTokenPerStep) {
  FakeEngine e(params(1024, 512));
  for (int64_t id = 1; id <= 3; ++id) ASSERT_TRUE(e.add(id, text(20, id), 1000).is_ok());
  e.step();  // the three prompts
  std::vector<int32_t> prompt = text(10, 99);
  std::vector<ImageSpan> images;
  append_image(prompt, images, 64, 64, 0xC0FFEE);  // 1024x1024 at patch 16: 4,160 tokens
  const auto tail = text(20, 98);
  prompt.insert(prompt.end(), tail.begin(), tail.end());
  ASSERT_EQ(prompt.size(), 4190u);
  ASSERT_TRUE(e.add(4, prompt, 8, images).is_ok());
  int64_t steps = 0, image_done = 0;
  while (image_done < static_cast<int64_t>(prompt.size())) {
    std::map<int64_t, size_t> before;
    for (int64_t id = 1; id <= 3; ++id) before[id] = e.scheduler.find(SeqId{id})->token_ids().size();
    SchedulerOutput out = e.step();
    ++steps;
    ASSERT_EQ(out.chunks.size(), 4u);
    for (size_t i = 0; i < 3; ++i) {  // decodes first, one token each
      EXPECT_EQ(out.chunks[i].num_tokens, 1);
      EXPECT_TRUE(out.chunks[i].sample);
    }
    for (int64_t id = 1; id <= 3; ++id)
      EXPECT_EQ(e.scheduler.find(SeqId{id})->token_ids().size(), before[id] + 1) << "a decode stream stalled";
    const ScheduledChunk& chunk = out.chunks[3];
    EXPECT_EQ(chunk.seq, SeqId{4});
    EXPECT_EQ(chunk.start_pos, image_done);
    EXPECT_LE(chunk.num_tokens, 509);
    EXPECT_LE(out.num_batched_tokens, 512);
    EXPECT_EQ(out.images_to_encode.size(), steps == 1 ? 1u : 0u);  // before its first [IMG] chunk, once
    image_done += chunk.num_tokens;
  }
  EXPECT_EQ(steps, (4190 + 508) / 509);
  EXPECT_EQ(e.image_encodes[4], 1);
  EXPECT_EQ(e.scheduler.find(SeqId{4})->num_generated(), 1);
  for (int64_t id = 1; id <= 3; ++id) ASSERT_TRUE(e.scheduler.cancel(SeqId{id}).is_ok());
  e.run_to_completion();
  expect_all_released(e.scheduler);
}

// Four sequences that need 20 blocks together share 12: the newest is preempted, goes back to the
// front of the queue, and (recomputed) produces the same tokens as without memory pressure.
TEST(Scheduler, PreemptionByRecomputeResumesWithTheSameOutput) {
  auto run = [](int64_t num_blocks, bool prefix_caching, int64_t* preemptions) {
    SchedulerParams p = params(num_blocks, 256);
    p.enable_prefix_caching = prefix_caching;
    FakeEngine e(p);
    for (int64_t id = 1; id <= 4; ++id) EXPECT_TRUE(e.add(id, text(30, id), 40).is_ok());
    for (int i = 0; i < 10000 && e.scheduler.num_running() + e.scheduler.num_waiting() > 0; ++i) {
      const std::vector<SeqId> running = e.scheduler.running();
      SchedulerOutput out = e.step();
      for (SeqId victim : out.preempted) {
        EXPECT_EQ(victim, running.back()) << "the newest running sequence is preempted first";
        EXPECT_EQ(e.scheduler.waiting().front(), out.preempted.back());
      }
      expect_consistent(e.scheduler);
    }
    *preemptions = e.scheduler.num_preemptions();
    expect_all_released(e.scheduler);
    return e.outputs;
  };
  int64_t none = 0, some = 0, some_no_cache = 0;
  const auto reference = run(64, true, &none);
  EXPECT_EQ(none, 0);
  EXPECT_EQ(run(12, true, &some), reference);
  EXPECT_GT(some, 0);
  EXPECT_EQ(run(12, false, &some_no_cache), reference);
  EXPECT_GT(some_no_cache, 0);
  ASSERT_EQ(reference.size(), 4u);
}

TEST(Scheduler, ASharedPrefixIsTakenFromTheCache) {
  FakeEngine e(params(512, 8192));
  const auto shared = text(2000, 1);
  auto a = shared, b = shared;
  for (int32_t t : text(50, 2)) a.push_back(t);
  for (int32_t t : text(70, 3)) b.push_back(t);
  ASSERT_TRUE(e.add(1, a, 2).is_ok());
  e.run_to_completion();
  const auto before = e.scheduler.block_manager().stats();
  EXPECT_EQ(before.num_cached, 2051 / 16);  // every computed full block stays cached
  ASSERT_TRUE(e.add(2, b, 2).is_ok());
  SchedulerOutput out = e.step();
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].start_pos, 2000);  // 125 blocks of 16: the whole shared prefix
  EXPECT_EQ(out.chunks[0].num_tokens, 70);
  const auto after = e.scheduler.block_manager().stats();
  EXPECT_EQ(after.num_used, (2070 + 15) / 16);
  EXPECT_EQ(before.num_free - after.num_free, (2070 + 15) / 16 - 125);  // only the new blocks
  EXPECT_EQ(after.prefix_hit_blocks - before.prefix_hit_blocks, 125);
  e.run_to_completion();
  expect_all_released(e.scheduler);
}

TEST(Scheduler, SameTokensWithAnotherImageShareOnlyTheTextBefore) {
  FakeEngine e(params(256, 8192));
  auto make = [](uint64_t content) {
    std::pair<std::vector<int32_t>, std::vector<ImageSpan>> p{text(40, 5), {}};
    append_image(p.first, p.second, 4, 4, content);
    for (int32_t t : text(30, 6)) p.first.push_back(t);
    return p;
  };
  auto [cat, cat_images] = make(1);
  auto [dog, dog_images] = make(2);
  ASSERT_EQ(cat, dog);
  ASSERT_TRUE(e.add(1, cat, 1, cat_images).is_ok());
  e.run_to_completion();
  ASSERT_TRUE(e.add(2, dog, 1, dog_images).is_ok());
  EXPECT_EQ(e.step().chunks[0].start_pos, 32);  // the image starts at 40: blocks 0-1 only
  e.run_to_completion();
  ASSERT_TRUE(e.add(3, cat, 1, cat_images).is_ok());
  SchedulerOutput out = e.step();
  EXPECT_EQ(out.chunks[0].start_pos, 80);  // same image: every full block
  EXPECT_TRUE(out.images_to_encode.empty());  // its [IMG] tokens are all in cached blocks
  e.run_to_completion();
  expect_all_released(e.scheduler);
}

TEST(Scheduler, CancellationAtEveryStageFreesEverything) {
  FakeEngine e(params(20, 64));
  ASSERT_TRUE(e.add(1, text(200, 1), 50).is_ok());  // long prompt: several chunks
  ASSERT_TRUE(e.add(2, text(10, 2), 500).is_ok());
  ASSERT_TRUE(e.add(3, text(10, 3), 500).is_ok());
  EXPECT_TRUE(e.scheduler.cancel(SeqId{3}).is_ok());  // waiting, never scheduled
  e.step();
  ASSERT_EQ(e.scheduler.find(SeqId{1})->num_computed(), 64);
  EXPECT_TRUE(e.scheduler.cancel(SeqId{1}).is_ok());  // running, mid-prefill
  expect_consistent(e.scheduler);
  for (int i = 0; i < 3; ++i) e.step();
  EXPECT_GT(e.scheduler.find(SeqId{2})->num_generated(), 1);
  ASSERT_TRUE(e.add(4, text(100, 4), 500).is_ok());
  SchedulerOutput planned = e.scheduler.schedule();
  auto sampled = e.run(planned);
  EXPECT_TRUE(e.scheduler.cancel(SeqId{2}).is_ok());  // decoding, while its step is in flight
  e.record(e.scheduler.update(planned, sampled));
  expect_consistent(e.scheduler);
  // 4 and 5 grow until the pool is full and 5 (newer) is preempted; cancel it while it waits.
  ASSERT_TRUE(e.add(5, text(10, 5), 500).is_ok());
  bool preempted = false;
  for (int i = 0; i < 1000 && !preempted; ++i) {
    const SchedulerOutput out = e.step();
    preempted = std::find(out.preempted.begin(), out.preempted.end(), SeqId{5}) != out.preempted.end() ||
                std::find(out.preempted.begin(), out.preempted.end(), SeqId{4}) != out.preempted.end();
    if (preempted) {
      EXPECT_EQ(out.preempted.front(), SeqId{5});  // the newer one
      EXPECT_TRUE(e.scheduler.cancel(out.preempted.front()).is_ok());  // preempted, waiting
    }
  }
  EXPECT_TRUE(preempted);
  EXPECT_EQ(e.scheduler.cancel(SeqId{3}).code(), StatusCode::kNotFound);
  for (SeqId id : std::vector<SeqId>(e.scheduler.running())) EXPECT_TRUE(e.scheduler.cancel(id).is_ok());
  for (SeqId id : std::vector<SeqId>(e.scheduler.waiting().begin(), e.scheduler.waiting().end()))
    EXPECT_TRUE(e.scheduler.cancel(id).is_ok());
  expect_all_released(e.scheduler);
  EXPECT_TRUE(e.scheduler.schedule().empty());
}

TEST(Scheduler, RefusesPromptsThatCanNeverRun) {
  SchedulerParams p = params(8, 64);  // 128 tokens of KV
  p.max_model_len = 100;
  Scheduler s(p);
  EXPECT_EQ(s.add({.id = SeqId{1}, .prompt = text(100, 1)}).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(s.add({.id = SeqId{2}, .prompt = text(99, 1)}).is_ok());
  p.max_model_len = 1000;
  Scheduler small(p);
  const Status too_big = small.add({.id = SeqId{1}, .prompt = text(128, 1)});
  EXPECT_EQ(too_big.code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_big.message().find("could never run"), std::string::npos) << too_big.message();
  EXPECT_TRUE(small.add({.id = SeqId{2}, .prompt = text(127, 1)}).is_ok());
  EXPECT_EQ(small.add({.id = SeqId{2}, .prompt = text(5, 1)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(small.add({.id = SeqId{3}, .prompt = {}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(small.add({.id = SeqId{4}, .prompt = text(5, 1), .images = {{.begin = 3, .end = 9}}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(small.num_waiting(), 1);
  // A sequence that fills the pool stops at its limit instead of waiting for blocks forever.
  FakeEngine e(p);
  ASSERT_TRUE(e.add(1, text(120, 1), 1000).is_ok());
  e.run_to_completion();
  EXPECT_EQ(e.outputs[1].size(), 8u);
}

// Many requests with random lengths, shared prefixes, images and n > 1 samples; random cancels
// (also between schedule() and update()) and random stops; the invariants are checked after every
// step (the fake KV cache catches a write into a block another sample still reads).
TEST(Scheduler, RandomizedNoBlockIsEverLeakedOrDoubleFreed) {
  int64_t total_outputs = 0, total_preemptions = 0, total_hits = 0, total_forks = 0, total_copies = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::mt19937_64 rng(seed);
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    const int64_t max_model_len = uniform(150, 600);
    // A pool of 1 to 3 maximal sequences for up to 16 running: preemption is frequent.
    SchedulerParams p = params(uniform(max_model_len / 16 + 1, 3 * max_model_len / 16), uniform(16, 384), uniform(4, 16));
    p.max_model_len = max_model_len;
    FakeEngine e(p);
    e.stop = [&](SeqId, int32_t token) { return token % 37 == 0; };
    const std::vector<std::vector<int32_t>> prefixes = {text(48, 100), text(100, 101), text(17, 102)};
    int64_t next_id = 1, cancelled = 0;
    for (int step = 0; step < 4000; ++step) {
      for (int64_t k = uniform(0, 2); k > 0 && e.scheduler.num_waiting() < 40; --k) {
        std::vector<int32_t> prompt;
        std::vector<ImageSpan> images;
        if (uniform(0, 2) == 0) prompt = prefixes[static_cast<size_t>(uniform(0, 2))];
        if (uniform(0, 3) == 0) append_image(prompt, images, uniform(1, 6), uniform(1, 6), uniform(1, 3));
        for (int32_t t : text(uniform(1, p.max_model_len / 3), rng())) prompt.push_back(t);
        const int64_t id = next_id++;
        std::vector<int64_t> forks;  // n > 1: one request in four, up to 4 samples
        if (uniform(0, 3) == 0)
          for (int64_t f = uniform(1, 3); f > 0; --f) forks.push_back(next_id++);
        const Status s = e.add(id, prompt, uniform(1, 150), images, forks);
        ASSERT_TRUE(s.is_ok() || s.code() == StatusCode::kOutOfRange) << s.to_string();
        if (s.is_ok()) total_forks += static_cast<int64_t>(forks.size());
      }
      SchedulerOutput out = e.scheduler.schedule();
      const auto sampled = e.run(out);
      if (uniform(0, 29) == 0 && !out.chunks.empty()) {  // cancelled while its step is in flight
        ASSERT_TRUE(e.scheduler.cancel(out.chunks[static_cast<size_t>(uniform(0, out.chunks.size() - 1))].seq).is_ok());
        ++cancelled;
      }
      e.record(e.scheduler.update(out, sampled));
      e.apply_stops(sampled);
      if (uniform(0, 29) == 0 && e.scheduler.num_running() + e.scheduler.num_waiting() > 0) {
        std::vector<SeqId> all(e.scheduler.running());
        all.insert(all.end(), e.scheduler.waiting().begin(), e.scheduler.waiting().end());
        ASSERT_TRUE(e.scheduler.cancel(all[static_cast<size_t>(uniform(0, all.size() - 1))]).is_ok());
        ++cancelled;
      }
      ASSERT_LE(out.num_batched_tokens, p.max_num_batched_tokens);
      ASSERT_LE(e.scheduler.num_seq_slots(), p.max_num_seqs);
      expect_consistent(e.scheduler);
      if (HasFailure()) {
        ADD_FAILURE() << "seed " << seed << " step " << step;
        return;
      }
    }
    e.stop = nullptr;
    e.run_to_completion();
    expect_all_released(e.scheduler);
    EXPECT_GT(cancelled, 50) << "seed " << seed;
    total_outputs += static_cast<int64_t>(e.outputs.size());  // max_tokens, length limit or stop token
    total_preemptions += e.scheduler.num_preemptions();
    total_hits += e.scheduler.block_manager().stats().prefix_hit_blocks;
    total_copies += e.num_block_copies;
    if (HasFailure()) return;
  }
  EXPECT_GT(total_forks, 300);
  EXPECT_GT(total_copies, 100);
  // The run exercised what it is meant to.
  EXPECT_GT(total_outputs, 1000);
  EXPECT_GT(total_preemptions, 100);
  EXPECT_GT(total_hits, 1000);
}

}  // namespace
}  // namespace pixtral::engine
