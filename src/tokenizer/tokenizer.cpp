// Placeholder while the implementation lands; see tokenizer.h.
#include "tokenizer/tokenizer.h"

namespace pixtral::tokenizer {
class PreTokenizer {};
Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  return unimplemented("tokenizer: loading " + path + " is not implemented yet");
}
}  // namespace pixtral::tokenizer
