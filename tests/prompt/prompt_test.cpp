// Unit tests of the chat layer: Python-compatible JSON, request parsing, validation errors and the
// instruct layout, on the byte-level tokenizer (make_byte_level_tekken_json) so that no data file
// is needed. Exact ids against the real vocabulary are the differential test's job.
#include <gtest/gtest.h>

#include <string>

#include "prompt/chat_encoder.h"
#include "prompt/image_source.h"

namespace pixtral::prompt {
namespace {

constexpr TokenId kBos = 1, kEos = 2, kInst = 3, kEndInst = 4, kImg = 10, kImgBreak = 12, kImgEnd = 13;

// A 24-bit uncompressed BMP of w x h grey pixels, as a data URI.
std::string bmp_data_uri(int w, int h) {
  int row = (w * 3 + 3) / 4 * 4;
  int size = 54 + row * h;
  std::string b(static_cast<size_t>(size), '\0');
  auto put32 = [&](int off, int v) { for (int i = 0; i < 4; ++i) b[off + i] = static_cast<char>((v >> (8 * i)) & 0xff); };
  b[0] = 'B'; b[1] = 'M';
  put32(2, size); put32(10, 54); put32(14, 40); put32(18, w); put32(22, h);
  b[26] = 1; b[28] = 24; put32(34, row * h);
  for (int i = 54; i < size; ++i) b[i] = static_cast<char>(0x80);
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "data:image/bmp;base64,";
  for (size_t i = 0; i < b.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(b[i]) << 16;
    if (i + 1 < b.size()) v |= static_cast<uint8_t>(b[i + 1]) << 8;
    if (i + 2 < b.size()) v |= static_cast<uint8_t>(b[i + 2]);
    out += kAlpha[(v >> 18) & 63];
    out += kAlpha[(v >> 12) & 63];
    out += i + 1 < b.size() ? kAlpha[(v >> 6) & 63] : '=';
    out += i + 2 < b.size() ? kAlpha[v & 63] : '=';
  }
  return out;
}

class ChatEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = tokenizer::Tokenizer::from_tekken_json(tokenizer::make_byte_level_tekken_json(), "byte-level");
    ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
    tok_ = std::move(tok).value();
  }
  Result<EncodedChat> encode(const std::string& body, ChatEncodeOptions options = {}) {
    auto request = parse_chat_request(body);
    if (!request.is_ok()) return request.status();
    auto encoder = ChatEncoder::create(*tok_, options);
    if (!encoder.is_ok()) return encoder.status();
    return encoder->encode(*request);
  }
  // Byte-level vocabulary: byte b has id 1000 + b.
  std::vector<TokenId> bytes(const std::string& s) {
    std::vector<TokenId> ids;
    for (unsigned char c : s) ids.push_back(1000 + c);
    return ids;
  }
  std::string error_of(const std::string& body, ChatEncodeOptions options = {}) {
    auto r = encode(body, options);
    return r.is_ok() ? "<accepted>" : r.status().message();
  }
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

TEST(PyJson, FloatReprMatchesPython) {
  EXPECT_EQ(py_float_repr(22.0), "22.0");
  EXPECT_EQ(py_float_repr(0.1), "0.1");
  EXPECT_EQ(py_float_repr(1e-05), "1e-05");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(py_float_repr(-0.0), "-0.0");
  EXPECT_EQ(py_float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(py_float_repr(123.456), "123.456");
}

TEST(PyJson, DumpsLikePythonEnsureAsciiFalse) {
  auto v = py_json_loads(R"({"b": [1, 2.5, true, null], "a": "é\n\u0001\"\\", "b": {"x": 1e2}})");
  ASSERT_TRUE(v.has_value());
  // A duplicate key keeps its first position and its last value, as a Python dict.
  EXPECT_EQ(py_json_dumps(*v), "{\"b\": {\"x\": 100.0}, \"a\": \"é\\n\\u0001\\\"\\\\\"}");
  EXPECT_EQ(normalize_json_content(""), "{}");
  EXPECT_EQ(normalize_json_content("not json"), "not json");
  EXPECT_EQ(normalize_json_content(" {\"k\" :1} "), "{\"k\": 1}");
}

TEST(ImageSource, Base64AndDataUris) {
  auto ok = decode_base64("aGVsbG8=");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(std::string(ok->begin(), ok->end()), "hello");
  EXPECT_FALSE(decode_base64("aGVsbG8").is_ok());
  EXPECT_FALSE(decode_base64("aGV*bG8=").is_ok());
  auto remote = parse_image_url("https://example.com/a.png", "x", {});
  EXPECT_EQ(remote.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(remote.status().message().find("remote image URLs are not enabled"), std::string::npos);
  EXPECT_FALSE(parse_image_url("data:image/png,abcd", "x", {}).is_ok());
  EXPECT_FALSE(parse_image_url("/images/a.png", "x", ParseOptions{.allow_local_files = false}).is_ok());
  auto file = parse_image_url("file:///a/b.png", "x", {});
  ASSERT_TRUE(file.is_ok());
  EXPECT_EQ(file->location, "/a/b.png");
}

TEST_F(ChatEncoderTest, SystemPromptGoesIntoLastUserTurn) {
  auto r = encode(R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                   {"role": "assistant", "content": "b  "}, {"role": "user", "content": "c"}]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<TokenId> want = {kBos, kInst};
  auto add = [&](const std::vector<TokenId>& v) { want.insert(want.end(), v.begin(), v.end()); };
  add(bytes("a"));
  want.push_back(kEndInst);
  add(bytes("b"));  // trailing spaces stripped
  want.push_back(kEos);
  want.push_back(kInst);
  add(bytes("S\n\nc"));
  want.push_back(kEndInst);
  EXPECT_EQ(r->tokens, want);
}

TEST_F(ChatEncoderTest, ImageGridLayoutAndImageFirstRule) {
  std::string uri = bmp_data_uri(40, 20);  // 40x20 px -> 3 cols x 2 rows of 16 px patches
  auto r = encode(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "C"},
                   {"type": "image_url", "image_url": ")" + uri + R"("}]}]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<TokenId> want = {kBos, kInst, kImg, kImg, kImg, kImgBreak, kImg, kImg, kImg, kImgEnd, 1000 + 'C', kEndInst};
  EXPECT_EQ(r->tokens, want);
  ASSERT_EQ(r->slots.size(), 1u);
  EXPECT_EQ(r->slots[0].first_token, 2);
  EXPECT_EQ(r->slots[0].rows, 2);
  EXPECT_EQ(r->slots[0].cols, 3);
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].width, 40);
}

