// What generate and chat share: a loaded model with its tokenizer and chat encoder, and one
// assistant turn (encode the conversation, preprocess its images, generate, stream the text).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "engine/generator.h"
#include "model/pixtral_model.h"
#include "prompt/chat_encoder.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::cli {

struct ChatSession {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::PixtralModel> model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<prompt::ChatEncoder> encoder;

  // --model (a directory or "demo") and --backend; the tokenizer is the directory's tekken.json
  // (or tokenizer.json).
  static Result<ChatSession> open(const std::string& model_arg, const std::optional<std::string>& backend_name);

  // Encodes `request`, generates the assistant's answer streaming it to stdout, and returns the
  // answer's text. Token counts and timing go to stderr.
  Result<std::string> answer(const prompt::ChatRequest& request, engine::GenerationRequest options);
};

// Parses the shared sampling flags (--max-tokens --temperature --top-p --top-k --seed) into
// `options`; returns an error message or "".
class FlagReader;
std::string read_generation_flags(FlagReader& flags, engine::GenerationRequest& options);

}  // namespace pixtral::cli
