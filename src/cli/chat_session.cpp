#include "cli/chat_session.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/backend_choice.h"
#include "cli/command.h"
#include "image/image.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::cli {

Result<ChatSession> ChatSession::open(const std::string& model_arg, const std::optional<std::string>& backend_name) {
  ChatSession s;
  PX_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(model_arg));
  std::string tokenizer_path = dir + "/tekken.json";
  if (!std::filesystem::exists(tokenizer_path) && std::filesystem::exists(dir + "/tokenizer.json"))
    tokenizer_path = dir + "/tokenizer.json";
  PX_ASSIGN_OR_RETURN(s.tokenizer, tokenizer::Tokenizer::load(tokenizer_path));
  PX_ASSIGN_OR_RETURN(prompt::ChatEncoder encoder, prompt::ChatEncoder::create(*s.tokenizer));
  s.encoder = std::make_unique<prompt::ChatEncoder>(std::move(encoder));
  PX_ASSIGN_OR_RETURN(s.backend, make_backend(backend_name));
  PX_ASSIGN_OR_RETURN(s.model, model::PixtralModel::load(dir, *s.backend));
  if (s.tokenizer->vocab_size() != s.model->config().text.vocab_size)
    return invalid_argument(tokenizer_path + ": vocabulary of " + std::to_string(s.tokenizer->vocab_size()) +
                            " tokens, but the model has " + std::to_string(s.model->config().text.vocab_size));
  const auto geometry = s.encoder->geometry();
  if (s.model->config().has_vision && geometry.patch_size != s.model->config().vision.patch_size)
    return invalid_argument(tokenizer_path + ": image patch size " + std::to_string(geometry.patch_size) +
                            " differs from the model's " + std::to_string(s.model->config().vision.patch_size));
  return s;
}

Result<std::string> ChatSession::answer(const prompt::ChatRequest& request, engine::GenerationRequest options) {
  PX_ASSIGN_OR_RETURN(prompt::EncodedChat encoded, encoder->encode(request));
  options.prompt.assign(encoded.tokens.begin(), encoded.tokens.end());
  for (const auto& rgb : encoded.images) {
    PX_ASSIGN_OR_RETURN(image::PixelTensor pixels, image::preprocess(rgb, encoder->geometry()));
    options.images.push_back({pixels.height, pixels.width, std::move(pixels.data)});
  }
  options.stop_ids = {tokenizer->eos_id()};
  tokenizer::StreamingDetokenizer detok(*tokenizer);
  std::string text;
  const auto start = std::chrono::steady_clock::now();
  auto result = engine::generate(*model, options, [&](int32_t token) {
    const std::string piece = detok.push(token);
    text += piece;
    std::fputs(piece.c_str(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (!result.is_ok()) return result.status();
  const std::string tail = detok.flush();
  text += tail;
  std::printf("%s\n", tail.c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "[%zu prompt tokens, %zu images, %zu generated, %.2f s, finish: %s]\n",
               options.prompt.size(), options.images.size(), result->tokens.size(), seconds,
               result->finish == engine::GenerationResult::Finish::kStop ? "stop" : "length");
  return text;
}

std::string read_generation_flags(FlagReader& flags, engine::GenerationRequest& options) {
  if (auto v = flags.value("--max-tokens")) {
    auto n = parse_int(*v);
    if (!n || *n <= 0) return "--max-tokens: not a positive integer: " + *v;
    options.max_tokens = *n;
  }
  if (auto v = flags.value("--temperature")) {
    auto t = parse_double(*v);
    if (!t || *t < 0) return "--temperature: not a non-negative number: " + *v;
    options.sampling.temperature = static_cast<float>(*t);
  }
  if (auto v = flags.value("--top-p")) {
    auto p = parse_double(*v);
    if (!p || *p <= 0 || *p > 1) return "--top-p: must be in (0, 1]: " + *v;
    options.sampling.top_p = static_cast<float>(*p);
  }
  if (auto v = flags.value("--top-k")) {
    auto k = parse_int(*v);
    if (!k || *k < 0) return "--top-k: not a non-negative integer: " + *v;
    options.sampling.top_k = *k;
  }
  if (auto v = flags.value("--seed")) {
    auto s = parse_int(*v);
    if (!s) return "--seed: not an integer: " + *v;
    options.sampling.seed = static_cast<uint64_t>(*s);
  }
  return "";
}

}  // namespace pixtral::cli
