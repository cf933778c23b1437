#include "cli/chat_session.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "cli/backend_choice.h"
#include "cli/command.h"

namespace pixtral::cli {

namespace {

// Waits for the last event of one request.
struct Completion {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Event> last;

  void set(const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    last = e;
    cv.notify_all();
  }
  Event wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return last.has_value(); });
    return *last;
  }
};

Status outcome(const Event& last) {
  if (*last.finish == FinishReason::kError) return last.error;
  if (*last.finish == FinishReason::kCancelled) return Status(StatusCode::kCancelled, "the request was cancelled");
  return Status::ok();
}

size_t count_images(const std::vector<ChatMessage>& messages) {
  size_t n = 0;
  for (const auto& m : messages)
    for (const auto& part : m.content) n += part.kind != ContentPart::Kind::kText;
  return n;
}

// What every choice of one request produced, in index order.
struct Choices {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<FinishReason> finish;
  Status status;  // the first failed choice's

  void add(const Event& e) {
    const auto i = static_cast<size_t>(e.index);
    if (texts.size() <= i) {
      texts.resize(i + 1);
      tokens.resize(i + 1);
      finish.resize(i + 1, FinishReason::kStop);
    }
    texts[i] += e.text;
    tokens[i].insert(tokens[i].end(), e.token_ids.begin(), e.token_ids.end());
    if (!e.finished()) return;
    finish[i] = *e.finish;
    if (status.is_ok()) status = outcome(e);
  }
};

}  // namespace

Result<ChatSession> ChatSession::open(const std::string& model_arg, const std::optional<std::string>& backend_name,
                                      int64_t max_num_seqs) {
  PX_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(model_arg));
  EngineOptions options;
  options.model_dir = dir;
  options.backend = backend_name.value_or("auto");
  options.max_num_seqs = max_num_seqs;
  ChatSession s;
  PX_ASSIGN_OR_RETURN(s.engine, Engine::create(options));
  return s;
}

Result<std::string> ChatSession::answer(const std::vector<ChatMessage>& messages, const SamplingOptions& sampling) {
  Request request;
  request.messages = messages;
  request.sampling = sampling;
  const size_t num_images = count_images(messages);
  std::string text;
  Completion done;
  const auto start = std::chrono::steady_clock::now();
  PX_ASSIGN_OR_RETURN(RequestId id, engine->submit(std::move(request), [&](const Event& e) {
    text += e.text;
    std::fputs(e.text.c_str(), stdout);
    std::fflush(stdout);
    if (e.request_finished) done.set(e);
  }));
  (void)id;
  const Event last = done.wait();
  PX_RETURN_IF_ERROR(outcome(last));
  std::printf("\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "[%lld prompt tokens, %zu images, %lld generated, %.2f s, finish: %s]\n",
               static_cast<long long>(last.usage.prompt_tokens), num_images,
               static_cast<long long>(last.usage.completion_tokens), seconds, finish_reason_name(*last.finish));
  return text;
}

Result<std::vector<std::string>> ChatSession::answers(const std::vector<ChatMessage>& messages,
                                                      const SamplingOptions& sampling) {
  Request request;
  request.messages = messages;
  request.sampling = sampling;
  Choices choices;
  Completion done;
  const auto start = std::chrono::steady_clock::now();
  PX_ASSIGN_OR_RETURN(RequestId id, engine->submit(std::move(request), [&](const Event& e) {
    choices.add(e);
    if (e.request_finished) done.set(e);
  }));
  (void)id;
  const Event last = done.wait();
  PX_RETURN_IF_ERROR(choices.status);
  for (size_t i = 0; i < choices.texts.size(); ++i)
    std::printf("--- choice %zu (%s) ---\n%s\n", i, finish_reason_name(choices.finish[i]), choices.texts[i].c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "[%lld prompt tokens, %zu images, %lld generated in %zu choices, %.2f s]\n",
               static_cast<long long>(last.usage.prompt_tokens), count_images(messages),
               static_cast<long long>(last.usage.completion_tokens), choices.texts.size(), seconds);
  return choices.texts;
}

Result<std::vector<std::vector<int32_t>>> ChatSession::generate_ids(Request request) {
  Choices choices;
  Completion done;
  PX_ASSIGN_OR_RETURN(RequestId id, engine->submit(std::move(request), [&](const Event& e) {
    choices.add(e);
    if (e.request_finished) done.set(e);
  }));
  (void)id;
  done.wait();
  PX_RETURN_IF_ERROR(choices.status);
  return choices.tokens;
}

std::string read_generation_flags(FlagReader& flags, SamplingOptions& sampling) {
  sampling.max_tokens = 256;
  if (auto v = flags.value("--max-tokens")) {
    auto n = parse_int(*v);
    if (!n || *n <= 0) return "--max-tokens: not a positive integer: " + *v;
    sampling.max_tokens = *n;
  }
  if (auto v = flags.value("--temperature")) {
    auto t = parse_double(*v);
    if (!t || *t < 0) return "--temperature: not a non-negative number: " + *v;
    sampling.temperature = static_cast<float>(*t);
  }
  if (auto v = flags.value("--top-p")) {
    auto p = parse_double(*v);
    if (!p || *p <= 0 || *p > 1) return "--top-p: must be in (0, 1]: " + *v;
    sampling.top_p = static_cast<float>(*p);
  }
  if (auto v = flags.value("--top-k")) {
    auto k = parse_int(*v);
    if (!k || *k < 0) return "--top-k: not a non-negative integer: " + *v;
    sampling.top_k = *k;
  }
  if (auto v = flags.value("--seed")) {
    auto s = parse_int(*v);
    if (!s) return "--seed: not an integer: " + *v;
    sampling.seed = static_cast<uint64_t>(*s);
  }
  return "";
}

}  // namespace pixtral::cli
