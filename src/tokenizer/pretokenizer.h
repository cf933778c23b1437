// Pre-tokenization: splits text into pieces with the tokenizer file's own regex (tiktoken pat_str),
// run by PCRE2 with JIT. Successive leftmost, non-overlapping matches with backtracking semantics,
// as tiktoken's fancy-regex find_iter. ref: spec/inputs.md §2.2 step 2
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pixtral/status.h"

namespace pixtral::tokenizer {

// Rewrites `\s` / `\S` into explicit classes of the Unicode White_Space property (what Rust's regex
// means by \s); PCRE2's \s under UCP also matches U+180E. Exposed for tests.
std::string rewrite_whitespace_classes(std::string_view pattern);

class PreTokenizer {
 public:
  // Compiles `pattern` (UTF + UCP, JIT when available). Errors say where the pattern is bad.
  static Result<std::unique_ptr<PreTokenizer>> compile(const std::string& pattern);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Calls fn(piece) for each match in order. `text` must be valid UTF-8 (checked by the caller).
  // Thread-safe: each call uses its own match data.
  Status split(std::string_view text, const std::function<void(std::string_view)>& fn) const;

 private:
  struct Impl;
  explicit PreTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pixtral::tokenizer
