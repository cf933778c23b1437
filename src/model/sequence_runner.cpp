#include "model/sequence_runner.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace pixtral::model {

Result<std::vector<float>> run_sequence(const PixtralModel& model, const std::vector<int32_t>& token_ids,
                                        const std::vector<ImageData>& images, const SequenceRunOptions& options) {
  const auto& config = model.config();
  const int64_t total = static_cast<int64_t>(token_ids.size());
  if (total == 0) return invalid_argument("input_ids is empty");
  const int64_t image_tokens = std::count(token_ids.begin(), token_ids.end(),
                                          static_cast<int32_t>(config.vision.image_token_id));
  backend::TensorBuffer image_embeds;
  if (!images.empty()) {
    std::vector<ImageInput> inputs;
    for (const auto& img : images) inputs.push_back({img.height, img.width, img.pixels.data()});
    PX_ASSIGN_OR_RETURN(image_embeds, model.encode_images(inputs));
  }
  const int64_t feature_rows = image_embeds.tensor().empty() ? 0 : image_embeds.tensor().dim(0);
  if (image_tokens != feature_rows)  // every reference asserts this (ref: spec/model.md §6)
    return invalid_argument("input_ids has " + std::to_string(image_tokens) + " [IMG] tokens but the images have " +
                            std::to_string(feature_rows) + " patches");

  const int64_t num_blocks = (total + options.block_size - 1) / options.block_size;
  std::vector<int32_t> table(static_cast<size_t>(num_blocks));
  std::iota(table.begin(), table.end(), 0);
  if (options.shuffle_blocks) std::shuffle(table.begin(), table.end(), std::mt19937_64(options.seed));
  KvCache cache = model.make_kv_cache(num_blocks, options.block_size);

  const int64_t vocab = config.text.vocab_size;
  std::vector<float> logits(static_cast<size_t>(total * vocab));
  const int64_t prefill_end = std::max<int64_t>(1, total - options.decode_tail);
  int64_t pos = 0, image_row = 0;
  while (pos < total) {
    int64_t len = pos < prefill_end ? prefill_end - pos : 1;
    if (pos < prefill_end && options.chunk_size > 0) len = std::min(len, options.chunk_size);
    SequenceChunk chunk;
    chunk.token_ids.assign(token_ids.begin() + pos, token_ids.begin() + pos + len);
    chunk.start_pos = pos;
    chunk.block_table = table;
    chunk.image_embeds = image_embeds.tensor();
    chunk.image_row_begin = image_row;
    chunk.all_logits = true;
    image_row += std::count(chunk.token_ids.begin(), chunk.token_ids.end(),
                            static_cast<int32_t>(config.vision.image_token_id));
    DecoderBatch batch;
    batch.seqs.push_back(std::move(chunk));
    PX_ASSIGN_OR_RETURN(backend::TensorBuffer out, model.forward(batch, cache));
    model.backend().download_f32(out, logits.data() + pos * vocab);
    pos += len;
  }
  model.backend().synchronize();
  return logits;
}

}  // namespace pixtral::model
