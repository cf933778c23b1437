// Checkpoint directory discovery: consolidated.safetensors, else a sharded HF index, else
// model.safetensors. ref: spec/model.md §1.1, §2
#include "io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace pixtral::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Reads model.safetensors.index.json: tensor name -> shard file name.
Result<std::map<std::string, std::string>> read_index(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  json index;
  try {
    index = json::parse(ss.str());
  } catch (const json::exception& e) {
    return invalid_argument(path.string() + ": not well-formed JSON: " + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return invalid_argument(path.string() + ": key 'weight_map' missing or not an object");
  }
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) {
      return invalid_argument(path.string() + ": key 'weight_map." + name + "' must be a file name string");
    }
    const std::string f = file.get<std::string>();
    const fs::path fp(f);
    // Shards live next to the index; refuse names that escape the directory.
    if (f.empty() || fp.is_absolute() || std::any_of(fp.begin(), fp.end(), [](const fs::path& c) { return c == ".."; })) {
      return invalid_argument(path.string() + ": key 'weight_map." + name + "': bad shard file name '" + f + "'");
    }
    map[name] = f;
  }
  if (map.empty()) return invalid_argument(path.string() + ": 'weight_map' is empty");
  return map;
}

}  // namespace

Result<std::unique_ptr<CheckpointFiles>> CheckpointFiles::open_dir(const std::string& dir) {
  auto files = std::unique_ptr<CheckpointFiles>(new CheckpointFiles());
  const fs::path root(dir);
  const fs::path consolidated = root / "consolidated.safetensors";
  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single = root / "model.safetensors";

  std::map<std::string, std::string> index;  // name -> shard file name (sharded layout only)
  std::vector<std::string> to_open;
  if (is_file(consolidated)) {
    to_open.push_back(consolidated.string());
  } else if (is_file(index_path)) {
    PX_ASSIGN_OR_RETURN(index, read_index(index_path));
    std::set<std::string> shards;
    for (const auto& [name, f] : index) shards.insert(f);
    for (const std::string& f : shards) to_open.push_back((root / f).string());
  } else if (is_file(single)) {
    to_open.push_back(single.string());
  } else {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return not_found(dir + ": not a directory");
    return not_found(dir + ": no consolidated.safetensors, model.safetensors or model.safetensors.index.json");
  }

  for (const std::string& path : to_open) {
    PX_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
    files->files_.push_back(std::move(file));
  }
  for (const auto& file : files->files_) {
    for (const TensorView& t : file->tensors()) {
      auto [it, inserted] = files->by_name_.emplace(t.name, &t);
      if (!inserted) {
        return invalid_argument(t.file + ": tensor '" + t.name + "' is also in " + it->second->file);
      }
    }
  }
  if (!index.empty()) {
    for (const auto& [name, f] : index) {
      const std::string shard = (root / f).string();
      auto it = files->by_name_.find(name);
      if (it == files->by_name_.end() || it->second->file != shard) {
        return invalid_argument(index_path.string() + ": tensor '" + name + "' is mapped to " + f +
                                ", which does not contain it");
      }
    }
    for (const auto& [name, view] : files->by_name_) {
      if (index.count(name) == 0) {
        return invalid_argument(view->file + ": tensor '" + name + "' is not listed in " + index_path.string());
      }
    }
  }
  return files;
}

const TensorView* CheckpointFiles::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> CheckpointFiles::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, view] : by_name_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pixtral::io
