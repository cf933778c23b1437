// n > 1 in the scheduler, driven by the fake model (fake_model.h): the prompt is computed once and
// its blocks are shared (ref counts), the partial last block is copied on write (the fake KV cache
// catches a sample writing into a block another still reads), admission counts the samples
// (max_num_seqs, blocks), a preempted sample recomputes its own sequence, a group is cancelled at
// every stage without a leak, and impossible requests are refused.
#include <gtest/gtest.h>

#include <vector>

#include "fake_model.h"

namespace pixtral::engine {
namespace {

using testing::expect_all_released;
using testing::expect_consistent;
using testing::FakeEngine;
using testing::kBlockSize;
using testing::params;
using testing::text;

std::vector<BlockId> table_of(const Scheduler& s, int64_t id) {
  const auto t = s.block_manager().block_table(SeqId{id});
  return {t.begin(), t.end()};
}

TEST(SchedulerFork, PromptIsComputedOnceAndItsBlocksShared) {
  for (int64_t prompt_len : {40, 32}) {  // a partial last block, then none
    FakeEngine e(params(64, 256));
    ASSERT_TRUE(e.add(1, text(prompt_len, 1), 6, {}, {2, 3, 4}).is_ok());
    const SchedulerOutput s1 = e.step();
    ASSERT_EQ(s1.chunks.size(), 1u);
    EXPECT_EQ(s1.chunks[0].num_tokens, prompt_len);
    EXPECT_EQ(s1.chunks[0].forks, (std::vector<SeqId>{SeqId{2}, SeqId{3}, SeqId{4}}));
    EXPECT_EQ(e.scheduler.num_running(), 4);
    const auto& bm = e.scheduler.block_manager();
    const std::vector<BlockId> prompt_blocks = table_of(e.scheduler, 1);
    ASSERT_EQ(static_cast<int64_t>(prompt_blocks.size()), bm.blocks_for(prompt_len));
    for (int64_t id : {2, 3, 4}) {
      EXPECT_EQ(table_of(e.scheduler, id), prompt_blocks);
      EXPECT_EQ(e.scheduler.find(SeqId{id})->num_computed(), prompt_len);
      EXPECT_EQ(e.scheduler.find(SeqId{id})->num_generated(), 1);
    }
    for (BlockId block : prompt_blocks) EXPECT_EQ(bm.ref_count(block), 4);
    EXPECT_EQ(bm.stats().num_used, bm.blocks_for(prompt_len));
    expect_consistent(e.scheduler);

    const SchedulerOutput s2 = e.step();  // four decodes
    ASSERT_EQ(s2.chunks.size(), 4u);
    EXPECT_EQ(s2.block_copies.size(), prompt_len % kBlockSize ? 3u : 0u);  // all but the last sharer
    for (int64_t b = 0; b < prompt_len / kBlockSize; ++b)
      EXPECT_EQ(bm.ref_count(prompt_blocks[static_cast<size_t>(b)]), 4) << "full blocks stay shared";
    EXPECT_EQ(bm.stats().num_used, prompt_len / kBlockSize + 4);
    e.run_to_completion();
    ASSERT_EQ(e.outputs.size(), 4u);
    for (int64_t id : {1, 2, 3, 4}) EXPECT_EQ(e.outputs[id].size(), 6u);
    for (int64_t id : {2, 3, 4}) EXPECT_NE(e.outputs[id], e.outputs[1]);
    // The prompt once; after it, one token per sample and step (the last sampled token is never computed).
    EXPECT_EQ(e.computed[1], prompt_len + 5);
    for (int64_t id : {2, 3, 4}) EXPECT_EQ(e.computed[id], 5);
    expect_all_released(e.scheduler);
  }
}

TEST(SchedulerFork, SamplesThatEndAtTheirFirstTokenAreFreedAtOnce) {
  FakeEngine e(params(16, 256));
  ASSERT_TRUE(e.add(1, text(40, 1), 1, {}, {2, 3}).is_ok());
  e.step();
  EXPECT_EQ(e.outputs.size(), 3u);
  for (int64_t id : {1, 2, 3}) EXPECT_EQ(e.outputs[id].size(), 1u);
  EXPECT_EQ(e.scheduler.num_running(), 0);
  expect_all_released(e.scheduler);
}

TEST(SchedulerFork, AdmissionCountsTheSamples) {
  FakeEngine e(params(64, 256, /*max_num_seqs=*/4));
  ASSERT_TRUE(e.add(1, text(20, 1), 3, {}, {2, 3}).is_ok());
  ASSERT_TRUE(e.add(10, text(20, 2), 3, {}, {11}).is_ok());
  EXPECT_EQ(e.step().chunks.size(), 1u);  // 3 + 2 samples would exceed 4 sequences
  EXPECT_EQ(e.scheduler.num_waiting(), 1);
  for (int i = 0; i < 100 && e.scheduler.num_running() + e.scheduler.num_waiting() > 0; ++i) {
    e.step();
    ASSERT_LE(e.scheduler.num_seq_slots(), 4);
  }
  EXPECT_EQ(e.outputs.size(), 5u);
  expect_all_released(e.scheduler);

  // Blocks: 3 for the 40-token prompt and one for each of 3 forks must be available at admission.
  FakeEngine b(params(8, 256));
  ASSERT_TRUE(b.add(1, text(40, 1), 2).is_ok());
  b.step();  // 3 blocks used, 5 left
  ASSERT_TRUE(b.add(2, text(40, 2), 2, {}, {3, 4, 5}).is_ok());
  const SchedulerOutput waits = b.step();
  ASSERT_EQ(waits.chunks.size(), 1u);  // 1's decode only: 3 + 3 > 5
  EXPECT_EQ(waits.chunks[0].seq, SeqId{1});
  const SchedulerOutput admits = b.step();  // 1 finished: now it fits
  ASSERT_EQ(admits.chunks.size(), 1u);
  EXPECT_EQ(admits.chunks[0].seq, SeqId{2});
  b.run_to_completion();
  EXPECT_EQ(b.outputs.size(), 5u);
  expect_all_released(b.scheduler);
}

// Two groups of 3 samples in a pool too small for all of them: samples are preempted one by one,
// recompute their own sequence (prompt + their tokens) and end with the same tokens as with room.
TEST(SchedulerFork, PreemptedSamplesRecomputeTheirOwnSequence) {
  auto run = [](int64_t num_blocks, bool prefix_caching, int64_t* preemptions) {
    SchedulerParams p = params(num_blocks, 64);
    p.enable_prefix_caching = prefix_caching;
    FakeEngine e(p);
    EXPECT_TRUE(e.add(1, text(30, 1), 40, {}, {2, 3}).is_ok());
    EXPECT_TRUE(e.add(4, text(45, 2), 40, {}, {5, 6}).is_ok());
    for (int i = 0; i < 10000 && e.scheduler.num_running() + e.scheduler.num_waiting() > 0; ++i) {
      e.step();
      expect_consistent(e.scheduler);
    }
    *preemptions = e.scheduler.num_preemptions();
    expect_all_released(e.scheduler);
    return e.outputs;
  };
  int64_t none = 0, some = 0, some_no_cache = 0;
  const auto reference = run(64, true, &none);
  EXPECT_EQ(none, 0);
  ASSERT_EQ(reference.size(), 6u);
  EXPECT_EQ(run(12, true, &some), reference);
  EXPECT_GT(some, 0);
  EXPECT_EQ(run(12, false, &some_no_cache), reference);
  EXPECT_GT(some_no_cache, 0);
}

TEST(SchedulerFork, CancellingAGroupAtEveryStageFreesEverything) {
  FakeEngine e(params(32, 16));
  // Waiting: the forks never come to exist.
  ASSERT_TRUE(e.add(1, text(40, 1), 10, {}, {2, 3}).is_ok());
  ASSERT_TRUE(e.scheduler.cancel(SeqId{1}).is_ok());
  EXPECT_EQ(e.scheduler.cancel(SeqId{2}).code(), StatusCode::kNotFound);
  // Mid-prefill (16 tokens a step).
  ASSERT_TRUE(e.add(4, text(40, 2), 10, {}, {5, 6}).is_ok());
  e.step();
  ASSERT_TRUE(e.scheduler.cancel(SeqId{4}).is_ok());
  expect_all_released(e.scheduler);
  // While the step that completes the prompt runs: update() skips it, nothing is forked.
  ASSERT_TRUE(e.add(7, text(20, 3), 10, {}, {8, 9}).is_ok());
  e.step();
  SchedulerOutput last = e.scheduler.schedule();
  ASSERT_EQ(last.chunks.size(), 1u);
  ASSERT_EQ(last.chunks[0].forks.size(), 2u);
  auto sampled = e.run(last);
  ASSERT_TRUE(e.scheduler.cancel(SeqId{7}).is_ok());
  e.record(e.scheduler.update(last, sampled));
  EXPECT_EQ(e.scheduler.find(SeqId{8}), nullptr);
  expect_all_released(e.scheduler);
  // After the fork: one sample, then the first (whose blocks the others share), one while its
  // step runs, then the rest.
  ASSERT_TRUE(e.add(10, text(40, 4), 50, {}, {11, 12, 13}).is_ok());
  for (int i = 0; i < 4; ++i) e.step();
  ASSERT_EQ(e.scheduler.num_running(), 4);
  ASSERT_TRUE(e.scheduler.cancel(SeqId{12}).is_ok());
  ASSERT_TRUE(e.scheduler.cancel(SeqId{10}).is_ok());
  expect_consistent(e.scheduler);
  e.step();
  SchedulerOutput planned = e.scheduler.schedule();
  sampled = e.run(planned);
  ASSERT_TRUE(e.scheduler.cancel(SeqId{11}).is_ok());
  e.record(e.scheduler.update(planned, sampled));
  expect_consistent(e.scheduler);
  ASSERT_TRUE(e.scheduler.cancel(SeqId{13}).is_ok());
  expect_all_released(e.scheduler);
}

TEST(SchedulerFork, RefusesForksThatCanNeverRun) {
  SchedulerParams p = params(8, 64, /*max_num_seqs=*/4);
  Scheduler s(p);
  EXPECT_EQ(s.add({.id = SeqId{1}, .prompt = text(5, 1), .forks = {SeqId{1}}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.add({.id = SeqId{1}, .prompt = text(5, 1), .forks = {SeqId{2}, SeqId{2}}}).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.add({.id = SeqId{1}, .prompt = text(5, 1), .forks = {SeqId{2}}}).is_ok());
  EXPECT_EQ(s.add({.id = SeqId{3}, .prompt = text(5, 1), .forks = {SeqId{1}}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.add({.id = SeqId{3}, .prompt = text(5, 1), .forks = {SeqId{2}}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.add({.id = SeqId{2}, .prompt = text(5, 1)}).code(), StatusCode::kInvalidArgument);  // promised to 1
  const Status too_many =
      s.add({.id = SeqId{3}, .prompt = text(5, 1), .forks = {SeqId{4}, SeqId{5}, SeqId{6}, SeqId{7}}});
  EXPECT_EQ(too_many.code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_many.message().find("5 samples"), std::string::npos) << too_many.message();
  // 100 tokens + 1 take 7 blocks; with 2 forks that is 9 of 8.
  const Status too_big = s.add({.id = SeqId{3}, .prompt = text(100, 1), .forks = {SeqId{4}, SeqId{5}}});
  EXPECT_EQ(too_big.code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_big.message().find("KV blocks"), std::string::npos) << too_big.message();
  EXPECT_TRUE(s.add({.id = SeqId{3}, .prompt = text(100, 1), .forks = {SeqId{4}}}).is_ok());
}

}  // namespace
}  // namespace pixtral::engine
