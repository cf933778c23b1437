#include "engine/sequence.h"

#include <algorithm>

#include "base/check.h"

namespace pixtral::engine {

Sequence::Sequence(SequenceParams params)
    : id_(params.id),
      token_ids_(std::move(params.prompt)),
      num_prompt_tokens_(static_cast<int64_t>(token_ids_.size())),
      max_tokens_(params.max_tokens),
      images_(std::move(params.images)),
      image_encoded_(images_.size(), false),
      forks_(std::move(params.forks)) {}

const std::vector<kv_cache::ContentHash>& Sequence::update_block_hashes(int64_t block_size) {
  kv_cache::extend_block_hashes({.token_ids = token_ids_, .images = images_, .block_size = block_size}, block_hashes_);
  return block_hashes_;
}

std::vector<int64_t> Sequence::images_in(int64_t begin, int64_t end) const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < images_.size(); ++i)
    if (images_[i].begin < end && images_[i].end > begin) out.push_back(static_cast<int64_t>(i));
  return out;
}

int64_t Sequence::image_rows_before(int64_t pos, int32_t image_token_id) const {
  PX_CHECK(pos >= 0 && pos <= num_tokens());
  return std::count(token_ids_.begin(), token_ids_.begin() + pos, image_token_id);
}

void Sequence::start_running(int64_t num_cached_tokens) {
  PX_CHECK(state_ == SequenceState::kWaiting);
  PX_CHECK(num_cached_tokens >= 0 && num_cached_tokens < num_tokens());
  state_ = SequenceState::kRunning;
  num_computed_ = num_cached_tokens;
}

void Sequence::advance(int64_t num_tokens) {
  PX_CHECK(state_ == SequenceState::kRunning);
  PX_CHECK(num_tokens > 0 && num_computed_ + num_tokens <= this->num_tokens());
  num_computed_ += num_tokens;
}

void Sequence::append_token(int32_t token) {
  PX_CHECK_MSG(num_computed_ == num_tokens(), "a token is sampled only after every known token is computed");
  token_ids_.push_back(token);
}

void Sequence::reset_for_recompute() {
  PX_CHECK(state_ == SequenceState::kRunning);
  state_ = SequenceState::kWaiting;
  num_computed_ = 0;
  ++num_preemptions_;
  std::fill(image_encoded_.begin(), image_encoded_.end(), false);
}

Sequence Sequence::fork(SeqId child) {
  PX_CHECK(state_ == SequenceState::kRunning && num_computed_ == num_tokens() && num_generated() == 0);
  Sequence out = *this;
  out.id_ = child;
  out.num_preemptions_ = 0;
  out.forks_.clear();
  forks_.clear();
  return out;
}

}  // namespace pixtral::engine
