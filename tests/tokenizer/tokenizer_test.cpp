// Unit tests of the tokenizer that need no reference library: loading and its validation errors,
// BPE merge order, decode policies, lenient UTF-8, streaming. ref: spec/inputs.md §1, §2
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_parts.h"
#include "tokenizer/utf8.h"

namespace pixtral::tokenizer {
namespace {

using nlohmann::json;

json byte_level_doc() { return json::parse(make_byte_level_tekken_json()); }

// A byte-level file plus extra BPE tokens at ranks 256, 257, ...
json doc_with_tokens(const std::vector<std::string>& extra) {
  json doc = byte_level_doc();
  for (const std::string& bytes : extra) {
    const int64_t rank = static_cast<int64_t>(doc["vocab"].size());
    doc["vocab"].push_back({{"rank", rank}, {"token_bytes", base64_encode(bytes)}, {"token_str", bytes}});
  }
  doc["config"]["default_vocab_size"] = 1000 + static_cast<int64_t>(doc["vocab"].size());
  return doc;
}

std::unique_ptr<Tokenizer> load_ok(const json& doc) {
  auto tok = Tokenizer::from_tekken_json(doc.dump(), "test.json");
  EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
  return tok.is_ok() ? std::move(tok).value() : nullptr;
}

std::string load_error(const json& doc) {
  auto tok = Tokenizer::from_tekken_json(doc.dump(), "test.json");
  EXPECT_FALSE(tok.is_ok());
  return tok.is_ok() ? "" : tok.status().message();
}

std::vector<TokenId> enc(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode(text, false, false);
  EXPECT_TRUE(ids.is_ok()) << ids.status().to_string();
  return ids.is_ok() ? *ids : std::vector<TokenId>{};
}

TEST(Tokenizer, ByteLevelFileLoads) {
  auto tok = load_ok(byte_level_doc());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 1256);
  EXPECT_EQ(tok->num_special_tokens(), 1000);
  EXPECT_EQ(tok->version(), "v3");
  EXPECT_EQ(tok->special_id("[IMG_BREAK]"), 12);
  EXPECT_EQ(tok->special_id("<SPECIAL_999>"), 999);
  EXPECT_FALSE(tok->special_id("<SPECIAL_1000>").has_value());
  ASSERT_TRUE(tok->image_config().has_value());
  EXPECT_EQ(tok->image_config()->patch_size, 16);
  EXPECT_EQ(tok->image_config()->max_image_size, 1024);
  EXPECT_EQ(enc(*tok, "hé"), (std::vector<TokenId>{1000 + 'h', 1000 + 0xC3, 1000 + 0xA9}));
  EXPECT_EQ(tok->token_bytes(1000 + 'h'), "h");
  EXPECT_EQ(tok->token_bytes(3), "[INST]");
}

TEST(Tokenizer, VocabularyIsTruncatedToDefaultVocabSize) {
  json doc = doc_with_tokens({"ab", "abc"});
  doc["config"]["default_vocab_size"] = 1257;  // keeps "ab" (rank 256), drops "abc"
  auto tok = load_ok(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 1257);
  EXPECT_EQ(enc(*tok, "abc"), (std::vector<TokenId>{1256, 1000 + 'c'}));
}

TEST(Tokenizer, MergesLowestRankFirstAndLeftmostOnTies) {
  // "bc" outranks "ab": "abc" -> a + bc. "aaa" -> aa + a (leftmost pair first).
  auto tok = load_ok(doc_with_tokens({"bc", "ab", "aa"}));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(enc(*tok, "abc"), (std::vector<TokenId>{1000 + 'a', 1256}));
  EXPECT_EQ(enc(*tok, "aaa"), (std::vector<TokenId>{1258, 1000 + 'a'}));
}

TEST(Tokenizer, WholePieceLookupComesBeforeMerging) {
  // "xyz" is a token although neither "xy" nor "yz" is: tiktoken looks the piece up first.
  auto tok = load_ok(doc_with_tokens({"xyz"}));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(enc(*tok, "xyz"), (std::vector<TokenId>{1256}));
  EXPECT_EQ(enc(*tok, "xyzw"), (std::vector<TokenId>{1000 + 'x', 1000 + 'y', 1000 + 'z', 1000 + 'w'}));
}

TEST(Tokenizer, LongPiecesMergeLikeShortOnes) {
  // 300 letters are one piece (> the quadratic-merge limit): pairs first, then quadruples.
  auto tok = load_ok(doc_with_tokens({"aa", "aaaa"}));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(enc(*tok, std::string(300, 'a')), std::vector<TokenId>(75, 1257));
  std::vector<TokenId> expected(25, 1257);  // 102 = 25 quadruples + one pair
  expected.push_back(1256);
  EXPECT_EQ(enc(*tok, std::string(102, 'a')), expected);
}

TEST(Tokenizer, InvalidUtf8InputIsAnError) {
  auto tok = load_ok(byte_level_doc());
  ASSERT_NE(tok, nullptr);
  auto ids = tok->encode("ok\xC3(", false, false);
  ASSERT_FALSE(ids.is_ok());
  EXPECT_NE(ids.status().message().find("UTF-8"), std::string::npos);
  EXPECT_NE(ids.status().message().find("byte 2"), std::string::npos);
}

TEST(Tokenizer, DecodePolicies) {
  auto tok = load_ok(byte_level_doc());
  ASSERT_NE(tok, nullptr);
  const std::vector<TokenId> ids = {1, 1000 + 'h', 1000 + 'i', 4, 2};
  EXPECT_EQ(tok->decode(ids, SpecialTokenPolicy::kKeep).value(), "<s>hi[/INST]</s>");
  EXPECT_EQ(tok->decode(ids, SpecialTokenPolicy::kIgnore).value(), "hi");
  auto raised = tok->decode(ids, SpecialTokenPolicy::kRaise);
  ASSERT_FALSE(raised.is_ok());
  EXPECT_NE(raised.status().message().find("'<s>'"), std::string::npos);
  EXPECT_FALSE(tok->decode({1256}, SpecialTokenPolicy::kKeep).is_ok());  // outside the vocabulary
  EXPECT_FALSE(tok->decode({-1}, SpecialTokenPolicy::kKeep).is_ok());
  // A character split by a special id decodes as U+FFFD on both sides (runs decode separately).
  EXPECT_EQ(tok->decode({1000 + 0xC3, 10, 1000 + 0xA9}, SpecialTokenPolicy::kKeep).value(),
            "\xEF\xBF\xBD[IMG]\xEF\xBF\xBD");
}

TEST(Utf8, LenientDecodingReplacesMaximalSubparts) {
  // Spec examples (spec/inputs.md §2.3, verified there against Python's errors="replace").
  const std::string r = "\xEF\xBF\xBD";
  auto lenient = [](std::string_view s) { std::string out; append_utf8_lenient(s, &out); return out; };
  EXPECT_EQ(lenient("\xE6\x97"), r);
  EXPECT_EQ(lenient("\xED\xA0\x80"), r + r + r);
  EXPECT_EQ(lenient("\xC0\xAF"), r + r);
  EXPECT_EQ(lenient("\xF0\x9F\x99"), r);
  EXPECT_EQ(lenient("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(lenient("a\xF0\x9F\x99\x82z"), "a\xF0\x9F\x99\x82z");
}

TEST(Streaming, MultiByteCharactersSplitAcrossTokens) {
  auto tok = load_ok(byte_level_doc());
  ASSERT_NE(tok, nullptr);
  StreamingDetokenizer stream(*tok);
  const std::string text = "é🙂x";
  std::vector<std::string> outputs;
  for (unsigned char c : text) outputs.push_back(stream.push(1000 + c));
  EXPECT_EQ(outputs, (std::vector<std::string>{"", "é", "", "", "", "🙂", "x"}));
  EXPECT_EQ(stream.flush(), "");
  // An incomplete tail comes out as U+FFFD at flush; specials follow the policy.
  StreamingDetokenizer keep(*tok, SpecialTokenPolicy::kKeep);
  EXPECT_EQ(keep.push(1000 + 0xF0), "");
  EXPECT_EQ(keep.push(1000 + 0x9F), "");
  EXPECT_EQ(keep.push(2), "\xEF\xBF\xBD</s>");
  EXPECT_EQ(keep.push(1000 + 0xE6), "");
  EXPECT_EQ(keep.flush(), "\xEF\xBF\xBD");
}

TEST(Pretokenizer, WhitespaceIsUnicodeWhiteSpaceNotPcreDefault) {
  // U+180E is not White_Space (Rust's \s) although PCRE2's \s matches it: "!\u180E" must stay one
  // punctuation piece, as tiktoken splits it.
  auto tok = load_ok(byte_level_doc());
  ASSERT_NE(tok, nullptr);
  auto pre = PreTokenizer::compile(tok->pattern());
  ASSERT_TRUE(pre.is_ok());
  std::vector<std::string> pieces;
  ASSERT_TRUE((*pre)->split("!\xE1\xA0\x8E", [&](std::string_view p) { pieces.emplace_back(p); }).is_ok());
  EXPECT_EQ(pieces, (std::vector<std::string>{"!\xE1\xA0\x8E"}));
  pieces.clear();
  ASSERT_TRUE((*pre)->split("Hello world\n\n  x", [&](std::string_view p) { pieces.emplace_back(p); }).is_ok());
  EXPECT_EQ(pieces, (std::vector<std::string>{"Hello", " world", "\n\n", " ", " x"}));
}

TEST(Validation, Errors) {
  auto contains = [](const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
  };
  EXPECT_TRUE(contains(Tokenizer::from_tekken_json("{not json", "t.json").status().message(), "t.json: not valid JSON"));
  json doc = byte_level_doc();
  doc["config"]["version"] = "v4";
  EXPECT_TRUE(contains(load_error(doc), "config.version"));
  doc = byte_level_doc();
  doc["config"].erase("version");
  EXPECT_TRUE(contains(load_error(doc), "config.version"));
  doc = byte_level_doc();
  doc["vocab"][5]["rank"] = 6;
  EXPECT_TRUE(contains(load_error(doc), "vocab[5].rank"));
  doc = byte_level_doc();
  doc["vocab"][65]["token_bytes"] = base64_encode("B");
  EXPECT_TRUE(contains(load_error(doc), "vocab[65].token_bytes"));
  doc = doc_with_tokens({"ab", "ab"});
  EXPECT_TRUE(contains(load_error(doc), "vocab[257].token_bytes': duplicates"));
  doc = doc_with_tokens({"ab"});
  doc["vocab"][256]["token_bytes"] = "YW*=";
  EXPECT_TRUE(contains(load_error(doc), "base64"));
  doc = byte_level_doc();
  doc["vocab"][7]["extra"] = 1;
  EXPECT_TRUE(contains(load_error(doc), "exactly the keys"));
  doc = byte_level_doc();
  doc["config"]["default_vocab_size"] = 1257;  // more than len(vocab) + specials
  EXPECT_TRUE(contains(load_error(doc), "default_vocab_size"));
  doc = byte_level_doc();
  doc["image"]["foo"] = 1;
  EXPECT_TRUE(contains(load_error(doc), "image.foo"));
  doc = byte_level_doc();
  doc["config"]["version"] = "v13";
  EXPECT_TRUE(contains(load_error(doc), "special_tokens"));  // mandatory after v7
  doc = byte_level_doc();
  doc["special_tokens"] = json::array({{{"rank", 0}, {"token_str", "<s>"}, {"is_control", true}},
                                       {{"rank", 1}, {"token_str", "<s>"}, {"is_control", true}}});
  EXPECT_TRUE(contains(load_error(doc), "unique"));
  doc = byte_level_doc();
  doc["config"]["pattern"] = "([a-";
  EXPECT_TRUE(contains(load_error(doc), "config.pattern"));
  doc = byte_level_doc();
  doc["multimodal"] = doc["image"];
  doc["config"]["version"] = "v13";
  doc["special_tokens"] = json::array({{{"rank", 0}, {"token_str", "<unk>"}, {"is_control", true}}});
  EXPECT_TRUE(contains(load_error(doc), "multimodal"));
  EXPECT_EQ(Tokenizer::load("/nonexistent/tekken.json").status().code(), StatusCode::kNotFound);
}

TEST(Validation, SpecialTokensFromFileAndFillers) {
  json doc = byte_level_doc();
  doc["config"]["version"] = "v13";
  doc["special_tokens"] = json::array({{{"rank", 0}, {"token_str", "<unk>"}, {"is_control", true}},
                                       {{"rank", 1}, {"token_str", "<s>"}, {"is_control", true}},
                                       {{"rank", 2}, {"token_str", "</s>"}, {"is_control", true}}});
  auto tok = load_ok(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->pad_id(), -1);  // no "<pad>" in this file
  EXPECT_EQ(tok->token_bytes(3), "<SPECIAL_3>");
}

}  // namespace
}  // namespace pixtral::tokenizer
