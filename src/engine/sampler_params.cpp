#include "engine/sampler_params.h"

#include <cmath>
#include <sstream>

namespace pixtral::engine {

namespace {

template <typename T>
std::string str(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// "field must be <rule>, got <value>." (vLLM's wording).
template <typename T>
Status field_error(const char* field, const char* rule, T value) {
  return invalid_argument(std::string(field) + " must be " + rule + ", got " + str(value) + ".");
}

bool in_range(float v, float lo, float hi) { return v >= lo && v <= hi; }  // false for NaN

Status validate_distribution(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return field_error("temperature", "non-negative and finite", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return field_error("top_p", "in (0, 1]", p.top_p);
  if (p.top_k < -1) return field_error("top_k", "0 or -1 (disable), or at least 1", p.top_k);
  if (!in_range(p.min_p, 0.0f, 1.0f)) return field_error("min_p", "in [0, 1]", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return field_error("repetition_penalty", "greater than zero and finite", p.repetition_penalty);
  if (!in_range(p.presence_penalty, -2.0f, 2.0f))
    return field_error("presence_penalty", "in [-2, 2]", p.presence_penalty);
  if (!in_range(p.frequency_penalty, -2.0f, 2.0f))
    return field_error("frequency_penalty", "in [-2, 2]", p.frequency_penalty);
  return Status::ok();
}

Status validate_stopping(const SamplingParams& p, int64_t vocab_size) {
  if (p.max_tokens && *p.max_tokens < 1) return field_error("max_tokens", "at least 1", *p.max_tokens);
  if (p.min_tokens < 0) return field_error("min_tokens", "greater than or equal to 0", p.min_tokens);
  if (p.max_tokens && p.min_tokens > *p.max_tokens)
    return field_error("min_tokens", ("less than or equal to max_tokens=" + str(*p.max_tokens)).c_str(),
                       p.min_tokens);
  for (const auto& s : p.stop)
    if (s.empty()) return invalid_argument("stop cannot contain an empty string.");
  for (int32_t id : p.stop_token_ids) {
    if (id < 0 || (vocab_size > 0 && id >= vocab_size))
      return field_error("stop_token_ids",
                         vocab_size > 0 ? ("token ids in [0, " + str(vocab_size) + ")").c_str() : "non-negative ids",
                         id);
  }
  return Status::ok();
}

}  // namespace

Status validate(const SamplingParams& params, int64_t vocab_size) {
  PX_RETURN_IF_ERROR(validate_distribution(params));
  PX_RETURN_IF_ERROR(validate_stopping(params, vocab_size));
  if (params.top_logprobs < 0 || params.top_logprobs > kMaxTopLogprobs)
    return field_error("top_logprobs", ("in [0, " + str(kMaxTopLogprobs) + "]").c_str(), params.top_logprobs);
  if (params.top_logprobs > 0 && !params.logprobs)
    return invalid_argument("when using top_logprobs, logprobs must be set to true.");
  if (params.n < 1 || params.n > kMaxN) return field_error("n", ("in [1, " + str(kMaxN) + "]").c_str(), params.n);
  return Status::ok();
}

SamplingParams child_params(const SamplingParams& params, int64_t index) {
  SamplingParams child = params;
  child.n = 1;
  if (params.seed) child.seed = *params.seed + static_cast<uint64_t>(index);
  return child;
}

Result<int64_t> effective_max_tokens(const SamplingParams& params, int64_t prompt_tokens,
                                     int64_t context_tokens) {
  const std::string limit = "This model's maximum context length is " + str(context_tokens) + " tokens. ";
  if (!params.max_tokens) {
    if (prompt_tokens >= context_tokens)
      return invalid_argument(limit + "However, your request has " + str(prompt_tokens) +
                              " input tokens. Please reduce the length of the input messages.");
    return context_tokens - prompt_tokens;
  }
  if (prompt_tokens + *params.max_tokens > context_tokens)
    return invalid_argument(limit + "However, you requested " + str(prompt_tokens + *params.max_tokens) +
                            " tokens (" + str(prompt_tokens) + " in the messages, " + str(*params.max_tokens) +
                            " in the completion). Please reduce the length of the messages or completion.");
  return *params.max_tokens;
}

}  // namespace pixtral::engine
