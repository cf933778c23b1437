// Differential test: our chat encoder vs mistral_common 1.13.1 on the conversations that
// tools/chat_cases.py generated (PIXTRAL_CHAT_CASES = its output folder). Token ids must be equal
// and every image grid (rows, cols) too; a request mistral_common rejects must be rejected.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "prompt/chat_encoder.h"

namespace pixtral::prompt {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChatDifferential, MatchesMistralCommon) {
  const char* dir = std::getenv("PIXTRAL_CHAT_CASES");
  if (dir == nullptr) GTEST_SKIP() << "PIXTRAL_CHAT_CASES not set (run through ctest)";
  nlohmann::json manifest = nlohmann::json::parse(read_file(std::string(dir) + "/cases.json"));
  auto tok = tokenizer::Tokenizer::load(manifest["tokenizer"].get<std::string>());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  auto encoder = ChatEncoder::create(**tok);
  ASSERT_TRUE(encoder.is_ok()) << encoder.status().to_string();

  int compared = 0, rejected = 0, failures = 0;
  for (const auto& c : manifest["cases"]) {
    std::string name = c["name"].get<std::string>();
    auto request = parse_chat_request(read_file(std::string(dir) + "/" + c["request"].get<std::string>()));
    Result<EncodedChat> encoded = request.is_ok() ? encoder->encode(*request) : Result<EncodedChat>(request.status());
    if (c.contains("error")) {
      ++rejected;
      EXPECT_FALSE(encoded.is_ok()) << name << ": mistral_common rejected it (" << c["error"] << ") but we accepted";
      failures += encoded.is_ok();
      continue;
    }
    ++compared;
    if (!encoded.is_ok()) {
      ADD_FAILURE() << name << ": " << encoded.status().to_string();
      ++failures;
      continue;
    }
    std::vector<TokenId> expected = c["tokens"].get<std::vector<TokenId>>();
    if (encoded->tokens != expected) {
      size_t i = 0;
      while (i < expected.size() && i < encoded->tokens.size() && expected[i] == encoded->tokens[i]) ++i;
      ADD_FAILURE() << name << ": tokens differ at index " << i << " (ours " << encoded->tokens.size()
                    << " tokens, mistral_common " << expected.size() << ")";
      ++failures;
      continue;
    }
    const auto& grids = c["images"];
    ASSERT_EQ(encoded->slots.size(), grids.size()) << name;
    ASSERT_EQ(encoded->images.size(), grids.size()) << name;
    for (size_t k = 0; k < grids.size(); ++k) {
      const ImageSlot& slot = encoded->slots[k];
      EXPECT_EQ(slot.rows, grids[k][0].get<int64_t>()) << name << " image " << k;
      EXPECT_EQ(slot.cols, grids[k][1].get<int64_t>()) << name << " image " << k;
      EXPECT_EQ(encoded->tokens[static_cast<size_t>(slot.first_token)], 10) << name << " image " << k;
    }
    if (failures > 20) break;  // enough to diagnose
  }
  EXPECT_GE(compared, 250);
  EXPECT_GE(rejected, 10);
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace pixtral::prompt
