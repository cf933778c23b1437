// Reading a Hugging Face tokenizer.json converted from a tekken vocabulary (transformers'
// MistralConverter): a byte-level BPE model whose ids are the tekken ids, the specials as added
// tokens at ids 0..N-1, and a Split(pattern) + ByteLevel(use_regex=false) pre-tokenizer.
// ref: spec/inputs.md §2.4 (HF conversions), docs/tokenizer.md
#include <algorithm>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_parts.h"

namespace pixtral::tokenizer {
namespace {

using nlohmann::json;

// GPT-2's bytes_to_unicode, inverted: code point -> byte (-1 when not a byte's image).
std::vector<int> unicode_to_byte() {
  std::vector<int> table(512, -1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[printable ? b : 256 + extra++] = b;
  }
  return table;
}

// Decodes the byte-level string of a vocab entry back to raw bytes.
std::optional<std::string> byte_level_to_bytes(const std::string& s, const std::vector<int>& table) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    if (c < 0x80) cp = c, i += 1;
    else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu), i += 2;
    else return std::nullopt;  // byte-level images are all below U+0200
    if (cp >= table.size() || table[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(table[cp]));
  }
  return out;
}

// The Split regex of the pre-tokenizer (alone or inside a Sequence).
std::optional<std::string> find_split_pattern(const json& pre) {
  if (!pre.is_object()) return std::nullopt;
  if (pre.value("type", "") == "Split" && pre.contains("pattern") && pre["pattern"].contains("Regex")) {
    return pre["pattern"]["Regex"].get<std::string>();
  }
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
    for (const json& p : pre["pretokenizers"]) {
      if (auto found = find_split_pattern(p)) return found;
    }
  }
  return std::nullopt;
}

Status read_hf_specials(const json& doc, TokenizerParts* parts) {
  auto added = doc.find("added_tokens");
  if (added == doc.end() || !added->is_array()) return invalid_argument("field 'added_tokens': missing or not an array");
  std::vector<std::pair<int64_t, std::string>> specials;
  for (const json& t : *added) {
    if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t["id"].is_number_integer() ||
        !t["content"].is_string()) {
      return invalid_argument("field 'added_tokens': entries need an integer 'id' and a string 'content'");
    }
    specials.emplace_back(t["id"].get<int64_t>(), t["content"].get<std::string>());
  }
  std::sort(specials.begin(), specials.end());
  for (size_t i = 0; i < specials.size(); ++i) {
    if (specials[i].first != static_cast<int64_t>(i)) {
      return invalid_argument("field 'added_tokens': ids must be 0..N-1 (the tekken special ids); found id " +
                              std::to_string(specials[i].first) + " at position " + std::to_string(i));
    }
    parts->specials.push_back(std::move(specials[i].second));
  }
  return Status::ok();
}

Status read_hf_vocab(const json& vocab, int64_t num_special, RankTable* ranks) {
  if (!vocab.is_object()) return invalid_argument("field 'model.vocab': missing or not an object");
  const std::vector<int> table = unicode_to_byte();
  std::vector<std::string> by_rank(vocab.size());
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [str, id_json] : vocab.items()) {
    if (!id_json.is_number_integer()) return invalid_argument("field 'model.vocab[\"" + str + "\"]': id must be an integer");
    const int64_t id = id_json.get<int64_t>();
    if (id < num_special) continue;  // the specials, also listed in added_tokens
    const int64_t rank = id - num_special;
    if (rank >= static_cast<int64_t>(by_rank.size()) || seen[rank]) {
      return invalid_argument("field 'model.vocab': ids are not contiguous from " + std::to_string(num_special) +
                              " (id " + std::to_string(id) + ")");
    }
    std::optional<std::string> bytes = byte_level_to_bytes(str, table);
    if (!bytes || bytes->empty()) return invalid_argument("field 'model.vocab': entry " + std::to_string(id) + " is not a byte-level string");
    by_rank[rank] = std::move(*bytes);
    seen[rank] = true;
  }
  size_t count = 0;
  while (count < seen.size() && seen[count]) ++count;
  for (size_t r = count; r < seen.size(); ++r) {
    if (seen[r]) return invalid_argument("field 'model.vocab': ids are not contiguous (gap at id " + std::to_string(count + num_special) + ")");
  }
  ranks->reserve(count);
  for (size_t r = 0; r < count; ++r) {
    if (!ranks->add(by_rank[r])) return invalid_argument("field 'model.vocab': id " + std::to_string(r + num_special) + " duplicates another entry's bytes");
  }
  return Status::ok();
}

Result<TokenizerParts> read_hf(const json& doc) {
  if (!doc.is_object()) return invalid_argument("top level must be a JSON object");
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_object() || model->value("type", "") != "BPE") {
    return invalid_argument("field 'model': missing or not a BPE model");
  }
  TokenizerParts parts;
  parts.version = "v3";  // tokenizer.json carries no tekken version; Pixtral-12B's is v3
  std::optional<std::string> pattern = find_split_pattern(doc.value("pre_tokenizer", json()));
  if (!pattern) return invalid_argument("field 'pre_tokenizer': no Split step with a Regex pattern");
  parts.pattern = *pattern;
  PX_RETURN_IF_ERROR(read_hf_specials(doc, &parts));
  parts.ranks = std::make_unique<RankTable>();
  PX_RETURN_IF_ERROR(read_hf_vocab((*model)["vocab"], static_cast<int64_t>(parts.specials.size()), parts.ranks.get()));
  return parts;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_tokenizer_json(std::string_view json_text,
                                                                     const std::string& file_name) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument(file_name + ": not valid JSON");
  Result<TokenizerParts> parts = read_hf(doc);
  if (!parts.is_ok()) return parts.status().with_context(file_name);
  Result<std::unique_ptr<Tokenizer>> tokenizer = assemble(std::move(parts).value());
  if (!tokenizer.is_ok()) return tokenizer.status().with_context(file_name);
  return tokenizer;
}

}  // namespace pixtral::tokenizer
