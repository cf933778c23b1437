// pixtral tokenize --tokenizer FILE (--text S | --file F) [--bos] [--eos]
//   prints the token ids as a JSON array (plain text encoding, no special-token parsing).
// pixtral detokenize --tokenizer FILE --ids '[1,2,3]' [--policy keep|ignore|raise]
//   prints the decoded text (default policy: ignore, as mistral_common).
// FILE: tekken.json or a Hugging Face tokenizer.json. ref: spec/inputs.md §2
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "tokenizer/tokenizer.h"

namespace pixtral::cli {
namespace {

using tokenizer::SpecialTokenPolicy;
using tokenizer::TokenId;

int run_tokenize(const Args& args) {
  FlagReader flags(args);
  const auto path = flags.value("--tokenizer"), text = flags.value("--text"), file = flags.value("--file");
  const bool bos = flags.flag("--bos"), eos = flags.flag("--eos");
  if (auto err = flags.finish(); !err.empty()) return usage_error("tokenize", err);
  if (!path || (text.has_value() == file.has_value())) {
    return usage_error("tokenize", "--tokenizer and exactly one of --text or --file are required");
  }
  std::string input;
  if (text) {
    input = *text;
  } else {
    std::ifstream in(*file, std::ios::binary);
    if (!in) return failure("tokenize", *file + ": cannot open");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    input = buffer.str();
  }
  auto tok = tokenizer::Tokenizer::load(*path);
  if (!tok.is_ok()) return failure("tokenize", tok.status().to_string());
  auto ids = (*tok)->encode(input, bos, eos);
  if (!ids.is_ok()) return failure("tokenize", ids.status().to_string());
  std::printf("%s\n", nlohmann::json(*ids).dump().c_str());
  return 0;
}

int run_detokenize(const Args& args) {
  FlagReader flags(args);
  const auto path = flags.value("--tokenizer"), ids_arg = flags.value("--ids");
  const std::string policy_name = flags.value("--policy").value_or("ignore");
  if (auto err = flags.finish(); !err.empty()) return usage_error("detokenize", err);
  if (!path || !ids_arg) return usage_error("detokenize", "--tokenizer and --ids are required");
  SpecialTokenPolicy policy;
  if (policy_name == "keep") policy = SpecialTokenPolicy::kKeep;
  else if (policy_name == "ignore") policy = SpecialTokenPolicy::kIgnore;
  else if (policy_name == "raise") policy = SpecialTokenPolicy::kRaise;
  else return usage_error("detokenize", "--policy must be keep, ignore or raise, got '" + policy_name + "'");
  const nlohmann::json parsed = nlohmann::json::parse(*ids_arg, nullptr, /*allow_exceptions=*/false);
  std::vector<TokenId> ids;
  bool ok = parsed.is_array();
  for (size_t i = 0; ok && i < parsed.size(); ++i) {
    ok = parsed[i].is_number_integer() && parsed[i].get<int64_t>() >= INT32_MIN && parsed[i].get<int64_t>() <= INT32_MAX;
    if (ok) ids.push_back(static_cast<TokenId>(parsed[i].get<int64_t>()));
  }
  if (!ok) return usage_error("detokenize", "--ids must be a JSON array of integers, e.g. '[1,2,3]'");
  auto tok = tokenizer::Tokenizer::load(*path);
  if (!tok.is_ok()) return failure("detokenize", tok.status().to_string());
  auto text = (*tok)->decode(ids, policy);
  if (!text.is_ok()) return failure("detokenize", text.status().to_string());
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::printf("\n");
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(tokenize, "encode text to token ids (JSON) with a tekken.json/tokenizer.json", run_tokenize);
PX_REGISTER_COMMAND(detokenize, "decode a JSON list of token ids to text", run_detokenize);

}  // namespace pixtral::cli
