// The engine's chat path on a demo-sized random checkpoint with a byte-level tokenizer (what
// `pixtral make-tiny` writes): chat messages and a chat-completions body give the same tokens,
// the streamed text equals the tokenizer's decode of the tokens, stop strings cut the text (also
// per choice of an n = 3 request), and an image given as file bytes runs through preprocessing,
// the encoder and the image cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "cli/tiny_checkpoint.h"
#include "pixtral/engine.h"
#include "tokenizer/tokenizer.h"

namespace pixtral {
namespace {

struct Answer {
  std::vector<int32_t> tokens;
  std::string text;
  std::optional<FinishReason> finish;
  Usage usage;
};

const std::string& demo_dir() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "/engine_chat_demo";
    cli::TinyModelOptions options;
    options.visible_output = true;
    std::filesystem::remove_all(d);
    const Status s = cli::write_tiny_checkpoint(d, options);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return d;
  }();
  return dir;
}

std::unique_ptr<Engine> demo_engine() {
  EngineOptions o;
  o.model_dir = demo_dir();
  o.backend = "cpu";
  o.num_kv_blocks = 128;
  o.max_num_batched_tokens = 32;
  o.audit_blocks = true;
  auto engine = Engine::create(o);
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  return engine.is_ok() ? std::move(engine).value() : nullptr;
}

Answer ask(Engine& engine, Request request) {
  Answer answer;
  std::mutex mu;
  auto id = engine.submit(std::move(request), [&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    answer.tokens.insert(answer.tokens.end(), e.token_ids.begin(), e.token_ids.end());
    answer.text += e.text;
    if (e.finished()) {
      answer.finish = e.finish;
      answer.usage = e.usage;
    }
  });
  EXPECT_TRUE(id.is_ok()) << id.status().to_string();
  engine.wait_idle();
  std::lock_guard<std::mutex> lock(mu);
  return answer;
}

// Every choice's answer (index -> answer); usage from the request's last event.
std::map<int64_t, Answer> ask_choices(Engine& engine, Request request, Usage* usage = nullptr) {
  std::map<int64_t, Answer> answers;
  std::mutex mu;
  auto id = engine.submit(std::move(request), [&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    Answer& a = answers[e.index];
    a.tokens.insert(a.tokens.end(), e.token_ids.begin(), e.token_ids.end());
    a.text += e.text;
    if (e.finished()) a.finish = e.finish;
    if (e.request_finished && usage != nullptr) *usage = e.usage;
  });
  EXPECT_TRUE(id.is_ok()) << id.status().to_string();
  engine.wait_idle();
  std::lock_guard<std::mutex> lock(mu);
  return answers;
}

