// pixtral chat --model DIR [--system S] [sampling flags] [--backend cpu|cuda]
//   Interactive multi-turn chat on stdin/stdout. Commands: /image PATH attaches an image to the
//   next message, /reset starts over, /quit (or end of input) leaves.
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/chat_session.h"
#include "cli/command.h"

namespace pixtral::cli {
namespace {

int run_chat(const Args& args) {
  FlagReader flags(args);
  const auto model_arg = flags.value("--model"), system = flags.value("--system");
  const auto backend_name = flags.value("--backend");
  SamplingOptions sampling;
  if (auto err = read_generation_flags(flags, sampling); !err.empty()) return usage_error("chat", err);
  if (auto err = flags.finish(); !err.empty()) return usage_error("chat", err);
  if (!model_arg) return usage_error("chat", "--model DIR (or 'demo') is required");
  auto session = ChatSession::open(*model_arg, backend_name);
  if (!session.is_ok()) return failure("chat", session.status().to_string());

  std::vector<ChatMessage> conversation;
  std::vector<std::string> pending_images;
  std::fprintf(stderr, "pixtral chat: /image PATH attaches an image, /reset starts over, /quit leaves\n");
  std::string line;
  while (std::fprintf(stderr, "> "), std::getline(std::cin, line)) {
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      conversation.clear();
      pending_images.clear();
      continue;
    }
    if (line.rfind("/image ", 0) == 0) {
      pending_images.push_back(line.substr(7));
      std::fprintf(stderr, "(image %s attached to your next message)\n", pending_images.back().c_str());
      continue;
    }
    if (line.empty() && pending_images.empty()) continue;
    std::vector<ChatMessage> request = conversation;
    if (system && request.empty()) request.push_back({"system", {ContentPart::text_part(*system)}});
    ChatMessage user{"user", {}};
    for (const auto& path : pending_images) user.content.push_back(ContentPart::image_file(path));
    if (!line.empty()) user.content.push_back(ContentPart::text_part(line));
    request.push_back(std::move(user));
    auto answer = session->answer(request, sampling);
    pending_images.clear();
    if (!answer.is_ok()) {  // a bad turn (and its images) is reported and dropped; the chat goes on
      std::fprintf(stderr, "error: %s\n", answer.status().to_string().c_str());
      continue;
    }
    request.push_back({"assistant", {ContentPart::text_part(*answer)}});
    conversation = std::move(request);
  }
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(chat, "interactive multi-turn chat; /image PATH attaches an image", run_chat);

}  // namespace pixtral::cli
