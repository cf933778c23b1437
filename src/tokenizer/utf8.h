// UTF-8 routines with the exact error behaviour of Python's bytes.decode("utf-8", "replace").
// ref: spec/inputs.md §2.3 (maximal ill-formed subsequence -> one U+FFFD)
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pixtral::tokenizer {

// Length of the well-formed UTF-8 sequence starting at text[pos], or 0 when the bytes there are
// ill-formed or truncated.
size_t utf8_sequence_length(std::string_view text, size_t pos);

// Byte offset of the first ill-formed sequence, or npos when `text` is valid UTF-8.
size_t find_invalid_utf8(std::string_view text);

// Appends `bytes` decoded leniently: each maximal ill-formed subsequence becomes U+FFFD.
void append_utf8_lenient(std::string_view bytes, std::string* out);

// Length of the trailing bytes of `bytes` that are a valid but incomplete UTF-8 prefix (0..3):
// bytes a streaming decoder must hold back until more arrive.
size_t incomplete_utf8_tail(std::string_view bytes);

}  // namespace pixtral::tokenizer