TEST_F(ChatEncoderTest, ToolCallsAndResultsUseCanonicalJson) {
  auto r = encode(R"({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "tool_calls": [{"id": "abcDEF123", "type": "function",
        "function": {"name": "f", "arguments": "{\"x\":1.0}"}}]},
      {"role": "tool", "tool_call_id": "abcDEF123", "content": "22"}]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<TokenId> want = {kBos, 5};
  auto add = [&](const std::string& s) { auto v = bytes(s); want.insert(want.end(), v.begin(), v.end()); };
  add(R"([{"type": "function", "function": {"name": "f", "description": "", "parameters": {}}}])");
  want.insert(want.end(), {6, kInst});
  add("q");
  want.insert(want.end(), {kEndInst, 9});
  add(R"([{"name": "f", "arguments": {"x": 1.0}, "id": "abcDEF123"}])");
  want.insert(want.end(), {kEos, 7});
  add(R"({"content": 22, "call_id": "abcDEF123"})");
  want.push_back(8);
  EXPECT_EQ(r->tokens, want);
}

TEST_F(ChatEncoderTest, PrefixEndsWithoutEos) {
  auto r = encode(R"({"continue_final_message": true, "messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": "par"}]})");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->ends_in_prefix);
  EXPECT_EQ(r->tokens.back(), 1000 + 'r');
}

TEST_F(ChatEncoderTest, ErrorsNameTheRequestPart) {
  EXPECT_EQ(error_of(R"({"messages": []})"), "messages: the conversation must have at least one message");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "narrator", "content": "x"}]})"),
            "messages[0].role: unknown role 'narrator' (expected system, user, assistant or tool)");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
      {"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "abcdefghi",
      "content": "1"}]})"), "messages[1].tool_calls[0].id: 'call_1' must be 9 characters a-z, A-Z, 0-9");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}]}]})"),
            "messages[0].content[1].image_url.url: invalid base64: unexpected character at offset 0");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": [
      {"type": "image_url", "image_url": "data:image/png;base64"}]}]})"),
            "messages[0].content[0].image_url: invalid data URI: expected data:<mime>;base64,<payload>");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "abcdefghi",
      "content": "1"}]})"), "messages[1].role: unexpected role 'tool' after role 'user'");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})"),
            "messages[1]: the last message must be user or tool, or an assistant with prefix=true "
            "(continue_final_message)");
}

TEST_F(ChatEncoderTest, TooManyImages) {
  std::string part = R"({"type": "image_url", "image_url": ")" + bmp_data_uri(4, 4) + R"("})";
  std::string body = R"({"messages": [{"role": "user", "content": [)" + part + "," + part + "," + part + "]}]}";
  EXPECT_EQ(error_of(body, ChatEncodeOptions{.max_images_per_request = 2}),
            "messages[0].content[2]: too many images: at most 2 per request");
  EXPECT_TRUE(encode(body, ChatEncodeOptions{.max_images_per_request = 3}).is_ok());
}

TEST_F(ChatEncoderTest, InvalidUtf8TextIsRejected) {
  // The JSON parser rejects ill-formed UTF-8 in the body...
  EXPECT_NE(error_of("{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}]}").find("request: invalid JSON"),
            std::string::npos);
  // ... and the encoder rejects it in requests built directly.
  ChatRequest request;
  Message m;
  m.role = Role::kUser;
  m.where = "messages[0]";
  m.content_null = false;
  m.has_content = m.content_is_string = true;
  m.content.push_back(ContentChunk{.text = "ok\xc3", .where = "messages[0].content"});
  request.messages.push_back(m);
  auto encoder = ChatEncoder::create(*tok_);
  ASSERT_TRUE(encoder.is_ok());
  auto r = encoder->encode(request);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("messages[0].content", 0), 0u) << r.status().message();
}

}  // namespace
}  // namespace pixtral::prompt
