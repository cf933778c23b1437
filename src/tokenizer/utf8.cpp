#include "tokenizer/utf8.h"

#include <cstdint>

namespace pixtral::tokenizer {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Number of bytes a sequence led by `lead` has (0 for bytes that can't lead), and the allowed
// range of its second byte (Unicode Table 3-7: excludes overlongs, surrogates, > U+10FFFF).
struct LeadInfo {
  int length;
  uint8_t lo, hi;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` form a valid prefix of a sequence (>= 1 when the lead is valid), and
// the full length the lead announces.
size_t valid_prefix(std::string_view s, size_t pos, int* full_length) {
  const LeadInfo info = lead_info(static_cast<uint8_t>(s[pos]));
  *full_length = info.length;
  if (info.length <= 1) return info.length;
  size_t n = 1;
  for (int k = 1; k < info.length && pos + k < s.size(); ++k) {
    const uint8_t c = static_cast<uint8_t>(s[pos + k]);
    const bool ok = k == 1 ? (c >= info.lo && c <= info.hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

}  // namespace

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  int full = 0;
  const size_t n = valid_prefix(text, pos, &full);
  return static_cast<int>(n) == full ? n : 0;
}

size_t find_invalid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = utf8_sequence_length(text, pos);
    if (n == 0) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

void append_utf8_lenient(std::string_view bytes, std::string* out) {
  size_t pos = 0, run_start = 0;
  while (pos < bytes.size()) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    int full = 0;
    const size_t n = valid_prefix(bytes, pos, &full);
    if (full > 0 && static_cast<int>(n) == full) {
      pos += n;
      continue;
    }
    // An ill-formed subsequence: the valid prefix (or the single bad byte) becomes one U+FFFD.
    out->append(bytes.substr(run_start, pos - run_start));
    out->append(kReplacement);
    pos += n == 0 ? 1 : n;
    run_start = pos;
  }
  out->append(bytes.substr(run_start));
}

size_t incomplete_utf8_tail(std::string_view bytes) {
  // A lead byte within the last 3 bytes whose valid prefix reaches the end but is too short.
  const size_t size = bytes.size();
  for (size_t back = 1; back <= 3 && back <= size; ++back) {
    const size_t pos = size - back;
    const uint8_t b = static_cast<uint8_t>(bytes[pos]);
    if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: keep looking for its lead
    int full = 0;
    const size_t n = valid_prefix(bytes, pos, &full);
    return (full > static_cast<int>(back) && n == back) ? back : 0;
  }
  return 0;
}

}  // namespace pixtral::tokenizer
