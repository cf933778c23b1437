// pixtral generate --model DIR [--image F]... --prompt S [--system S] [--max-tokens N]
//                  [--temperature T] [--top-p P] [--top-k K] [--seed N] [--backend cpu|cuda]
//   Streams the assistant's answer to one user message (images first, then the text).
// pixtral generate --model DIR --input CASE.safetensors [--max-tokens N] ...
//   Generates from token ids (+ image_k pixels) of a case file and prints the new ids as JSON.
#include <cstdio>

#include "cli/chat_session.h"
#include "cli/command.h"
#include "cli/backend_choice.h"
#include "io/safetensors.h"

namespace pixtral::cli {
namespace {

prompt::Message text_message(prompt::Role role, const std::string& text, const std::string& where) {
  prompt::Message m;
  m.role = role;
  m.content.push_back(prompt::ContentChunk::text_chunk(text, where + ".content"));
  m.content_is_string = true;
  m.has_content = true;
  m.content_null = false;
  m.where = where;
  return m;
}

// Token-id mode: the case file format of `pixtral logits`.
int generate_from_case(const std::string& model_arg, const std::optional<std::string>& backend_name,
                       const std::string& input, engine::GenerationRequest options) {
  auto file = io::SafetensorsFile::open(input);
  if (!file.is_ok()) return failure("generate", file.status().to_string());
  const io::TensorView* ids = (*file)->find("input_ids");
  if (ids == nullptr || ids->dtype != base::DType::kI64 || ids->shape.size() != 1)
    return failure("generate", input + ": needs 'input_ids' I64 [T]");
  const auto* raw = reinterpret_cast<const int64_t*>(ids->data);
  for (int64_t i = 0; i < ids->numel(); ++i) options.prompt.push_back(static_cast<int32_t>(raw[i]));
  for (int k = 0; const io::TensorView* img = (*file)->find("image_" + std::to_string(k)); ++k) {
    if (img->shape.size() != 3) return failure("generate", input + ": image tensors must be [3, H, W]");
    model::ImageData data{img->shape[1], img->shape[2], std::vector<float>(static_cast<size_t>(img->numel()))};
    if (!base::convert_to_f32(img->dtype, img->data, data.pixels.data(), data.pixels.size()))
      return failure("generate", input + ": image tensors must be float");
    options.images.push_back(std::move(data));
  }
  auto dir = resolve_model_dir(model_arg);
  if (!dir.is_ok()) return failure("generate", dir.status().to_string());
  auto backend = make_backend(backend_name);
  if (!backend.is_ok()) return failure("generate", backend.status().to_string());
  auto model = model::PixtralModel::load(*dir, **backend);
  if (!model.is_ok()) return failure("generate", model.status().to_string());
  options.stop_ids = {2};  // </s>
  auto result = engine::generate(**model, options, [](int32_t) { return true; });
  if (!result.is_ok()) return failure("generate", result.status().to_string());
  std::printf("[");
  for (size_t i = 0; i < result->tokens.size(); ++i) std::printf("%s%d", i ? ", " : "", result->tokens[i]);
  std::printf("]\n");
  return 0;
}

int run_generate(const Args& args) {
  FlagReader flags(args);
  const auto model_arg = flags.value("--model"), prompt_text = flags.value("--prompt");
  const auto system = flags.value("--system"), input = flags.value("--input");
  const auto backend_name = flags.value("--backend");
  const auto images = flags.values("--image");
  engine::GenerationRequest options;
  if (auto err = read_generation_flags(flags, options); !err.empty()) return usage_error("generate", err);
  if (auto err = flags.finish(); !err.empty()) return usage_error("generate", err);
  if (!model_arg) return usage_error("generate", "--model DIR (or 'demo') is required");
  if (input) return generate_from_case(*model_arg, backend_name, *input, options);
  if (!prompt_text) return usage_error("generate", "--prompt S (or --input CASE) is required");

  prompt::ChatRequest request;
  if (system) request.messages.push_back(text_message(prompt::Role::kSystem, *system, "system"));
  prompt::Message user = text_message(prompt::Role::kUser, *prompt_text, "prompt");
  user.content_is_string = images.empty();
  for (size_t i = 0; i < images.size(); ++i) {
    prompt::ContentChunk chunk;
    chunk.type = prompt::ContentChunk::Type::kImage;
    chunk.where = "--image " + images[i];
    chunk.image.kind = prompt::ImageSource::Kind::kFile;
    chunk.image.location = images[i];
    user.content.insert(user.content.begin() + static_cast<std::ptrdiff_t>(i), chunk);
  }
  request.messages.push_back(std::move(user));

  auto session = ChatSession::open(*model_arg, backend_name);
  if (!session.is_ok()) return failure("generate", session.status().to_string());
  auto text = session->answer(request, options);
  if (!text.is_ok()) return failure("generate", text.status().to_string());
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(generate, "generate an answer to a prompt (with images), streaming the text", run_generate);

}  // namespace pixtral::cli
