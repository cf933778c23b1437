#include "engine/scheduler_batch.h"

#include <algorithm>

#include "base/check.h"

namespace pixtral::engine {

Result<model::DecoderBatch> build_decoder_batch(const DecoderBatchParams& params) {
  PX_CHECK(params.step != nullptr && params.scheduler != nullptr);
  const int32_t image_token_id = params.scheduler->params().image_token_id;
  model::DecoderBatch batch;
  batch.seqs.reserve(params.step->chunks.size());
  for (const ScheduledChunk& chunk : params.step->chunks) {
    const Sequence* seq = params.scheduler->find(chunk.seq);
    PX_CHECK_MSG(seq != nullptr && seq->num_computed() == chunk.start_pos, "the step is stale");
    const auto begin = seq->token_ids().begin() + chunk.start_pos;
    model::SequenceChunk out{.token_ids = {begin, begin + chunk.num_tokens}, .start_pos = chunk.start_pos};
    out.block_table.reserve(chunk.block_table.size());
    for (BlockId block : chunk.block_table) out.block_table.push_back(block.value);
    // Only prompt tokens can be images: a generated [IMG] id is an ordinary token.
    out.image_token_limit = seq->num_prompt_tokens();
    const int64_t prompt_part = std::clamp<int64_t>(seq->num_prompt_tokens() - chunk.start_pos, 0, chunk.num_tokens);
    if (std::find(out.token_ids.begin(), out.token_ids.begin() + prompt_part, image_token_id) !=
        out.token_ids.begin() + prompt_part) {
      if (params.image_features) out.image_embeds = params.image_features(chunk.seq);
      if (out.image_embeds.empty())
        return invalid_argument("sequence " + std::to_string(chunk.seq.value) +
                                ": a chunk with [IMG] tokens but no image features");
      out.image_row_begin = seq->image_rows_before(chunk.start_pos, image_token_id);
    }
    batch.seqs.push_back(std::move(out));
  }
  return batch;
}

}  // namespace pixtral::engine
