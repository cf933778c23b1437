// Cancellation through the engine API at every stage (queued, prefilling, decoding, preempted,
// while the step runs, at shutdown) on the tiny real model, n > 1 requests included: every choice
// gets exactly one last event and every request one request_finished event, and afterwards no KV
// block is used and the block manager's invariants hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>

#include "golden_util.h"
#include "pixtral/engine.h"

namespace pixtral {
namespace {

using model::testing::golden_model;
using model::testing::load_golden_case;

struct Tracker {
  std::mutex mu;
  std::map<RequestId, int64_t> events, finals;  // finals: request_finished events
  std::map<std::pair<RequestId, int64_t>, int64_t> choice_finals;  // (id, index) -> last events
  std::map<RequestId, FinishReason> finish;  // of the choice that ended last
  // Called on the engine thread with each event; may cancel something.
  std::function<void(const Event&)> hook;

  EventCallback callback() {
    return [this](const Event& e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++events[e.id];
        if (e.finished()) {
          ++choice_finals[{e.id, e.index}];
          finish[e.id] = *e.finish;
        }
        if (e.request_finished) ++finals[e.id];
      }
      if (hook) hook(e);
    };
  }

  // Every choice of the request ended exactly once, and the request once.
  void expect_ended_once(RequestId id, int64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(finals[id], 1) << id;
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ((choice_finals[{id, i}]), 1) << id << " choice " << i;
    int64_t total = 0;
    for (const auto& [key, count] : choice_finals) total += key.first == id ? count : 0;
    EXPECT_EQ(total, n) << id;
  }
};

EngineOptions options(int64_t num_blocks, int64_t budget, int64_t max_num_seqs = 6) {
  EngineOptions o;
  o.model_dir = golden_model("gqa_f32").mistral_dir;
  o.backend = "cpu";
  o.max_num_seqs = max_num_seqs;
  o.max_num_batched_tokens = budget;
  o.num_kv_blocks = num_blocks;
  o.audit_blocks = true;
  return o;
}

Request make_request(const std::string& case_name, int64_t max_tokens, int64_t prefix = -1, int64_t n = 1) {
  const auto gc = load_golden_case(case_name);
  Request r;
  r.prompt_ids = gc.input_ids;
  if (prefix >= 0) r.prompt_ids.resize(static_cast<size_t>(prefix));
  if (prefix < 0)
    for (const auto& img : gc.images) r.images.push_back({img.height, img.width, img.pixels});
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  r.sampling.n = n;
  if (n > 1) {  // choices that differ
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 11;
  }
  return r;
}

void expect_clean(const Engine& engine) {
  const MetricsSnapshot m = engine.metrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.num_running, 0);
  EXPECT_EQ(m.num_waiting, 0);
  EXPECT_TRUE(m.block_audit.is_ok()) << m.block_audit.to_string();
}

TEST(EngineCancel, AtEveryStage) {
  auto created = Engine::create(options(256, 16, 10));
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  Engine& engine = **created;
  Tracker t;
  std::atomic<RequestId> prefilling{0};
  RequestId trigger_id = -1;
  int64_t trigger_events = 0;
  std::map<RequestId, int64_t> cancel_at;  // request -> cancel at its n-th event (set before events)
  std::mutex cancel_mu;
  t.hook = [&](const Event& e) {
    std::lock_guard<std::mutex> lock(cancel_mu);
    if (e.finished()) return;
    auto it = cancel_at.find(e.id);
    if (it != cancel_at.end() && --it->second == 0) {
      EXPECT_TRUE(engine.cancel(e.id).is_ok());
    }
    if (e.id == trigger_id && ++trigger_events == 4) {
      EXPECT_TRUE(engine.cancel(prefilling.load()).is_ok());
    }
  };
  std::vector<RequestId> ids;
  {
    std::lock_guard<std::mutex> lock(cancel_mu);
    for (int64_t n : {1, 2, 5}) {
      auto id = engine.submit(make_request("gqa_f32_text_only", 40), t.callback());
      ASSERT_TRUE(id.is_ok());
      cancel_at[*id] = n;  // decoding: cancelled from its own n-th event
      ids.push_back(*id);
    }
    // n = 3, decoding: cancelled from its 5th event (after the fork; 3 choices share the prompt).
    auto group = engine.submit(make_request("gqa_f32_text_only", 40, 37, 3), t.callback());
    ASSERT_TRUE(group.is_ok());
    cancel_at[*group] = 5;
    ids.push_back(*group);
    // Prefilling: a 300-token prompt (n = 2: its second choice is never forked) at 16 tokens per
    // step, cancelled when the request below reaches its 4th event (then still in prefill).
    auto trigger = engine.submit(make_request("gqa_f32_text_only", 30, 7), t.callback());
    auto longp = engine.submit(make_request("gqa_f32_long_context", 10, -1, 2), t.callback());
    ASSERT_TRUE(trigger.is_ok() && longp.is_ok());
    prefilling = *longp;
    trigger_id = *trigger;
    ids.insert(ids.end(), {*trigger, *longp});
    auto queued = engine.submit(make_request("gqa_f32_one_image", 10), t.callback());
    ASSERT_TRUE(queued.is_ok());
    EXPECT_TRUE(engine.cancel(*queued).is_ok());  // queued or waiting
    ids.push_back(*queued);
  }
  engine.wait_idle();
  const std::vector<int64_t> num_choices = {1, 1, 1, 3, 1, 2, 1};
  for (size_t i = 0; i < ids.size(); ++i) t.expect_ended_once(ids[i], num_choices[i]);
  EXPECT_EQ(t.finish[ids[0]], FinishReason::kCancelled);
  EXPECT_EQ(t.events[ids[0]], 2);  // one token, then the cancellation
  EXPECT_EQ(t.finish[ids[2]], FinishReason::kCancelled);
  EXPECT_EQ(t.finish[ids[3]], FinishReason::kCancelled);
  EXPECT_EQ(t.events[ids[3]], 6 + 3);  // 3 first tokens, the next step's 3, each choice's cancellation
  EXPECT_EQ(t.finish[ids[5]], FinishReason::kCancelled);
  EXPECT_EQ(t.events[ids[5]], 2);  // nothing but the two cancellations
  EXPECT_EQ(t.finish[ids[6]], FinishReason::kCancelled);
  EXPECT_EQ(engine.cancel(ids[0]).code(), StatusCode::kNotFound);
  EXPECT_EQ(engine.cancel(987654).code(), StatusCode::kNotFound);
  expect_clean(engine);
}

