#include "golden_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace pixtral::model::testing {

std::string goldens_dir() { return std::string(PIXTRAL_TEST_DATA) + "/goldens"; }

namespace {
// Parsed once; returned by reference so range-for over its members never sees a temporary.
const nlohmann::json& manifest() {
  static const nlohmann::json parsed = [] {
    std::ifstream in(goldens_dir() + "/manifest.json");
    return nlohmann::json::parse(in);
  }();
  return parsed;
}
}  // namespace

std::vector<GoldenModel> golden_models() {
  std::vector<GoldenModel> out;
  for (const auto& m : manifest()["models"])
    out.push_back({m["name"], m["dtype"], goldens_dir() + "/" + m["mistral"].get<std::string>(),
                   goldens_dir() + "/" + m["hf"].get<std::string>()});
  return out;
}

const GoldenModel& golden_model(const std::string& name) {
  static const std::vector<GoldenModel> models = golden_models();
  for (const auto& m : models)
    if (m.name == name) return m;
  ADD_FAILURE() << "no golden model " << name;
  return models.front();
}

std::vector<std::string> golden_case_names() {
  std::vector<std::string> out;
  for (const auto& c : manifest()["cases"]) out.push_back(c["case"]);
  return out;
}

GoldenCase load_golden_case(const std::string& name) {
  GoldenCase gc;
  for (const auto& c : manifest()["cases"])
    if (c["case"] == name) {
      gc.name = name;
      gc.model = c["model"];
      gc.file = goldens_dir() + "/" + c["file"].get<std::string>();
    }
  auto file = io::SafetensorsFile::open(gc.file);
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  const io::TensorView* ids = (*file)->find("input_ids");
  const auto* raw = reinterpret_cast<const int64_t*>(ids->data);
  for (int64_t i = 0; i < ids->numel(); ++i) gc.input_ids.push_back(static_cast<int32_t>(raw[i]));
  for (int k = 0;; ++k) {
    const io::TensorView* img = (*file)->find("image_" + std::to_string(k));
    if (img == nullptr) break;
    ImageData data{img->shape[1], img->shape[2], std::vector<float>(static_cast<size_t>(img->numel()))};
    base::convert_to_f32(img->dtype, img->data, data.pixels.data(), data.pixels.size());
    gc.images.push_back(std::move(data));
  }
  const io::TensorView* logits = (*file)->find("logits");
  gc.logits.resize(static_cast<size_t>(logits->numel()));
  base::convert_to_f32(logits->dtype, logits->data, gc.logits.data(), gc.logits.size());
  return gc;
}

Comparison compare_logits(const std::vector<float>& ours, const std::vector<float>& ref, int64_t vocab) {
  Comparison c;
  EXPECT_EQ(ours.size(), ref.size());
  if (ours.size() != ref.size() || ref.empty()) return c;
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_FALSE(std::isnan(ours[i])) << "NaN at " << i;
    const double d = static_cast<double>(ours[i]) - ref[i];
    diff2 += d * d;
    ref2 += static_cast<double>(ref[i]) * ref[i];
    c.max_abs = std::max(c.max_abs, std::fabs(d));
  }
  c.rel_error = std::sqrt(diff2 / ref2);
  const int64_t rows = static_cast<int64_t>(ref.size()) / vocab;
  int64_t agree = 0;
  for (int64_t r = 0; r < rows; ++r) {
    auto row_argmax = [&](const std::vector<float>& v) {
      return std::max_element(v.begin() + r * vocab, v.begin() + (r + 1) * vocab) - (v.begin() + r * vocab);
    };
    agree += row_argmax(ours) == row_argmax(ref);
  }
  c.argmax_agree = static_cast<double>(agree) / static_cast<double>(rows);
  return c;
}

std::vector<float> download_f32(backend::Backend& b, const backend::Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  b.download_f32(t, host.data());
  return host;
}

}  // namespace pixtral::model::testing
