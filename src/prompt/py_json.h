// Python-compatible JSON text: what `json.dumps(x, ensure_ascii=False)` and `json.loads` produce
// and accept, over nlohmann::ordered_json values (key order = order of first appearance, the last
// duplicate's value wins, as a Python dict). The instruct grammar embeds such JSON in the prompt,
// so a single differing byte changes the token ids. ref: spec/inputs.md §3.5
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pixtral::prompt {

using Json = nlohmann::ordered_json;

// json.dumps(value, ensure_ascii=False): separators ", " and ": ", no indent, insertion order,
// floats as Python repr ("22.0", "1e-05", "1e+16"), non-ASCII written raw.
std::string py_json_dumps(const Json& value);

// json.loads(text) when it succeeds, nullopt otherwise. Known gaps against Python: NaN/Infinity
// literals, integers beyond 64 bits and lone-surrogate escapes are rejected here (Python accepts
// them); such text is then treated as "not JSON" (kept as a string). docs/chat-format.md
std::optional<Json> py_json_loads(std::string_view text);

// The normalizer's canonical form of tool-call arguments and tool results (mistral_common
// InstructRequestNormalizer._normalize_json_content): "" -> "{}"; JSON -> dumps(loads(text));
// anything else verbatim.
std::string normalize_json_content(std::string_view text);

// Python's float repr (shortest round-trip digits; exponent form below 1e-4 and from 1e16).
std::string py_float_repr(double value);

}  // namespace pixtral::prompt
