// Reading and writing tekken.json. ref: spec/inputs.md §1
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_parts.h"

namespace pixtral::tokenizer {
namespace {

using nlohmann::json;

constexpr std::string_view kVersions[] = {"v1", "v2", "v3", "v7", "v11", "v13", "v15"};

// mistral_common's built-in names for files without "special_tokens" (versions <= v7).
// ref: spec/inputs.md §1.4 (Tekkenizer.DEPRECATED_SPECIAL_TOKENS)
constexpr const char* kFrozenSpecials[] = {
    "<unk>",          "<s>",           "</s>",           "[INST]",        "[/INST]",
    "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]",
    "[IMG]",          "<pad>",         "[IMG_BREAK]",    "[IMG_END]",     "[PREFIX]",
    "[MIDDLE]",       "[SUFFIX]",      "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"};

// The pattern of tekken_240911.json (Pixtral-12B-2409). ref: spec/inputs.md §1.6
constexpr const char* kPixtralPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Status field_error(const std::string& field, const std::string& why) {
  return invalid_argument("field '" + field + "': " + why);
}

Result<int64_t> get_int(const json& obj, const std::string& key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return field_error(where + key, "missing");
  if (!it->is_number_integer()) return field_error(where + key, "must be an integer");
  return it->get<int64_t>();
}

Result<std::string> get_string(const json& obj, const std::string& key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return field_error(where + key, "missing");
  if (!it->is_string()) return field_error(where + key, "must be a string");
  return it->get<std::string>();
}

// ImageConfig(**section): exactly image_patch_size, max_image_size, optional spatial_merge_size,
// all > 0. ref: spec/inputs.md §1.5
Result<ImageTokenConfig> read_image_section(const json& section, const std::string& name) {
  if (!section.is_object()) return field_error(name, "must be an object");
  for (const auto& [key, value] : section.items()) {
    if (key != "image_patch_size" && key != "max_image_size" && key != "spatial_merge_size") {
      return field_error(name + "." + key, "unknown key (expected image_patch_size, max_image_size, "
                                           "spatial_merge_size)");
    }
  }
  ImageTokenConfig config;
  PX_ASSIGN_OR_RETURN(config.patch_size, get_int(section, "image_patch_size", name + "."));
  PX_ASSIGN_OR_RETURN(config.max_image_size, get_int(section, "max_image_size", name + "."));
  if (section.contains("spatial_merge_size")) {
    PX_ASSIGN_OR_RETURN(config.spatial_merge_size, get_int(section, "spatial_merge_size", name + "."));
  }
  if (config.patch_size <= 0 || config.max_image_size <= 0 || config.spatial_merge_size <= 0) {
    return field_error(name, "image_patch_size, max_image_size and spatial_merge_size must be > 0");
  }
  return config;
}

Status read_specials(const json& doc, int version_index, TokenizerParts* parts) {
  auto it = doc.find("special_tokens");
  if (it == doc.end() || it->is_null()) {
    if (version_index > tekken_version_index("v7")) {
      return field_error("special_tokens", "missing; mandatory for versions after v7");
    }
    parts->specials.assign(std::begin(kFrozenSpecials), std::end(kFrozenSpecials));
    return Status::ok();
  }
  if (!it->is_array()) return field_error("special_tokens", "must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& entry = (*it)[i];
    const std::string where = "special_tokens[" + std::to_string(i) + "].";
    if (!entry.is_object()) return field_error(where, "must be an object");
    PX_ASSIGN_OR_RETURN(int64_t rank, get_int(entry, "rank", where));
    PX_ASSIGN_OR_RETURN(std::string str, get_string(entry, "token_str", where));
    // The token id of a special is its position (KEEP decoding indexes the list).
    if (rank != static_cast<int64_t>(i)) {
      return field_error(where + "rank", "is " + std::to_string(rank) + ", expected " + std::to_string(i));
    }
    parts->specials.push_back(std::move(str));
  }
  return Status::ok();
}

Status read_vocab(const json& vocab, int64_t keep, RankTable* ranks) {
  ranks->reserve(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i) {
    const json& entry = vocab[static_cast<size_t>(i)];
    const std::string where = "vocab[" + std::to_string(i) + "]";
    if (!entry.is_object() || entry.size() != 3 || !entry.contains("rank") ||
        !entry.contains("token_bytes") || !entry.contains("token_str")) {
      return field_error(where, "must have exactly the keys rank, token_bytes, token_str");
    }
    PX_ASSIGN_OR_RETURN(int64_t rank, get_int(entry, "rank", where + "."));
    if (rank != i) return field_error(where + ".rank", "is " + std::to_string(rank) + ", expected " + std::to_string(i));
    PX_ASSIGN_OR_RETURN(std::string b64, get_string(entry, "token_bytes", where + "."));
    std::optional<std::string> bytes = base64_decode(b64);
    if (!bytes) return field_error(where + ".token_bytes", "is not valid base64");
    if (bytes->empty()) return field_error(where + ".token_bytes", "is empty");
    if (i < 256 && (bytes->size() != 1 || static_cast<uint8_t>((*bytes)[0]) != i)) {
      return field_error(where + ".token_bytes", "must be the single byte " + std::to_string(i));
    }
    if (!ranks->add(*bytes)) return field_error(where + ".token_bytes", "duplicates an earlier entry's bytes");
  }
  return Status::ok();
}

Result<TokenizerParts> read_tekken(const json& doc) {
  if (!doc.is_object()) return invalid_argument("top level must be a JSON object");
  auto config_it = doc.find("config");
  if (config_it == doc.end() || !config_it->is_object()) return field_error("config", "missing or not an object");
  const json& config = *config_it;
  TokenizerParts parts;
  PX_ASSIGN_OR_RETURN(parts.version, get_string(config, "version", "config."));
  const int version_index = tekken_version_index(parts.version);
  if (version_index < 0) {
    return field_error("config.version", "unknown version '" + parts.version + "' (expected v1, v2, v3, v7, v11, v13 or v15)");
  }
  PX_ASSIGN_OR_RETURN(parts.pattern, get_string(config, "pattern", "config."));
  PX_ASSIGN_OR_RETURN(int64_t vocab_size, get_int(config, "default_vocab_size", "config."));
  PX_ASSIGN_OR_RETURN(int64_t num_special, get_int(config, "default_num_special_tokens", "config."));
  auto vocab_it = doc.find("vocab");
  if (vocab_it == doc.end() || !vocab_it->is_array()) return field_error("vocab", "missing or not an array");
  const int64_t vocab_len = static_cast<int64_t>(vocab_it->size());
  if (num_special < 0) return field_error("config.default_num_special_tokens", "must be >= 0");
  if (vocab_size > vocab_len + num_special) {
    return field_error("config.default_vocab_size", std::to_string(vocab_size) + " exceeds len(vocab) " +
                       std::to_string(vocab_len) + " + default_num_special_tokens " + std::to_string(num_special));
  }
  // Every byte must be a token, so that any text is encodable.
  if (vocab_size - num_special < 256) {
    return field_error("config.default_vocab_size", "leaves fewer than 256 BPE tokens after the " +
                       std::to_string(num_special) + " special tokens");
  }
  PX_RETURN_IF_ERROR(read_specials(doc, version_index, &parts));
  if (static_cast<int64_t>(parts.specials.size()) > num_special) {
    return field_error("special_tokens", std::to_string(parts.specials.size()) + " entries exceed default_num_special_tokens " +
                       std::to_string(num_special));
  }
  for (int64_t r = static_cast<int64_t>(parts.specials.size()); r < num_special; ++r) {
    parts.specials.push_back("<SPECIAL_" + std::to_string(r) + ">");
  }
  parts.ranks = std::make_unique<RankTable>();
  PX_RETURN_IF_ERROR(read_vocab(*vocab_it, vocab_size - num_special, parts.ranks.get()));
  // "multimodal" (legacy name, <= v11) wins over "image", as in Tekkenizer.from_file; an empty
  // section counts as absent there (Python truthiness).
  auto mm = doc.find("multimodal");
  auto image = doc.find("image");
  if (mm != doc.end() && !mm->is_null() && !mm->empty()) {
    if (version_index > tekken_version_index("v11")) {
      return field_error("multimodal", "must be named 'image' for versions after v11");
    }
    PX_ASSIGN_OR_RETURN(parts.image, read_image_section(*mm, "multimodal"));
  } else if (image != doc.end() && !image->is_null() && !image->empty()) {
    PX_ASSIGN_OR_RETURN(parts.image, read_image_section(*image, "image"));
  }
  auto msb = doc.find("model_settings_builder");
  if (msb != doc.end() && !msb->is_null() && version_index < tekken_version_index("v15")) {
    return field_error("model_settings_builder", "only allowed for versions v15 and later");
  }
  return parts;
}

}  // namespace

int tekken_version_index(std::string_view version) {
  for (size_t i = 0; i < std::size(kVersions); ++i) {
    if (kVersions[i] == version) return static_cast<int>(i);
  }
  return -1;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_tekken_json(std::string_view json_text,
                                                               const std::string& file_name) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument(file_name + ": not valid JSON");
  Result<TokenizerParts> parts = read_tekken(doc);
  if (!parts.is_ok()) return parts.status().with_context(file_name);
  Result<std::unique_ptr<Tokenizer>> tokenizer = assemble(std::move(parts).value());
  if (!tokenizer.is_ok()) return tokenizer.status().with_context(file_name);
  return tokenizer;
}

std::string make_byte_level_tekken_json(int64_t num_special_tokens) {
  json vocab = json::array();
  for (int b = 0; b < 256; ++b) {
    const std::string bytes(1, static_cast<char>(b));
    vocab.push_back({{"rank", b},
                     {"token_bytes", base64_encode(bytes)},
                     {"token_str", b < 0x80 ? json(bytes) : json(nullptr)}});
  }
  json doc = {
      {"config",
       {{"pattern", kPixtralPattern},
        {"num_vocab_tokens", 256},
        {"default_vocab_size", 256 + num_special_tokens},
        {"default_num_special_tokens", num_special_tokens},
        {"version", "v3"}}},
      {"vocab", vocab},
      {"image", {{"image_patch_size", 16}, {"max_image_size", 1024}}},
  };
  return doc.dump(2);
}

}  // namespace pixtral::tokenizer
