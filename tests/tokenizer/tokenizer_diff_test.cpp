// Differential test against mistral_common: the cases file is written at test time by
// tools/tokenizer_cases.py (ids and decodes from the real Tekkenizer; see CMakeLists.txt).
// ref: spec/inputs.md §2, §8
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace pixtral::tokenizer {
namespace {

using nlohmann::json;

struct Fixture {
  json cases;
  std::unique_ptr<Tokenizer> tok;
};

// Loaded once: the real vocabulary takes a moment to parse.
const Fixture& fixture() {
  static Fixture* f = [] {
    auto* fx = new Fixture();
    const char* path = std::getenv("PIXTRAL_TOKENIZER_CASES");
    if (!path) return fx;
    std::ifstream in(path);
    if (!in) return fx;
    fx->cases = json::parse(in);
    auto tok = Tokenizer::load(fx->cases["tekken_path"].get<std::string>());
    if (tok.is_ok()) fx->tok = std::move(tok).value();
    else ADD_FAILURE() << tok.status().to_string();
    return fx;
  }();
  return *f;
}

#define REQUIRE_FIXTURE()                                                                   \
  if (fixture().cases.is_null()) GTEST_SKIP() << "PIXTRAL_TOKENIZER_CASES not set or unreadable " \
                                                 "(run through ctest, which generates it)"; \
  ASSERT_NE(fixture().tok, nullptr)

TEST(TokenizerDiff, RealFileMatchesSpecValues) {
  REQUIRE_FIXTURE();
  const Tokenizer& tok = *fixture().tok;
  EXPECT_EQ(tok.version(), "v3");
  EXPECT_EQ(tok.vocab_size(), 131072);
  EXPECT_EQ(tok.num_special_tokens(), 1000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 11);
  EXPECT_EQ(tok.special_id("[INST]"), 3);
  EXPECT_EQ(tok.special_id("[IMG_END]"), 13);
  ASSERT_TRUE(tok.image_config().has_value());
  EXPECT_EQ(tok.image_config()->patch_size, 16);
  EXPECT_EQ(tok.image_config()->max_image_size, 1024);
  EXPECT_EQ(tok.image_config()->spatial_merge_size, 1);
}

TEST(TokenizerDiff, EncodeMatchesMistralCommon) {
  REQUIRE_FIXTURE();
  const Tokenizer& tok = *fixture().tok;
  const json& cases = fixture().cases["encode"];
  ASSERT_GE(cases.size(), 2000u);
  int failures = 0;
  for (size_t i = 0; i < cases.size() && failures < 10; ++i) {
    const std::string text = cases[i]["text"].get<std::string>();
    const auto expected = cases[i]["ids"].get<std::vector<TokenId>>();
    auto ids = tok.encode(text, false, false);
    ASSERT_TRUE(ids.is_ok()) << ids.status().to_string();
    if (*ids != expected) {
      ++failures;
      ADD_FAILURE() << "case " << i << " text " << json(text).dump() << "\n got      " << json(*ids).dump()
                    << "\n expected " << json(expected).dump();
    }
    auto round = tok.decode(*ids, SpecialTokenPolicy::kRaise);
    ASSERT_TRUE(round.is_ok()) << round.status().to_string();
    EXPECT_EQ(*round, text) << "decode(encode(x)) != x for case " << i;
  }
}

TEST(TokenizerDiff, DecodeMatchesMistralCommon) {
  REQUIRE_FIXTURE();
  const Tokenizer& tok = *fixture().tok;
  for (const json& c : fixture().cases["decode"]) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    auto keep = tok.decode(ids, SpecialTokenPolicy::kKeep);
    auto ignore = tok.decode(ids, SpecialTokenPolicy::kIgnore);
    ASSERT_TRUE(keep.is_ok() && ignore.is_ok());
    EXPECT_EQ(*keep, c["keep"].get<std::string>()) << json(ids).dump();
    EXPECT_EQ(*ignore, c["ignore"].get<std::string>()) << json(ids).dump();
    // Streaming gives the same text when no special id splits a character.
    StreamingDetokenizer stream(tok, SpecialTokenPolicy::kKeep);
    std::string streamed;
    for (TokenId id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, *keep) << json(ids).dump();
  }
}

TEST(TokenizerDiff, EncodeBosEos) {
  REQUIRE_FIXTURE();
  auto ids = fixture().tok->encode("a", true, true);
  ASSERT_TRUE(ids.is_ok());
  EXPECT_EQ(*ids, (std::vector<TokenId>{1, 1097, 2}));  // 'a' = 1000 + 0x61, spec/inputs.md §2.2
}

}  // namespace
}  // namespace pixtral::tokenizer

namespace pixtral::tokenizer {
namespace {

// tokenizer.json from transformers' MistralConverter (tools/tokenizer_to_hf.py) must give the
// same ids as the tekken file.
TEST(TokenizerHf, ConvertedTokenizerJsonGivesIdenticalIds) {
  REQUIRE_FIXTURE();
  const char* hf_path = std::getenv("PIXTRAL_TOKENIZER_HF");
  if (!hf_path || !std::ifstream(hf_path)) {
    GTEST_SKIP() << "no converted tokenizer.json (transformers not importable in the test venv)";
  }
  auto hf = Tokenizer::load(hf_path);
  ASSERT_TRUE(hf.is_ok()) << hf.status().to_string();
  const Tokenizer& ref = *fixture().tok;
  EXPECT_EQ((*hf)->vocab_size(), ref.vocab_size());
  EXPECT_EQ((*hf)->num_special_tokens(), ref.num_special_tokens());
  EXPECT_EQ((*hf)->pattern(), ref.pattern());
  for (TokenId id = 0; id < ref.vocab_size(); ++id) {
    ASSERT_EQ((*hf)->token_bytes(id), ref.token_bytes(id)) << "id " << id;
  }
  for (const json& c : fixture().cases["encode"]) {
    auto ids = (*hf)->encode(c["text"].get<std::string>(), false, false);
    ASSERT_TRUE(ids.is_ok());
    ASSERT_EQ(*ids, c["ids"].get<std::vector<TokenId>>()) << json(c["text"]).dump();
  }
}

}  // namespace
}  // namespace pixtral::tokenizer
