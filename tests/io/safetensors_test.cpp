// safetensors writer -> reader round trips, and every malformed-file case the reader must refuse
// with a message naming the file and the tensor.
#include "io/safetensors.h"

#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "io_test_util.h"

namespace pixtral::io {
namespace {

using testing::raw_safetensors;
using testing::TempDir;
using testing::write_bytes;

TEST(Safetensors, RoundTripDtypesShapesAndMetadata) {
  TempDir tmp;
  const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};       // [2, 3]
  const std::vector<uint16_t> bf16 = {base::f32_to_bf16(1.0f), base::f32_to_bf16(-3.5f)};  // [2]
  const std::vector<uint16_t> f16 = {base::f32_to_f16(0.5f)};                     // [1, 1, 1]
  const float scalar = 42.0f;                                                     // []
  SafetensorsWriter w;
  w.add_f32("b.matrix", {2, 3}, f32.data());
  w.add("a.bf16", DType::kBF16, {2}, bf16.data(), 4);
  w.add("c.f16", DType::kF16, {1, 1, 1}, f16.data(), 2);
  w.add_f32("d.scalar", {}, &scalar);
  w.add("e.empty", DType::kF32, {0, 3}, nullptr, 0);
  w.set_metadata("format", "pt");
  const std::string path = tmp.file("model.safetensors");
  ASSERT_TRUE(w.write(path).is_ok());

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  const auto& ts = (*file)->tensors();
  ASSERT_EQ(ts.size(), 5u);
  EXPECT_EQ(ts[0].name, "a.bf16");  // sorted by name
  EXPECT_EQ(ts[4].name, "e.empty");
  const TensorView* m = (*file)->find("b.matrix");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->dtype, DType::kF32);
  EXPECT_EQ(m->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m->shape_string(), "[2, 3]");
  EXPECT_EQ(m->numel(), 6);
  ASSERT_EQ(m->nbytes, 24u);
  EXPECT_EQ(std::memcmp(m->data, f32.data(), 24), 0);
  EXPECT_EQ(m->file, path);
  const TensorView* b = (*file)->find("a.bf16");
  std::vector<float> got(2);
  ASSERT_TRUE(base::convert_to_f32(b->dtype, b->data, got.data(), 2));
  EXPECT_EQ(got, (std::vector<float>{1.0f, -3.5f}));
  const TensorView* s = (*file)->find("d.scalar");
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numel(), 1);
  EXPECT_EQ(s->shape_string(), "[]");
  float sv;
  std::memcpy(&sv, s->data, 4);
  EXPECT_EQ(sv, 42.0f);
  const TensorView* e = (*file)->find("e.empty");
  EXPECT_EQ(e->numel(), 0);
  EXPECT_EQ(e->nbytes, 0u);
  EXPECT_EQ((*file)->find("missing"), nullptr);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
}

TEST(Safetensors, WriterLayoutSortedOffsetsAndPaddedHeader) {
  TempDir tmp;
  const std::vector<float> x(5, 1.0f);
  SafetensorsWriter w;
  w.add_f32("zeta", {5}, x.data());
  w.add_f32("alpha", {3}, x.data());
  w.add_f32("mid", {1}, x.data());
  const std::string path = tmp.file("w.safetensors");
  ASSERT_TRUE(w.write(path).is_ok());
  const std::string bytes = testing::read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + (5 + 3 + 1) * 4);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);  // space padding
  EXPECT_LT(header.find("\"alpha\""), header.find("\"mid\""));
  EXPECT_LT(header.find("\"mid\""), header.find("\"zeta\""));
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["alpha"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_EQ(j["mid"]["data_offsets"], nlohmann::json({12, 16}));
  EXPECT_EQ(j["zeta"]["data_offsets"], nlohmann::json({16, 36}));
}

TEST(Safetensors, EmptyFileWithNoTensorsIsValid) {
  TempDir tmp;
  const std::string path = tmp.file("empty.safetensors");
  ASSERT_TRUE(SafetensorsWriter().write(path).is_ok());
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_TRUE((*file)->tensors().empty());
}

// Writes `bytes` as bad.safetensors and expects open() to fail with every `needles` in the message.
void expect_rejected(const std::string& bytes, const std::vector<std::string>& needles) {
  TempDir tmp;
  const std::string path = tmp.file("bad.safetensors");
  write_bytes(path, bytes);
  auto file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.is_ok());
  const std::string& msg = file.status().message();
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "want '" << n << "' in: " << msg;
}

TEST(SafetensorsBad, ShorterThanEightBytes) {
  expect_rejected("", {"shorter than the 8-byte"});
  expect_rejected(std::string("\x10\0\0\0", 4), {"file is 4 bytes"});
}

TEST(SafetensorsBad, HeaderLengthPastEndOrTooLarge) {
  expect_rejected(raw_safetensors("{}", 0, 100), {"header length 100", "past the end"});
  expect_rejected(raw_safetensors("{}", 0, SafetensorsFile::kMaxHeaderBytes + 1), {"exceeds the limit"});
  expect_rejected(raw_safetensors("{}", 0, UINT64_MAX), {"exceeds the limit"});
}

TEST(SafetensorsBad, HeaderNotJsonOrNotObject) {
  expect_rejected(raw_safetensors("{\"a\": ", 0), {"not well-formed JSON"});
  expect_rejected(raw_safetensors("[1, 2]", 0), {"must be a JSON object", "array"});
  expect_rejected(raw_safetensors("{\"\xff\xfe\": 1}", 0), {"not well-formed JSON"});  // invalid UTF-8
  expect_rejected(raw_safetensors("", 0), {"not well-formed JSON"});
}

