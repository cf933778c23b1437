// ref: spec/inputs.md §3.5 (json.dumps rules); CPython Objects/floatobject.c (float_repr, 'r' mode)
#include "prompt/py_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/check.h"

namespace pixtral::prompt {
namespace {

void append_py_string(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(c);  // ensure_ascii=False: UTF-8 (and U+007F, U+2028) written raw
        }
    }
  }
  out->push_back('"');
}

void dump(const Json& v, std::string* out) {
  switch (v.type()) {
    case Json::value_t::null: out->append("null"); break;
    case Json::value_t::boolean: out->append(v.get<bool>() ? "true" : "false"); break;
    case Json::value_t::number_integer: out->append(std::to_string(v.get<int64_t>())); break;
    case Json::value_t::number_unsigned: out->append(std::to_string(v.get<uint64_t>())); break;
    case Json::value_t::number_float: out->append(py_float_repr(v.get<double>())); break;
    case Json::value_t::string: append_py_string(v.get_ref<const std::string&>(), out); break;
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const Json& e : v) {
        if (!first) out->append(", ");
        first = false;
        dump(e, out);
      }
      out->push_back(']');
      break;
    }
    case Json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, e] : v.items()) {
        if (!first) out->append(", ");
        first = false;
        append_py_string(key, out);
        out->append(": ");
        dump(e, out);
      }
      out->push_back('}');
      break;
    }
    default: PX_CHECK_MSG(false, "binary or discarded JSON value has no Python form");
  }
}

}  // namespace

std::string py_float_repr(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  // Shortest round-trip digits, as Python's repr: "d.dddde+XX".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  PX_CHECK(res.ec == std::errc());
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  if (decpt <= -4 || decpt > 16) {
    out.push_back(digits[0]);
    if (digits.size() > 1) out.append(".").append(digits.substr(1));
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + ebuf;
  }
  if (decpt <= 0) return out + "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  if (static_cast<size_t>(decpt) >= digits.size()) {
    return out + digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
  }
  return out + digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
}

std::string py_json_dumps(const Json& value) {
  std::string out;
  dump(value, &out);
  return out;
}

std::optional<Json> py_json_loads(std::string_view text) {
  Json parsed = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

std::string normalize_json_content(std::string_view text) {
  if (text.empty()) return "{}";
  std::optional<Json> parsed = py_json_loads(text);
  if (!parsed) return std::string(text);
  return py_json_dumps(*parsed);
}

}  // namespace pixtral::prompt
