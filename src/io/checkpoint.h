// A checkpoint directory: all tensors of one model, from one or several safetensors files.
//   mistral layout: consolidated.safetensors (+ params.json)
//   HF layout:      model.safetensors, or model-0000k-of-0000n.safetensors listed by
//                   model.safetensors.index.json (+ config.json)
// Every file is opened and validated up front; a tensor name present in two files is an error.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"

namespace pixtral::io {

class CheckpointFiles {
 public:
  // Opens the safetensors files of `dir` (either layout). Errors name the file.
  static Result<std::unique_ptr<CheckpointFiles>> open_dir(const std::string& dir);

  const TensorView* find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorView*> by_name_;
};

}  // namespace pixtral::io
