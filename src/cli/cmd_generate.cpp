// pixtral generate --model DIR [--image F]... --prompt S [--system S] [--max-tokens N]
//                  [--temperature T] [--top-p P] [--top-k K] [--seed N] [--n N] [--backend cpu|cuda]
//   Streams the assistant's answer to one user message (images first, then the text). With
//   --n N > 1, N answers (choices) of the one prompt, printed whole once all are done.
// pixtral generate --model DIR --input CASE.safetensors [--max-tokens N] [--n N] ...
//   Generates from token ids (+ image_k pixels) of a case file and prints the new ids as JSON
//   (one array; with --n N > 1, an array of N arrays).
#include <cstdio>

#include "cli/chat_session.h"
#include "cli/command.h"
#include "io/safetensors.h"

namespace pixtral::cli {
namespace {

// Token-id mode: the case file format of `pixtral logits`.
int generate_from_case(const std::string& model_arg, const std::optional<std::string>& backend_name,
                       const std::string& input, const SamplingOptions& sampling) {
  auto file = io::SafetensorsFile::open(input);
  if (!file.is_ok()) return failure("generate", file.status().to_string());
  const io::TensorView* ids = (*file)->find("input_ids");
  if (ids == nullptr || ids->dtype != base::DType::kI64 || ids->shape.size() != 1)
    return failure("generate", input + ": needs 'input_ids' I64 [T]");
  Request request;
  request.sampling = sampling;
  const auto* raw = reinterpret_cast<const int64_t*>(ids->data);
  for (int64_t i = 0; i < ids->numel(); ++i) request.prompt_ids.push_back(static_cast<int32_t>(raw[i]));
  for (int k = 0; const io::TensorView* img = (*file)->find("image_" + std::to_string(k)); ++k) {
    if (img->shape.size() != 3) return failure("generate", input + ": image tensors must be [3, H, W]");
    PixelImage data{img->shape[1], img->shape[2], std::vector<float>(static_cast<size_t>(img->numel()))};
    if (!base::convert_to_f32(img->dtype, img->data, data.pixels.data(), data.pixels.size()))
      return failure("generate", input + ": image tensors must be float");
    request.images.push_back(std::move(data));
  }
  auto session = ChatSession::open(model_arg, backend_name, sampling.n);
  if (!session.is_ok()) return failure("generate", session.status().to_string());
  auto choices = session->generate_ids(std::move(request));
  if (!choices.is_ok()) return failure("generate", choices.status().to_string());
  const auto print_ids = [](const std::vector<int32_t>& ids) {
    std::printf("[");
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("]");
  };
  if (sampling.n == 1) {
    print_ids(choices->at(0));
  } else {
    std::printf("[");
    for (size_t c = 0; c < choices->size(); ++c) {
      if (c) std::printf(", ");
      print_ids((*choices)[c]);
    }
    std::printf("]");
  }
  std::printf("\n");
  return 0;
}

int run_generate(const Args& args) {
  FlagReader flags(args);
  const auto model_arg = flags.value("--model"), prompt_text = flags.value("--prompt");
  const auto system = flags.value("--system"), input = flags.value("--input");
  const auto backend_name = flags.value("--backend");
  const auto images = flags.values("--image");
  const auto n = flags.value("--n");
  SamplingOptions sampling;
  if (auto err = read_generation_flags(flags, sampling); !err.empty()) return usage_error("generate", err);
  if (auto err = flags.finish(); !err.empty()) return usage_error("generate", err);
  if (n) {
    const auto value = parse_int(*n);
    if (!value || *value < 1) return usage_error("generate", "--n: not a positive integer: " + *n);
    sampling.n = *value;
  }
  if (!model_arg) return usage_error("generate", "--model DIR (or 'demo') is required");
  if (input) return generate_from_case(*model_arg, backend_name, *input, sampling);
  if (!prompt_text) return usage_error("generate", "--prompt S (or --input CASE) is required");

  std::vector<ChatMessage> messages;
  if (system) messages.push_back({"system", {ContentPart::text_part(*system)}});
  ChatMessage user{"user", {}};
  for (const auto& path : images) user.content.push_back(ContentPart::image_file(path));
  user.content.push_back(ContentPart::text_part(*prompt_text));
  messages.push_back(std::move(user));

  auto session = ChatSession::open(*model_arg, backend_name, sampling.n);
  if (!session.is_ok()) return failure("generate", session.status().to_string());
  if (sampling.n > 1) {
    auto texts = session->answers(messages, sampling);
    if (!texts.is_ok()) return failure("generate", texts.status().to_string());
    return 0;
  }
  auto text = session->answer(messages, sampling);
  if (!text.is_ok()) return failure("generate", text.status().to_string());
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(generate, "generate an answer to a prompt (with images), streaming the text", run_generate);

}  // namespace pixtral::cli
