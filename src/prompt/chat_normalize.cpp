// ref: spec/inputs.md §3.2; mistral_common 1.13.1 protocol/instruct/normalize.py
// (InstructRequestNormalizer, _aggregate_content_chunks_impl)
#include "prompt/chat_normalize.h"

#include "prompt/py_json.h"

namespace pixtral::prompt {
namespace {

constexpr std::string_view kJoin = "\n\n";  // both the message and the chunk separator

bool content_truthy(const Message& m) {
  if (m.content_is_string) return !m.content.front().text.empty();
  return !m.content.empty();  // Python: a non-empty list is truthy even if its texts are empty
}

// Coalesces text across the messages of a run: texts of different messages and adjacent text
// chunks are joined with "\n\n", empty texts are skipped, an image flushes the pending text.
// Returns (chunks, is_string): is_string when no image was seen (then chunks has one text).
std::pair<std::vector<ContentChunk>, bool> aggregate(const std::vector<const Message*>& run) {
  std::vector<ContentChunk> all;
  std::string text;
  bool have_text = false;
  std::string text_where;
  auto flush = [&] {
    if (!have_text) return;
    all.push_back(ContentChunk::text_chunk(text, text_where));
    text.clear();
    have_text = false;
  };
  for (const Message* m : run) {
    if (!content_truthy(*m)) continue;
    for (const ContentChunk& c : m->content) {
      if (c.type == ContentChunk::Type::kImage) {
        flush();
        all.push_back(c);
        continue;
      }
      if (c.text.empty()) continue;
      if (!have_text) text_where = c.where;
      if (have_text) text.append(kJoin);  // after an image flush, no separator (as Python)
      text.append(c.text);
      have_text = true;
    }
  }
  if (all.empty()) {
    return {{ContentChunk::text_chunk(text, run.empty() ? "" : run.front()->where + ".content")}, true};
  }
  flush();
  return {std::move(all), false};
}

NormalizedMessage merge_run(const std::vector<const Message*>& run) {
  NormalizedMessage out;
  out.role = run.front()->role;
  out.where = run.front()->where;
  auto [content, is_string] = aggregate(run);
  out.content = std::move(content);
  out.content_is_string = is_string;
  for (const Message* m : run) {
    for (const ToolCall& call : m->tool_calls) {
      out.tool_calls.push_back(ToolCall{call.id, call.name, normalize_json_content(call.arguments)});
    }
    out.prefix = out.prefix || m->prefix;
  }
  return out;
}

void flush_run(std::vector<const Message*>* run, std::vector<NormalizedMessage>* out) {
  if (run->empty()) return;
  Role role = run->front()->role;
  if (role == Role::kTool) {  // never merged: one [TOOL_RESULTS] block each
    for (const Message* m : *run) {
      NormalizedMessage n = merge_run({m});
      n.content.front().text = normalize_json_content(n.content.front().text);
      n.tool_call_id = m->tool_call_id.value_or("");
      out->push_back(std::move(n));
    }
  } else if (role != Role::kSystem) {  // system messages only break runs
    out->push_back(merge_run(*run));
  }
  run->clear();
}

}  // namespace

NormalizedChat normalize_chat(const ChatRequest& request) {
  NormalizedChat chat;
  std::vector<std::string> system_texts;
  for (const Message& m : request.messages) {
    if (m.role == Role::kSystem && content_truthy(m)) {
      system_texts.push_back(aggregate({&m}).first.front().text);
    }
  }
  if (!system_texts.empty()) {
    std::string prompt;
    for (size_t i = 0; i < system_texts.size(); ++i) {
      if (i > 0) prompt.append(kJoin);
      prompt.append(system_texts[i]);
    }
    chat.system_prompt = std::move(prompt);
  }
  std::vector<const Message*> run;
  for (const Message& m : request.messages) {
    if (!run.empty() && run.front()->role != m.role) flush_run(&run, &chat.messages);
    run.push_back(&m);
  }
  flush_run(&run, &chat.messages);
  if (chat.messages.empty() || chat.messages.front().role != Role::kUser) {
    NormalizedMessage empty_user;
    empty_user.content.push_back(ContentChunk{});
    empty_user.where = "messages";
    chat.messages.insert(chat.messages.begin(), std::move(empty_user));
  }
  return chat;
}

}  // namespace pixtral::prompt
