#include "engine/stop_checker.h"

#include <algorithm>

#include "base/check.h"

namespace pixtral::engine {

const char* finish_kind_name(FinishKind reason) {
  switch (reason) {
    case FinishKind::kStop: return "stop";
    case FinishKind::kLength: return "length";
    case FinishKind::kNone: break;
  }
  return "";
}

StopConfig StopConfig::from(const SamplingParams& params, int32_t eos_id, int64_t max_tokens) {
  return {.max_tokens = max_tokens,
          .min_tokens = params.min_tokens,
          .eos_id = eos_id,
          .ignore_eos = params.ignore_eos,
          .stop_token_ids = params.stop_token_ids,
          .stop = params.stop,
          .include_stop_str_in_output = params.include_stop_str_in_output};
}

StopChecker::StopChecker(StopConfig config) : config_(std::move(config)) {
  for (const auto& s : config_.stop) PX_CHECK_MSG(!s.empty(), "empty stop string (validate() refuses them)");
}

bool StopChecker::ends_on(int32_t token) const {
  const int64_t count = num_tokens_ + 1;
  if (count >= config_.max_tokens) return true;
  if (count <= config_.min_tokens) return false;
  if (!config_.ignore_eos && config_.eos_id >= 0 && token == config_.eos_id) return true;
  return std::find(config_.stop_token_ids.begin(), config_.stop_token_ids.end(), token) !=
         config_.stop_token_ids.end();
}

std::optional<std::pair<size_t, size_t>> StopChecker::find_stop(size_t old_size) const {
  std::optional<std::pair<size_t, size_t>> best;  // {start, index into config_.stop}
  size_t best_end = 0;
  for (size_t i = 0; i < config_.stop.size(); ++i) {
    const std::string& s = config_.stop[i];
    // Only matches that end in the new text: earlier ones were found (or were before min_tokens).
    const size_t from = old_size + 1 >= s.size() ? old_size + 1 - s.size() : 0;
    const size_t pos = text_.find(s, from);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    // The first to complete wins; of two completing together, the longer (it started first).
    if (!best || end < best_end || (end == best_end && pos < best->first)) {
      best = {pos, i};
      best_end = end;
    }
  }
  return best;
}

size_t StopChecker::held_back() const {
  const size_t pending = text_.size() - released_;
  size_t held = 0;
  for (const auto& s : config_.stop) {
    for (size_t len = std::min(s.size() - 1, pending); len > held; --len) {
      if (text_.compare(text_.size() - len, len, s, 0, len) == 0) {
        held = len;
        break;
      }
    }
  }
  return held;
}

std::string StopChecker::release(size_t end) {
  PX_CHECK(end >= released_ && end <= text_.size());
  std::string out = text_.substr(released_, end - released_);
  released_ = end;
  return out;
}

StopStep StopChecker::append(int32_t token, std::string_view text) {
  PX_CHECK_MSG(!finished_, "token appended to a finished sequence");
  ++num_tokens_;
  StopStep step;
  const bool active = num_tokens_ > config_.min_tokens;
  const bool eos = active && !config_.ignore_eos && config_.eos_id >= 0 && token == config_.eos_id;
  const bool stop_id = active && !eos &&
                       std::find(config_.stop_token_ids.begin(), config_.stop_token_ids.end(), token) !=
                           config_.stop_token_ids.end();
  if (eos || stop_id) {
    if (config_.include_stop_str_in_output) text_ += text;
    finished_ = true;
    step.finish = FinishKind::kStop;
    if (stop_id) step.stop_token = token;
    step.text = release(text_.size());
    return step;
  }
  const size_t old_size = text_.size();
  text_ += text;
  if (active && !config_.stop.empty()) {
    if (auto match = find_stop(old_size)) {
      const std::string& s = config_.stop[match->second];
      const size_t cut = config_.include_stop_str_in_output ? match->first + s.size() : match->first;
      PX_CHECK_MSG(cut >= released_, "a stop string began in text already released");
      text_.resize(cut);
      finished_ = true;
      step.finish = FinishKind::kStop;
      step.stop_string = s;
      step.text = release(cut);
      return step;
    }
  }
  if (num_tokens_ >= config_.max_tokens) {
    finished_ = true;
    step.finish = FinishKind::kLength;
    step.text = release(text_.size());
    return step;
  }
  step.text = release(text_.size() - (config_.include_stop_str_in_output ? 0 : held_back()));
  return step;
}

}  // namespace pixtral::engine