TEST(SafetensorsBad, EntryMissingKeysOrWrongTypes) {
  expect_rejected(raw_safetensors(R"({"w": 3})", 0), {"tensor 'w'", "expected an object"});
  expect_rejected(raw_safetensors(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4), {"tensor 'w'", "'dtype'"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), {"tensor 'w'", "'shape'"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1]}})", 4), {"tensor 'w'", "'data_offsets'"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": 1, "shape": [1], "data_offsets": [0, 4]}})", 4),
                  {"tensor 'w'", "'dtype' must be a string"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4),
                  {"tensor 'w'", "'shape' must be an array"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
                  {"tensor 'w'", "integers"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8),
                  {"tensor 'w'", "'data_offsets'"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 8),
                  {"tensor 'w'", "'data_offsets'"});
}

TEST(SafetensorsBad, UnknownDtypeAndNegativeDims) {
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 1]}})", 1),
                  {"tensor 'w'", "unknown dtype 'Q4_K'"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 0]}})", 0),
                  {"tensor 'w'", "negative"});
}

TEST(SafetensorsBad, SizeMismatchAndOverflow) {
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]}})", 10),
                  {"tensor 'w'", "needs 12 bytes", "span 10 bytes"});
  // 2^62 * 2^62 elements overflows 64 bits; must not wrap around to "0 bytes".
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4611686018427387904],)"
                                  R"( "data_offsets": [0, 0]}})", 0),
                  {"tensor 'w'", "overflows"});
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0),
                  {"tensor 'w'", "overflows"});
}

TEST(SafetensorsBad, RangeBeginAfterEnd) {
  expect_rejected(raw_safetensors(R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 8),
                  {"tensor 'w'", "begin > end"});
}

TEST(SafetensorsBad, RangePastDataSectionNamesFileAndTensor) {
  const std::string header =
      R"({"layers.0.attention.wq.weight": {"dtype": "F32", "shape": [250], "data_offsets": [0, 1000]}})";
  expect_rejected(raw_safetensors(header, 800),
                  {"bad.safetensors: tensor 'layers.0.attention.wq.weight': data range [0, 1000) ends past the data "
                   "section (800 bytes)"});
}

TEST(SafetensorsBad, OverlappingRanges) {
  const std::string header = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                             R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})";
  expect_rejected(raw_safetensors(header, 12), {"tensor 'b'", "overlaps tensor 'a'"});
  // Empty tensors sharing an offset with another tensor overlap nothing.
  TempDir tmp;
  const std::string ok = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                         R"( "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})";
  write_bytes(tmp.file("ok.safetensors"), raw_safetensors(ok, 8));
  EXPECT_TRUE(SafetensorsFile::open(tmp.file("ok.safetensors")).is_ok());
}

TEST(SafetensorsBad, DuplicateTensorName) {
  const std::string header = R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                             R"( "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})";
  expect_rejected(raw_safetensors(header, 2), {"tensor 'w'", "appears twice"});
  // Nested keys may repeat across entries (every entry has "dtype").
  TempDir tmp;
  const std::string ok = R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                         R"( "b": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})";
  write_bytes(tmp.file("ok.safetensors"), raw_safetensors(ok, 2));
  EXPECT_TRUE(SafetensorsFile::open(tmp.file("ok.safetensors")).is_ok());
}

TEST(SafetensorsBad, MetadataMustBeStringToString) {
  expect_rejected(raw_safetensors(R"({"__metadata__": {"format": 1}})", 0), {"'__metadata__' key 'format'"});
  expect_rejected(raw_safetensors(R"({"__metadata__": [1]})", 0), {"'__metadata__' must be an object"});
}

TEST(SafetensorsBad, MissingFileDirectoryAndFifo) {
  TempDir tmp;
  auto missing = SafetensorsFile::open(tmp.file("nope.safetensors"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.safetensors"), std::string::npos);
  auto dir = SafetensorsFile::open(tmp.str());
  ASSERT_FALSE(dir.is_ok());
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos);
  // A FIFO with no writer would block a plain open(); the reader must refuse it at once.
  const std::string fifo = tmp.file("fifo.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto f = SafetensorsFile::open(fifo);
  ASSERT_FALSE(f.is_ok());
  EXPECT_NE(f.status().message().find("fifo.safetensors"), std::string::npos);
}

// Every truncation and many random byte corruptions of a valid file: open() returns a Status
// (never crashes or hangs), and any file it accepts has every view inside the mapping.
TEST(SafetensorsFuzz, TruncationsAndCorruptionsNeverCrash) {
  TempDir tmp;
  const std::vector<float> x(16, 0.25f);
  SafetensorsWriter w;
  w.add_f32("a", {4, 4}, x.data());
  w.add_f32("b", {3}, x.data());
  w.add("c", DType::kBF16, {2, 2}, x.data(), 8);
  w.set_metadata("k", "v");
  const std::string path = tmp.file("good.safetensors");
  ASSERT_TRUE(w.write(path).is_ok());
  const std::string good = testing::read_bytes(path);
  const std::string bad = tmp.file("fuzz.safetensors");
  int accepted = 0;
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(bad, good.substr(0, len));
    accepted += SafetensorsFile::open(bad).is_ok();
  }
  EXPECT_EQ(accepted, 0);  // every strict prefix cuts the header or the data section short
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 400; ++iter) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % std::min<size_t>(b.size(), 8 + 200)] = static_cast<char>(rng());
    write_bytes(bad, b);
    auto file = SafetensorsFile::open(bad);
    if (!file.is_ok()) continue;
    for (const TensorView& t : (*file)->tensors()) {
      EXPECT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * base::dtype_size(t.dtype));
    }
  }
}

}  // namespace
}  // namespace pixtral::io