// A 24-bit BMP of w x h pixels with a colour gradient.
std::vector<uint8_t> make_bmp(int w, int h) {
  const int row = (w * 3 + 3) & ~3;
  const int size = 54 + row * h;
  std::vector<uint8_t> b(static_cast<size_t>(size), 0);
  auto put32 = [&](int at, int v) {
    for (int i = 0; i < 4; ++i) b[static_cast<size_t>(at + i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  b[0] = 'B';
  b[1] = 'M';
  put32(2, size);
  put32(10, 54);
  put32(14, 40);
  put32(18, w);
  put32(22, h);
  b[26] = 1;
  b[28] = 24;
  put32(34, row * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) b[static_cast<size_t>(54 + y * row + x * 3 + c)] = static_cast<uint8_t>((x * 7 + y * 13 + c * 50) & 255);
  return b;
}

Request chat(const std::string& text, int64_t max_tokens) {
  Request r;
  r.messages = {{"user", {ContentPart::text_part(text)}}};
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

TEST(EngineChat, MessagesAndJsonBodyStreamTheDecodedText) {
  auto engine = demo_engine();
  ASSERT_NE(engine, nullptr);
  const Answer a = ask(*engine, chat("Hello there", 16));
  ASSERT_EQ(a.tokens.size(), 16u);
  EXPECT_EQ(a.finish, FinishReason::kLength);
  EXPECT_EQ(a.usage.completion_tokens, 16);
  EXPECT_GT(a.usage.prompt_tokens, 11);
  auto tok = tokenizer::Tokenizer::load(demo_dir() + "/tekken.json");
  ASSERT_TRUE(tok.is_ok());
  auto decoded = (*tok)->decode(a.tokens, tokenizer::SpecialTokenPolicy::kIgnore);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(a.text, *decoded);

  Request body;
  body.chat_json = R"({"messages": [{"role": "user", "content": "Hello there"}]})";
  body.sampling.max_tokens = 16;
  body.sampling.ignore_eos = true;
  const Answer b = ask(*engine, body);
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(b.usage.cached_prompt_tokens, 0);  // the prompt is shorter than a block
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0);
}

TEST(EngineChat, StopStringCutsTheText) {
  auto engine = demo_engine();
  ASSERT_NE(engine, nullptr);
  const Answer full = ask(*engine, chat("Tell me", 24));
  ASSERT_GE(full.text.size(), 6u);
  const std::string stop = full.text.substr(3, 2);
  Request r = chat("Tell me", 24);
  r.sampling.stop = {stop};
  const Answer cut = ask(*engine, r);
  EXPECT_EQ(cut.finish, FinishReason::kStop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

// n = 3 seeded choices: each streams its own decoded text and stops on a stop string by itself,
// as a single request with seed + index does.
TEST(EngineChat, EachChoiceStreamsItsTextAndStopsOnItsOwn) {
  auto engine = demo_engine();
  ASSERT_NE(engine, nullptr);
  auto tok = tokenizer::Tokenizer::load(demo_dir() + "/tekken.json");
  ASSERT_TRUE(tok.is_ok());
  Request r = chat("Tell me", 20);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;  // no choice draws [IMG] (a generated [IMG] would need image features)
  r.sampling.n = 3;
  Usage usage;
  const auto free_run = ask_choices(*engine, r, &usage);
  ASSERT_EQ(free_run.size(), 3u);
  for (const auto& [index, a] : free_run) {
    auto decoded = (*tok)->decode(a.tokens, tokenizer::SpecialTokenPolicy::kIgnore);
    ASSERT_TRUE(decoded.is_ok());
    EXPECT_EQ(a.text, *decoded) << index;
  }
  EXPECT_EQ(usage.completion_tokens, 60);
  const std::string& text = free_run.at(1).text;
  ASSERT_GE(text.size(), 6u);
  const std::string stop = text.substr(3, 2);
  r.sampling.stop = {stop};
  const auto cut = ask_choices(*engine, r);
  EXPECT_EQ(cut.at(1).finish, FinishReason::kStop);
  EXPECT_EQ(cut.at(1).text, text.substr(0, text.find(stop)));
  for (int64_t i = 0; i < 3; ++i) {
    Request single = r;
    single.sampling.n = 1;
    single.sampling.seed = *r.sampling.seed + static_cast<uint64_t>(i);
    const Answer want = ask(*engine, single);
    EXPECT_EQ(cut.at(i).text, want.text) << i;
    EXPECT_EQ(cut.at(i).tokens, want.tokens) << i;
    EXPECT_EQ(cut.at(i).finish, want.finish) << i;
  }
  EXPECT_EQ(engine->metrics().kv_blocks_used, 0);
}

TEST(EngineChat, ImagePartsAreEncodedOncePerContent) {
  auto engine = demo_engine();
  ASSERT_NE(engine, nullptr);
  Request r = chat("What is this?", 4);
  r.messages[0].content.insert(r.messages[0].content.begin(), ContentPart{});
  r.messages[0].content[0].kind = ContentPart::Kind::kImageBytes;
  r.messages[0].content[0].image_bytes = make_bmp(40, 24);
  const Answer first = ask(*engine, r);
  ASSERT_EQ(first.tokens.size(), 4u) << (first.finish ? finish_reason_name(*first.finish) : "none");
  const Answer again = ask(*engine, r);
  EXPECT_EQ(again.tokens, first.tokens);
  const MetricsSnapshot m = engine->metrics();
  EXPECT_EQ(m.image_encoder_runs, 1);
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_TRUE(m.block_audit.is_ok());
  EXPECT_EQ(m.ttft.total, 2);
  EXPECT_EQ(m.itl.total, 6);
}

}  // namespace
}  // namespace pixtral