TEST(EngineCancel, RandomizedWithPreemptionLeavesNoBlockUsed) {
  // 24 blocks of 16 tokens for up to 6 sequences of up to ~350 tokens: preemption is frequent.
  auto created = Engine::create(options(24, 32));
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  Engine& engine = **created;
  Tracker t;
  std::mt19937 rng(7);
  std::mutex rng_mu;
  t.hook = [&](const Event& e) {
    std::lock_guard<std::mutex> lock(rng_mu);
    if (!e.finished() && rng() % 23 == 0) (void)engine.cancel(e.id);
  };
  const char* cases[] = {"gqa_f32_text_only", "gqa_f32_one_image", "gqa_f32_three_images", "gqa_f32_long_context"};
  std::vector<RequestId> ids;
  std::vector<int64_t> num_choices;
  for (int i = 0; i < 40; ++i) {
    int64_t max_tokens = 0, n = 1;
    std::string name;
    {
      std::lock_guard<std::mutex> lock(rng_mu);
      name = cases[rng() % 4];
      max_tokens = 1 + static_cast<int64_t>(rng() % 40);
      n = rng() % 3 == 0 ? 2 + static_cast<int64_t>(rng() % 3) : 1;  // a third of them n = 2..4
    }
    auto id = engine.submit(make_request(name, max_tokens, -1, n), t.callback());
    if (!id.is_ok()) {  // n choices of a long prompt may not fit the 24 blocks at once
      EXPECT_EQ(id.status().code(), StatusCode::kOutOfRange) << id.status().to_string();
      continue;
    }
    ids.push_back(*id);
    num_choices.push_back(n);
    if (ids.size() % 5 == 4) (void)engine.cancel(ids[ids.size() - 2]);
  }
  engine.wait_idle();
  for (size_t i = 0; i < ids.size(); ++i) t.expect_ended_once(ids[i], num_choices[i]);
  EXPECT_GT(std::count_if(num_choices.begin(), num_choices.end(), [](int64_t n) { return n > 1; }), 5);
  EXPECT_GT(engine.metrics().num_preemptions, 0);
  expect_clean(engine);
}

TEST(EngineCancel, ShutdownCancelsWhatIsRunning) {
  Tracker t;
  std::vector<RequestId> ids;
  {
    auto created = Engine::create(options(256, 64));
    ASSERT_TRUE(created.is_ok()) << created.status().to_string();
    for (int i = 0; i < 4; ++i) {
      auto id = (*created)->submit(make_request("gqa_f32_text_only", 500, -1, i % 2 ? 2 : 1), t.callback());
      ASSERT_TRUE(id.is_ok());
      ids.push_back(*id);
    }
  }  // the destructor ends the loop
  for (size_t i = 0; i < ids.size(); ++i) {
    t.expect_ended_once(ids[i], i % 2 ? 2 : 1);
    EXPECT_EQ(t.finish[ids[i]], FinishReason::kCancelled);
  }
}

}  // namespace
}  // namespace pixtral
