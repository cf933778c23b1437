// What generate and chat share: a serving engine over the loaded model (include/pixtral/engine.h)
// and one assistant turn (submit the conversation, stream the text as it comes).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pixtral/engine.h"

namespace pixtral::cli {

struct ChatSession {
  std::unique_ptr<Engine> engine;

  // --model (a directory or "demo") and --backend; the tokenizer is the directory's tekken.json
  // (or tokenizer.json). max_num_seqs: the most choices (SamplingOptions::n) a request may ask.
  static Result<ChatSession> open(const std::string& model_arg, const std::optional<std::string>& backend_name,
                                  int64_t max_num_seqs = 1);

  // Generates the assistant's answer to `messages`, streaming it to stdout, and returns the
  // answer's text. Token counts and timing go to stderr.
  Result<std::string> answer(const std::vector<ChatMessage>& messages, const SamplingOptions& sampling);
  // sampling.n > 1: every choice's answer, printed whole in index order (each after a
  // "--- choice i (finish) ---" line) once all are done; returned in index order.
  Result<std::vector<std::string>> answers(const std::vector<ChatMessage>& messages, const SamplingOptions& sampling);
  // Generates from token ids (+ pixels) and returns the new ids of each choice (the stop token
  // included), in index order.
  Result<std::vector<std::vector<int32_t>>> generate_ids(Request request);
};

// Parses the shared sampling flags (--max-tokens --temperature --top-p --top-k --seed) into
// `sampling`; returns an error message or "".
class FlagReader;
std::string read_generation_flags(FlagReader& flags, SamplingOptions& sampling);

}  // namespace pixtral::cli
