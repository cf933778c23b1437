// n > 1 through the engine API on the tiny real model of tests/data/goldens (token-id requests):
// choice i of a seeded request with n = k draws what a request with n = 1 and seed + i draws (the
// host and the device sampler, alone and in a batch, with logprobs, per-choice stop ids and
// min_tokens); greedy choices all equal n = 1; every choice gets one last event and the request one
// request_finished event whose usage counts the prompt once; the prompt's blocks are shared; n is
// validated with messages that name it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "golden_util.h"
#include "pixtral/engine.h"

namespace pixtral {
namespace {

using model::testing::golden_model;
using model::testing::load_golden_case;

struct ChoiceOutput {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::optional<FinishReason> finish;
  int64_t num_final_events = 0;
};

struct RequestOutput {
  std::map<int64_t, ChoiceOutput> choices;  // by index
  Usage usage;
  int64_t num_request_finished = 0;
};

// Collects every choice's events (callbacks run on the engine thread).
class Collector {
 public:
  EventCallback callback() {
    return [this](const Event& e) {
      std::lock_guard<std::mutex> lock(mu_);
      RequestOutput& r = outputs_[e.id];
      ChoiceOutput& c = r.choices[e.index];
      EXPECT_EQ(c.num_final_events, 0) << "an event after the choice's last";
      c.tokens.insert(c.tokens.end(), e.token_ids.begin(), e.token_ids.end());
      for (const auto& info : e.logprobs) c.logprobs.push_back(info.logprob);
      if (e.finished()) {
        c.finish = e.finish;
        ++c.num_final_events;
      }
      if (e.request_finished) {
        EXPECT_TRUE(e.finished());
        r.usage = e.usage;
        ++r.num_request_finished;
      }
    };
  }
  RequestOutput get(RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return outputs_[id];
  }

