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

prompt::Message make_message(prompt::Role role, const std::string& text, size_t index) {
  prompt::Message m;
  m.role = role;
  m.where = "turn " + std::to_string(index);
  if (!text.empty())
    m.content.push_back(prompt::ContentChunk::text_chunk(text, m.where));
  m.content_is_string = true;
  m.has_content = true;
  m.content_null = false;
  return m;
}

int run_chat(const Args& args) {
  FlagReader flags(args);
  const auto model_arg = flags.value("--model"), system = flags.value("--system");
  const auto backend_name = flags.value("--backend");
  engine::GenerationRequest options;
  if (auto err = read_generation_flags(flags, options); !err.empty()) return usage_error("chat", err);
  if (auto err = flags.finish(); !err.empty()) return usage_error("chat", err);
  if (!model_arg) return usage_error("chat", "--model DIR (or 'demo') is required");
  auto session = ChatSession::open(*model_arg, backend_name);
  if (!session.is_ok()) return failure("chat", session.status().to_string());

  prompt::ChatRequest conversation;
  std::vector<std::string> pending_images;
  std::fprintf(stderr, "pixtral chat: /image PATH attaches an image, /reset starts over, /quit leaves\n");
  std::string line;
  while (std::fprintf(stderr, "> "), std::getline(std::cin, line)) {
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      conversation.messages.clear();
      pending_images.clear();
      continue;
    }
    if (line.rfind("/image ", 0) == 0) {
      pending_images.push_back(line.substr(7));
      std::fprintf(stderr, "(image %s attached to your next message)\n", pending_images.back().c_str());
      continue;
    }
    if (line.empty() && pending_images.empty()) continue;
    prompt::ChatRequest request = conversation;
    if (system && request.messages.empty()) request.messages.push_back(make_message(prompt::Role::kSystem, *system, 0));
    prompt::Message user = make_message(prompt::Role::kUser, line, request.messages.size());
    user.content_is_string = pending_images.empty();
    for (size_t i = 0; i < pending_images.size(); ++i) {
      prompt::ContentChunk chunk;
    chunk.type = prompt::ContentChunk::Type::kImage;
    chunk.where = "/image " + pending_images[i];
      chunk.image.kind = prompt::ImageSource::Kind::kFile;
      chunk.image.location = pending_images[i];
      user.content.insert(user.content.begin() + static_cast<std::ptrdiff_t>(i), chunk);
    }
    request.messages.push_back(user);
    auto answer = session->answer(request, options);
    if (!answer.is_ok()) {  // a bad turn (and its images) is reported and dropped; the chat goes on
      std::fprintf(stderr, "error: %s\n", answer.status().to_string().c_str());
      pending_images.clear();
      continue;
    }
    request.messages.push_back(make_message(prompt::Role::kAssistant, *answer, request.messages.size()));
    conversation = std::move(request);
    pending_images.clear();
  }
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(chat, "interactive multi-turn chat; /image PATH attaches an image", run_chat);

}  // namespace pixtral::cli
