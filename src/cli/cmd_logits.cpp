// pixtral logits --model DIR --input CASE --output OUT [--backend cpu|cuda] [--chunk N]
//   CASE: safetensors with input_ids I64 [T] and image_0, image_1, ... F32 [3, H, W] in prompt
//   order (normalized pixels, H and W multiples of the patch size).
//   OUT: safetensors with logits F32 [T, vocab_size], one row per input position.
#include <cstdio>
#include <string>

#include "cli/backend_choice.h"
#include "cli/command.h"
#include "io/safetensors.h"
#include "model/sequence_runner.h"

namespace pixtral::cli {
namespace {

// Reads input_ids and image_k tensors of a case file.
Status read_case(const std::string& path, std::vector<int32_t>& ids, std::vector<model::ImageData>& images) {
  PX_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
  const io::TensorView* input_ids = file->find("input_ids");
  if (input_ids == nullptr) return invalid_argument(path + ": no tensor 'input_ids'");
  if (input_ids->dtype != base::DType::kI64 || input_ids->shape.size() != 1)
    return invalid_argument(path + ": 'input_ids' must be I64 [T], got " +
                            std::string(base::dtype_name(input_ids->dtype)) + " " + input_ids->shape_string());
  const auto* raw = reinterpret_cast<const int64_t*>(input_ids->data);
  for (int64_t i = 0; i < input_ids->numel(); ++i) {
    if (raw[i] < 0 || raw[i] > INT32_MAX) return invalid_argument(path + ": input_ids[" + std::to_string(i) + "] out of range");
    ids.push_back(static_cast<int32_t>(raw[i]));
  }
  for (int k = 0;; ++k) {
    const std::string name = "image_" + std::to_string(k);
    const io::TensorView* img = file->find(name);
    if (img == nullptr) break;
    if (img->shape.size() != 3)
      return invalid_argument(path + ": '" + name + "' must be [3, H, W], got " + img->shape_string());
    model::ImageData data{img->shape[1], img->shape[2], std::vector<float>(static_cast<size_t>(img->numel()))};
    if (!base::convert_to_f32(img->dtype, img->data, data.pixels.data(), data.pixels.size()))
      return invalid_argument(path + ": '" + name + "' must be a float tensor");
    images.push_back(std::move(data));
  }
  return Status::ok();
}

int run_logits(const Args& args) {
  FlagReader flags(args);
  const auto model_arg = flags.value("--model"), input = flags.value("--input"), output = flags.value("--output");
  const auto backend_name = flags.value("--backend"), chunk = flags.value("--chunk");
  if (auto err = flags.finish(); !err.empty()) return usage_error("logits", err);
  if (!model_arg || !input || !output) return usage_error("logits", "--model, --input and --output are required");

  std::vector<int32_t> ids;
  std::vector<model::ImageData> images;
  if (Status s = read_case(*input, ids, images); !s.is_ok()) return failure("logits", s.to_string());
  auto dir = resolve_model_dir(*model_arg);
  if (!dir.is_ok()) return failure("logits", dir.status().to_string());
  auto backend = make_backend(backend_name);
  if (!backend.is_ok()) return failure("logits", backend.status().to_string());
  auto model = model::PixtralModel::load(*dir, **backend);
  if (!model.is_ok()) return failure("logits", model.status().to_string());

  model::SequenceRunOptions options;
  if (chunk) {
    auto parsed = parse_int(*chunk);
    if (!parsed || *parsed < 0) return usage_error("logits", "--chunk: not a non-negative integer: " + *chunk);
    options.chunk_size = *parsed;
  }
  auto logits = model::run_sequence(**model, ids, images, options);
  if (!logits.is_ok()) return failure("logits", logits.status().to_string());
  io::SafetensorsWriter writer;
  const int64_t vocab = (*model)->config().text.vocab_size;
  writer.add_f32("logits", {static_cast<int64_t>(ids.size()), vocab}, logits->data());
  if (Status s = writer.write(*output); !s.is_ok()) return failure("logits", s.to_string());
  std::fprintf(stderr, "pixtral logits: %zu positions x %lld -> %s (%s backend)\n", ids.size(),
               static_cast<long long>(vocab), output->c_str(), (*backend)->name().c_str());
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(logits, "logits of every position of a token/image case file", run_logits);

}  // namespace pixtral::cli
