#include "model/step_inputs.h"

#include <algorithm>

namespace pixtral::model {

Result<StepInputs> build_step_inputs(const DecoderBatch& batch, int64_t block_size, int64_t num_blocks,
                                     int32_t image_token_id) {
  StepInputs in;
  in.num_seqs = static_cast<int64_t>(batch.seqs.size());
  for (const auto& s : batch.seqs)
    in.max_blocks_per_seq = std::max<int64_t>(in.max_blocks_per_seq, static_cast<int64_t>(s.block_table.size()));
  in.max_blocks_per_seq = std::max<int64_t>(in.max_blocks_per_seq, 1);
  in.q_start.push_back(0);
  in.block_tables.assign(static_cast<size_t>(in.num_seqs * in.max_blocks_per_seq), 0);
  for (int64_t si = 0; si < in.num_seqs; ++si) {
    const SequenceChunk& s = batch.seqs[si];
    const std::string where = "sequence " + std::to_string(si);
    const int64_t q_len = static_cast<int64_t>(s.token_ids.size());
    if (q_len == 0) return invalid_argument(where + ": no tokens in the chunk");
    const int64_t kv_len = s.start_pos + q_len;
    if (static_cast<int64_t>(s.block_table.size()) * block_size < kv_len)
      return invalid_argument(where + ": block table covers fewer than " + std::to_string(kv_len) + " tokens");
    for (size_t b = 0; b < s.block_table.size(); ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= num_blocks)
        return invalid_argument(where + ": block id " + std::to_string(s.block_table[b]) + " out of the cache");
      in.block_tables[si * in.max_blocks_per_seq + static_cast<int64_t>(b)] = s.block_table[b];
    }
    StepInputs::ImageScatter scatter{si, s.image_row_begin, {}};
    for (int64_t i = 0; i < q_len; ++i) {
      const int64_t pos = s.start_pos + i;
      const int64_t row = static_cast<int64_t>(in.token_ids.size());
      in.token_ids.push_back(s.token_ids[i]);
      in.positions.push_back(static_cast<int32_t>(pos));
      in.slot_mapping.push_back(static_cast<int32_t>(s.block_table[pos / block_size] * block_size + pos % block_size));
      if (s.token_ids[i] == image_token_id && pos < s.image_token_limit)
        scatter.dst_rows.push_back(static_cast<int32_t>(row));
      if (s.all_logits || i == q_len - 1) in.logit_rows.push_back(static_cast<int32_t>(row));
    }
    if (!scatter.dst_rows.empty()) {
      const int64_t needed = s.image_row_begin + static_cast<int64_t>(scatter.dst_rows.size());
      if (s.image_embeds.empty() || s.image_embeds.dim(0) < needed)
        return invalid_argument(where + ": " + std::to_string(needed) + " image feature rows needed for its [IMG] tokens, " +
                                std::to_string(s.image_embeds.empty() ? 0 : s.image_embeds.dim(0)) + " given");
      in.images.push_back(std::move(scatter));
    }
    in.q_start.push_back(static_cast<int32_t>(in.token_ids.size()));
    in.kv_len.push_back(static_cast<int32_t>(kv_len));
    in.max_kv_len = std::max(in.max_kv_len, kv_len);
    in.max_q_len = std::max(in.max_q_len, q_len);
    if (q_len == 1 && in.num_decode_seqs == si) ++in.num_decode_seqs;
  }
  in.num_tokens = static_cast<int64_t>(in.token_ids.size());
  return in;
}

}  // namespace pixtral::model
