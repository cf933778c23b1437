// pixtral encode-chat --tokenizer FILE --request REQ.json [--max-images N] [--no-local-files]
//   encodes a chat-completions request body (OpenAI or Mistral dialect) with the Mistral instruct
//   v3 format and prints {"tokens": [...], "images": [[h, w], ...]}, where h x w is the pixel size
//   of each resized image fed to the vision encoder (rows * patch_size, cols * patch_size), in
//   prompt order. REQ.json "-" reads stdin. ref: spec/inputs.md §3, §4; docs/chat-format.md
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "prompt/chat_encoder.h"

namespace pixtral::cli {
namespace {

constexpr const char* kName = "encode-chat";

bool read_all(const std::string& path, std::string* out) {
  if (path == "-") {
    out->assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

int run_encode_chat(const Args& args) {
  FlagReader flags(args);
  const auto tok_path = flags.value("--tokenizer"), request_path = flags.value("--request");
  const auto max_images = flags.value("--max-images");
  const bool no_local_files = flags.flag("--no-local-files");
  if (auto err = flags.finish(); !err.empty()) return usage_error(kName, err);
  if (!tok_path || !request_path) return usage_error(kName, "--tokenizer and --request are required");
  prompt::ChatEncodeOptions options;
  if (max_images) {
    try {
      options.max_images_per_request = std::stoll(*max_images);
    } catch (const std::exception&) {
      return usage_error(kName, "--max-images must be an integer");
    }
  }
  std::string body;
  if (!read_all(*request_path, &body)) return failure(kName, *request_path + ": cannot open");
  auto tok = tokenizer::Tokenizer::load(*tok_path);
  if (!tok.is_ok()) return failure(kName, tok.status().to_string());
  auto encoder = prompt::ChatEncoder::create(**tok, options);
  if (!encoder.is_ok()) return failure(kName, encoder.status().to_string());
  auto request = prompt::parse_chat_request(body, prompt::ParseOptions{.allow_local_files = !no_local_files});
  if (!request.is_ok()) return failure(kName, request.status().to_string());
  auto encoded = encoder->encode(*request);
  if (!encoded.is_ok()) return failure(kName, encoded.status().to_string());
  nlohmann::json images = nlohmann::json::array();
  const int64_t patch = encoder->geometry().patch_size;
  for (const prompt::ImageSlot& slot : encoded->slots) images.push_back({slot.rows * patch, slot.cols * patch});
  nlohmann::json out = {{"tokens", encoded->tokens}, {"images", images}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

// "encode-chat" has a dash, so register without PX_REGISTER_COMMAND (which needs an identifier).
static CommandRegistrar px_command_encode_chat(kName, "encode a chat request (JSON) to token ids and image sizes",
                                               run_encode_chat);

}  // namespace pixtral::cli
