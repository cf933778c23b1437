#include "engine/generator.h"

#include <algorithm>
#include <numeric>

namespace pixtral::engine {

namespace {

// Runs one chunk of the sequence and returns the logits of its last row (host f32).
Result<std::vector<float>> step(const model::PixtralModel& model, model::KvCache& cache,
                                const std::vector<int32_t>& tokens, int64_t start_pos,
                                const std::vector<int32_t>& block_table, const backend::Tensor& image_embeds,
                                int64_t image_row_begin) {
  model::DecoderBatch batch;
  batch.seqs.push_back({.token_ids = tokens, .start_pos = start_pos, .block_table = block_table,
                        .image_embeds = image_embeds, .image_row_begin = image_row_begin});
  PX_ASSIGN_OR_RETURN(backend::TensorBuffer logits, model.forward(batch, cache));
  std::vector<float> host(static_cast<size_t>(model.config().text.vocab_size));
  model.backend().download_f32(logits, host.data());
  return host;
}

}  // namespace

Result<GenerationResult> generate(const model::PixtralModel& model, const GenerationRequest& request,
                                  const TokenCallback& on_token) {
  const auto& config = model.config();
  const int64_t prompt_len = static_cast<int64_t>(request.prompt.size());
  if (prompt_len == 0) return invalid_argument("the prompt is empty");
  if (prompt_len + request.max_tokens > config.text.max_position_embeddings)
    return out_of_range("prompt (" + std::to_string(prompt_len) + " tokens) + max_tokens (" +
                        std::to_string(request.max_tokens) + ") exceeds the context of " +
                        std::to_string(config.text.max_position_embeddings) + " tokens");
  const auto image_id = static_cast<int32_t>(config.vision.image_token_id);
  const int64_t image_tokens = std::count(request.prompt.begin(), request.prompt.end(), image_id);
  backend::TensorBuffer image_embeds;
  if (!request.images.empty()) {
    std::vector<model::ImageInput> inputs;
    for (const auto& img : request.images) inputs.push_back({img.height, img.width, img.pixels.data()});
    PX_ASSIGN_OR_RETURN(image_embeds, model.encode_images(inputs));
  }
  const int64_t feature_rows = image_embeds.tensor().empty() ? 0 : image_embeds.tensor().dim(0);
  if (image_tokens != feature_rows)
    return invalid_argument("the prompt has " + std::to_string(image_tokens) + " [IMG] tokens but the images have " +
                            std::to_string(feature_rows) + " patches");

  const int64_t capacity = prompt_len + request.max_tokens;
  std::vector<int32_t> table(static_cast<size_t>((capacity + request.block_size - 1) / request.block_size));
  std::iota(table.begin(), table.end(), 0);
  model::KvCache cache = model.make_kv_cache(static_cast<int64_t>(table.size()), request.block_size);

  // Prefill in chunks; only the last chunk's last row is sampled from.
  std::vector<float> logits;
  int64_t pos = 0, image_row = 0;
  while (pos < prompt_len) {
    const int64_t len = std::min(request.prefill_chunk, prompt_len - pos);
    std::vector<int32_t> chunk(request.prompt.begin() + pos, request.prompt.begin() + pos + len);
    PX_ASSIGN_OR_RETURN(logits, step(model, cache, chunk, pos, table, image_embeds.tensor(), image_row));
    image_row += std::count(chunk.begin(), chunk.end(), image_id);
    pos += len;
  }

  Sampler sampler(request.sampling);
  GenerationResult result;
  const int64_t vocab = config.text.vocab_size;
  // Decode steps run on persistent buffers (one recorded graph on GPU backends).
  auto runner = model.make_decode_runner(cache, 1, static_cast<int64_t>(table.size()));
  for (int64_t i = 0; i < request.max_tokens; ++i) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    result.tokens.push_back(token);
    if (std::find(request.stop_ids.begin(), request.stop_ids.end(), token) != request.stop_ids.end()) {
      result.finish = GenerationResult::Finish::kStop;
      return result;
    }
    if (!on_token(token)) {
      result.finish = GenerationResult::Finish::kCallback;
      return result;
    }
    if (i + 1 == request.max_tokens) break;
    model::DecoderBatch batch;
    batch.seqs.push_back({.token_ids = {token}, .start_pos = pos, .block_table = table});
    PX_ASSIGN_OR_RETURN(backend::Tensor out, runner->step(batch));
    model.backend().download_f32(out, logits.data());
    ++pos;
  }
  result.finish = GenerationResult::Finish::kLength;
  return result;
}

}  // namespace pixtral::engine
