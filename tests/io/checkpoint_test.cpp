// Checkpoint directory discovery: consolidated, single HF file, sharded index, and their errors.
#include "io/checkpoint.h"

#include "io_test_util.h"

namespace pixtral::io {
namespace {

using testing::TempDir;
using testing::write_bytes;

// Writes a file holding one [2] F32 tensor per name.
void write_tensors(const std::string& path, const std::vector<std::string>& names) {
  const float v[2] = {1.0f, 2.0f};
  SafetensorsWriter w;
  for (const auto& n : names) w.add_f32(n, {2}, v);
  ASSERT_TRUE(w.write(path).is_ok());
}

void expect_error(const std::string& dir, const std::vector<std::string>& needles) {
  auto files = CheckpointFiles::open_dir(dir);
  ASSERT_FALSE(files.is_ok());
  for (const auto& n : needles) {
    EXPECT_NE(files.status().message().find(n), std::string::npos) << "want '" << n << "' in "
                                                                   << files.status().message();
  }
}

TEST(Checkpoint, ConsolidatedWinsOverOtherFiles) {
  TempDir tmp;
  write_tensors(tmp.file("consolidated.safetensors"), {"tok_embeddings.weight", "norm.weight"});
  write_tensors(tmp.file("model.safetensors"), {"other"});
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  EXPECT_EQ((*files)->files().size(), 1u);
  EXPECT_EQ((*files)->names(), (std::vector<std::string>{"norm.weight", "tok_embeddings.weight"}));
  ASSERT_NE((*files)->find("norm.weight"), nullptr);
  EXPECT_EQ((*files)->find("norm.weight")->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ((*files)->find("other"), nullptr);
}

TEST(Checkpoint, SingleHfFile) {
  TempDir tmp;
  write_tensors(tmp.file("model.safetensors"), {"lm_head.weight"});
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  EXPECT_EQ((*files)->names(), (std::vector<std::string>{"lm_head.weight"}));
}

TEST(Checkpoint, ShardedIndex) {
  TempDir tmp;
  write_tensors(tmp.file("model-00001-of-00002.safetensors"), {"a", "b"});
  write_tensors(tmp.file("model-00002-of-00002.safetensors"), {"c"});
  write_bytes(tmp.file("model.safetensors.index.json"),
              R"({"metadata": {"total_size": 24}, "weight_map": {"a": "model-00001-of-00002.safetensors",)"
              R"( "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  auto files = CheckpointFiles::open_dir(tmp.str());
  ASSERT_TRUE(files.is_ok()) << files.status().to_string();
  EXPECT_EQ((*files)->files().size(), 2u);
  EXPECT_EQ((*files)->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_NE((*files)->find("c")->file.find("model-00002-of-00002.safetensors"), std::string::npos);
}

TEST(Checkpoint, IndexMapsNameToShardWithoutIt) {
  TempDir tmp;
  write_tensors(tmp.file("s1.safetensors"), {"a"});
  write_tensors(tmp.file("s2.safetensors"), {"b"});
  write_bytes(tmp.file("model.safetensors.index.json"),
              R"({"weight_map": {"a": "s2.safetensors", "b": "s2.safetensors"}})");
  // s1 is not listed, so only s2 is opened: 'a' is mapped to a shard that does not contain it.
  expect_error(tmp.str(), {"model.safetensors.index.json", "tensor 'a'", "s2.safetensors", "does not contain"});
}

TEST(Checkpoint, ShardTensorMissingFromIndex) {
  TempDir tmp;
  write_tensors(tmp.file("s1.safetensors"), {"a", "extra"});
  write_bytes(tmp.file("model.safetensors.index.json"), R"({"weight_map": {"a": "s1.safetensors"}})");
  expect_error(tmp.str(), {"s1.safetensors", "tensor 'extra'", "not listed"});
}

TEST(Checkpoint, DuplicateNameAcrossShards) {
  TempDir tmp;
  write_tensors(tmp.file("s1.safetensors"), {"a"});
  write_tensors(tmp.file("s2.safetensors"), {"a", "b"});
  write_bytes(tmp.file("model.safetensors.index.json"),
              R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  expect_error(tmp.str(), {"tensor 'a'", "also in", "s1.safetensors", "s2.safetensors"});
}

TEST(Checkpoint, IndexErrors) {
  TempDir tmp;
  const std::string index = tmp.file("model.safetensors.index.json");
  write_bytes(index, "{not json");
  expect_error(tmp.str(), {"model.safetensors.index.json", "not well-formed JSON"});
  write_bytes(index, R"({"metadata": {}})");
  expect_error(tmp.str(), {"model.safetensors.index.json", "'weight_map'"});
  write_bytes(index, R"({"weight_map": {"a": 3}})");
  expect_error(tmp.str(), {"'weight_map.a'"});
  write_bytes(index, R"({"weight_map": {"a": "../escape.safetensors"}})");
  expect_error(tmp.str(), {"bad shard file name"});
  write_bytes(index, R"({"weight_map": {"a": "missing-shard.safetensors"}})");
  expect_error(tmp.str(), {"missing-shard.safetensors", "cannot open"});
}

TEST(Checkpoint, BadShardNamesTheShard) {
  TempDir tmp;
  write_bytes(tmp.file("consolidated.safetensors"), "xx");
  expect_error(tmp.str(), {"consolidated.safetensors", "shorter than"});
}

TEST(Checkpoint, NothingFound) {
  TempDir tmp;
  expect_error(tmp.str(), {tmp.str() + ": no consolidated.safetensors, model.safetensors or "
                                       "model.safetensors.index.json"});
  expect_error(tmp.file("does-not-exist"), {"does-not-exist", "not a directory"});
}

}  // namespace
}  // namespace pixtral::io