 private:
  std::mutex mu_;
  std::map<RequestId, RequestOutput> outputs_;
};

std::unique_ptr<Engine> make_engine(const std::string& sampling, int64_t num_blocks = 256) {
  EngineOptions o;
  o.model_dir = golden_model("gqa_f32").mistral_dir;
  o.backend = "cpu";
  o.max_num_seqs = 12;
  o.max_num_batched_tokens = 24;
  o.num_kv_blocks = num_blocks;
  o.audit_blocks = true;
  o.sampling = sampling;
  auto engine = Engine::create(o);
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  return engine.is_ok() ? std::move(engine).value() : nullptr;
}

Request token_request(const std::string& case_name, int64_t max_tokens, const SamplingOptions& sampling,
                      int64_t prefix = -1) {
  const auto gc = load_golden_case(case_name);
  Request r;
  r.prompt_ids = gc.input_ids;
  if (prefix >= 0) r.prompt_ids.resize(static_cast<size_t>(prefix));  // text before the first image
  if (prefix < 0)
    for (const auto& img : gc.images) r.images.push_back({img.height, img.width, img.pixels});
  r.sampling = sampling;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

// Submits all, waits; returns each request's output (every choice checked to have ended once).
std::vector<RequestOutput> run(Engine& engine, const std::vector<Request>& requests, bool batched) {
  Collector collector;
  std::vector<RequestId> ids;
  for (const Request& r : requests) {
    auto id = engine.submit(r, collector.callback());
    EXPECT_TRUE(id.is_ok()) << id.status().to_string();
    if (!id.is_ok()) return {};
    ids.push_back(*id);
    if (!batched) engine.wait_idle();
  }
  engine.wait_idle();
  std::vector<RequestOutput> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    RequestOutput o = collector.get(ids[i]);
    EXPECT_EQ(static_cast<int64_t>(o.choices.size()), requests[i].sampling.n);
    EXPECT_EQ(o.num_request_finished, 1);
    for (const auto& [index, c] : o.choices) EXPECT_EQ(c.num_final_events, 1) << "choice " << index;
    out.push_back(std::move(o));
  }
  const MetricsSnapshot m = engine.metrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_TRUE(m.block_audit.is_ok()) << m.block_audit.to_string();
  return out;
}

SamplingOptions seeded(uint64_t seed) {
  SamplingOptions s;
  s.temperature = 0.9f;
  s.top_p = 0.95f;
  s.seed = seed;
  return s;
}

// The single requests that choice i of `request` must equal: n = 1, seed + i.
std::vector<Request> singles(const Request& request) {
  std::vector<Request> out;
  for (int64_t i = 0; i < request.sampling.n; ++i) {
    Request r = request;
    r.sampling.n = 1;
    if (r.sampling.seed) r.sampling.seed = *r.sampling.seed + static_cast<uint64_t>(i);
    out.push_back(std::move(r));
  }
  return out;
}

void expect_choices_equal_singles(const RequestOutput& got, const std::vector<RequestOutput>& want,
                                  const std::string& what) {
  ASSERT_EQ(got.choices.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    const ChoiceOutput& c = got.choices.at(static_cast<int64_t>(i));
    const ChoiceOutput& s = want[i].choices.at(0);
    EXPECT_EQ(c.tokens, s.tokens) << what << ", choice " << i;
    EXPECT_EQ(c.finish, s.finish) << what << ", choice " << i;
    // Logits of rows batched otherwise differ in the last bits (the tokens do not).
    ASSERT_EQ(c.logprobs.size(), s.logprobs.size()) << what << ", choice " << i;
    for (size_t k = 0; k < s.logprobs.size(); ++k)
      EXPECT_NEAR(c.logprobs[k], s.logprobs[k], 1e-4) << what << ", choice " << i;
  }
}

TEST(EngineChoices, SeededChoiceEqualsASingleRequestWithItsSeed) {
  // 37 tokens: two full blocks and a partial one that the choices copy on write; then an image.
  const std::vector<Request> requests = {token_request("gqa_f32_text_only", 12, seeded(1234), 37),
                                         token_request("gqa_f32_one_image", 10, seeded(99))};
  for (const std::string sampling : {"host", "device"}) {
    auto engine = make_engine(sampling);
    ASSERT_NE(engine, nullptr);
    for (Request r : requests) {
      r.sampling.n = 4;
      std::vector<RequestOutput> want;
      for (const RequestOutput& o : run(*engine, singles(r), false)) want.push_back(o);
      const RequestOutput alone = run(*engine, {r}, false).at(0);
      expect_choices_equal_singles(alone, want, sampling + ", alone");
      EXPECT_NE(alone.choices.at(0).tokens, alone.choices.at(1).tokens) << "the choices draw differently";
      // In a batch with other requests (n = 1 and n = 2), prompt chunks and decodes mixed.
      Request other = token_request("gqa_f32_three_images", 8, seeded(5));
      other.sampling.n = 2;
      const auto batch = run(*engine, {token_request("gqa_f32_text_only", 9, seeded(7), 25), r, other}, true);
      expect_choices_equal_singles(batch.at(1), want, sampling + ", in a batch");
      EXPECT_EQ(batch.at(1).usage.prompt_tokens, static_cast<int64_t>(r.prompt_ids.size()));
      int64_t completion = 0;
      for (const auto& [index, c] : batch.at(1).choices) completion += static_cast<int64_t>(c.tokens.size());
      EXPECT_EQ(batch.at(1).usage.completion_tokens, completion);
    }
  }
}

TEST(EngineChoices, LogprobsStopIdsAndMinTokensPerChoice) {
  SamplingOptions s = seeded(31);
  s.logprobs = true;
  s.top_logprobs = 2;
  s.n = 3;
  auto host = make_engine("host");
  ASSERT_NE(host, nullptr);
  Request r = token_request("gqa_f32_text_only", 14, s, 37);
  // Stop on the second token choice 1 draws without a stop: it ends there, the others go on
  // unless they draw it too (not as their first token: min_tokens = 1 masks it there).
  const auto free_run = run(*host, singles(r), false);
  ASSERT_GE(free_run.at(1).choices.at(0).tokens.size(), 2u);
  r.sampling.stop_token_ids = {free_run.at(1).choices.at(0).tokens[1]};
  r.sampling.min_tokens = 1;
  const auto want = run(*host, singles(r), false);
  EXPECT_EQ(want.at(1).choices.at(0).finish, FinishReason::kStop);
  EXPECT_EQ(want.at(1).choices.at(0).tokens.size(), 2u);
  for (const std::string sampling : {"host", "device"}) {
    auto engine = make_engine(sampling);
    ASSERT_NE(engine, nullptr);
    const RequestOutput got = run(*engine, {r}, true).at(0);
    expect_choices_equal_singles(got, want, sampling);
    EXPECT_EQ(got.choices.at(0).logprobs.size(), got.choices.at(0).tokens.size());
  }
}

TEST(EngineChoices, GreedyChoicesAreIdenticalAndEqualNOne) {
  auto engine = make_engine("auto");
  ASSERT_NE(engine, nullptr);
  const Request one = token_request("gqa_f32_one_image", 10, {}, -1);
  Request three = one;
  three.sampling.n = 3;
  const auto out = run(*engine, {one, three}, false);
  ASSERT_EQ(out.at(1).choices.size(), 3u);
  for (const auto& [index, c] : out.at(1).choices) EXPECT_EQ(c.tokens, out.at(0).choices.at(0).tokens) << index;
  EXPECT_EQ(out.at(1).usage.prompt_tokens, out.at(0).usage.prompt_tokens);
  EXPECT_EQ(out.at(1).usage.completion_tokens, 30);
}

// While the choices decode, the prompt's blocks are held once (shared), not once per choice.
TEST(EngineChoices, ThePromptsBlocksAreShared) {
  auto engine = make_engine("host");
  ASSERT_NE(engine, nullptr);
  Request r = token_request("gqa_f32_long_context", 40, seeded(3), 64);  // 4 full blocks
  r.sampling.n = 4;
  std::mutex mu;
  int64_t most_used = 0;
  auto id = engine->submit(r, [&](const Event&) {
    std::lock_guard<std::mutex> lock(mu);
    most_used = std::max(most_used, engine->metrics().kv_blocks_used);  // as of the previous step
  });
  ASSERT_TRUE(id.is_ok());
  engine->wait_idle();
  // Each choice ends at 64 + 39 computed tokens, 7 blocks: 4 shared and 3 of its own (28 unshared).
  EXPECT_EQ(most_used, 4 + 4 * 3);
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0);
}

TEST(EngineChoices, NIsValidatedWithItsName) {
  auto engine = make_engine("auto", 24);  // 24 blocks of 16 tokens
  ASSERT_NE(engine, nullptr);
  Collector collector;
  const auto submit = [&](int64_t n) {
    Request r = token_request("gqa_f32_long_context", 4, {});  // 300 tokens
    r.sampling.n = n;
    return engine->submit(r, collector.callback()).status();
  };
  for (int64_t n : {0, 17}) {
    const Status s = submit(n);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("n must be in [1, 16], got " + std::to_string(n)), std::string::npos) << s.message();
  }
  const Status seqs = submit(13);  // max_num_seqs is 12
  EXPECT_EQ(seqs.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(seqs.message().find("n must be at most max_num_seqs=12"), std::string::npos) << seqs.message();
  const Status blocks = submit(7);  // 19 blocks for the prompt and a token, 6 more: 25 of 24
  EXPECT_EQ(blocks.code(), StatusCode::kOutOfRange);
  EXPECT_NE(blocks.message().find("n = 7 choices"), std::string::npos) << blocks.message();
  EXPECT_TRUE(submit(6).is_ok());
  engine->wait_idle();
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0);
}

}  // namespace
}  // namespace pixtral
