// Sequence: one completion being generated, as the scheduler sees it: its tokens (prompt, then
// generated), how many of them are in the KV cache, its images and their token ranges, and the
// chained block hashes of its full blocks (for the prefix cache).
// Thread-compatibility: owned by the Scheduler; used from the engine loop thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "kv_cache/block_manager.h"
#include "kv_cache/content_hash.h"

namespace pixtral::engine {

using kv_cache::SeqId;

struct SequenceParams {
  SeqId id;
  std::vector<int32_t> prompt;              // token ids, [IMG]/[IMG_BREAK]/[IMG_END] included
  std::vector<kv_cache::ImageSpan> images;  // prompt order; each image's hash and token range
  int64_t max_tokens = 256;                 // generated tokens at most (>= 1)
  // n > 1: the ids of the other samples of this prompt. When the prompt's last chunk is computed,
  // each is forked off this sequence (sharing its blocks) and starts with its own sampled token.
  std::vector<SeqId> forks;
};

enum class SequenceState { kWaiting, kRunning };

class Sequence {
 public:
  explicit Sequence(SequenceParams params);

  SeqId id() const { return id_; }
  SequenceState state() const { return state_; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }
  int64_t num_tokens() const { return static_cast<int64_t>(token_ids_.size()); }
  int64_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int64_t num_generated() const { return num_tokens() - num_prompt_tokens_; }
  int64_t max_tokens() const { return max_tokens_; }
  // Tokens whose K/V are in the cache; the rest are computed by later steps.
  int64_t num_computed() const { return num_computed_; }
  int64_t num_uncomputed() const { return num_tokens() - num_computed_; }
  int64_t num_preemptions() const { return num_preemptions_; }
  const std::vector<kv_cache::ImageSpan>& images() const { return images_; }
  // The samples still to be forked off at the end of the prompt (empty once forked, and for n = 1).
  const std::vector<SeqId>& forks() const { return forks_; }

  // Chained hashes of the full blocks of token_ids(), brought up to date.
  const std::vector<kv_cache::ContentHash>& update_block_hashes(int64_t block_size);

  // Indices of the images whose token range meets [begin, end).
  std::vector<int64_t> images_in(int64_t begin, int64_t end) const;
  bool image_encoded(int64_t image) const { return image_encoded_[static_cast<size_t>(image)]; }
  void mark_image_encoded(int64_t image) { image_encoded_[static_cast<size_t>(image)] = true; }
  // Feature rows consumed before position pos: the [IMG] tokens in [0, pos).
  int64_t image_rows_before(int64_t pos, int32_t image_token_id) const;

  // Transitions driven by the scheduler.
  void start_running(int64_t num_cached_tokens);
  void advance(int64_t num_tokens);  // a scheduled chunk was computed
  void append_token(int32_t token);  // a sampled token (not computed yet)
  // Preemption by recompute: nothing is in the cache any more, images are to be encoded again.
  void reset_for_recompute();
  // A new sample of this prompt: the same tokens, computed state, images and block hashes under
  // `child`, without forks of its own. Called once the prompt is computed; clears forks().
  Sequence fork(SeqId child);

 private:
  SeqId id_;
  SequenceState state_ = SequenceState::kWaiting;
  std::vector<int32_t> token_ids_;
  int64_t num_prompt_tokens_ = 0;
  int64_t max_tokens_ = 0;
  int64_t num_computed_ = 0;
  int64_t num_preemptions_ = 0;
  std::vector<kv_cache::ImageSpan> images_;
  std::vector<bool> image_encoded_;
  std::vector<kv_cache::ContentHash> block_hashes_;
  std::vector<SeqId> forks_;
};

}  // namespace pixtral::engine
