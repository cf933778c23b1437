// Helpers for the golden tests: the manifest of tests/data/goldens and its case files.
#pragma once

#include <string>
#include <vector>

#include "model/sequence_runner.h"

namespace pixtral::model::testing {

struct GoldenCase {
  std::string name, model, file;
  std::vector<int32_t> input_ids;
  std::vector<ImageData> images;
  std::vector<float> logits;  // [T, V]
};

struct GoldenModel {
  std::string name, dtype, mistral_dir, hf_dir;
};

std::string goldens_dir();
std::vector<GoldenModel> golden_models();
std::vector<std::string> golden_case_names();
GoldenCase load_golden_case(const std::string& name);
const GoldenModel& golden_model(const std::string& name);

struct Comparison {
  double rel_error = 0;       // ‖a − b‖ / ‖b‖ over the whole tensor
  double argmax_agree = 0;    // fraction of rows with the same argmax
  double max_abs = 0;
};
Comparison compare_logits(const std::vector<float>& ours, const std::vector<float>& ref, int64_t vocab);

// A tensor of backend b as host floats.
std::vector<float> download_f32(backend::Backend& b, const backend::Tensor& t);

}  // namespace pixtral::model::testing
