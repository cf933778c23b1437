// The Mistral-Nemo-shaped decoder over the paged KV cache (ref: spec/model.md §6, §7).
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/layers.h"
#include "model/step_inputs.h"
#include "model/weights.h"

namespace pixtral::model {

// Device tensors of one step, T tokens, S sequences, R logit rows (views; owned elsewhere).
struct StepTensors {
  backend::Tensor ids, positions, slots;     // I32 [T]
  backend::Tensor q_start;                   // I32 [S + 1]
  backend::Tensor kv_len;                    // I32 [S]
  backend::Tensor block_tables;              // I32 [S, max_blocks_per_seq]
  backend::Tensor logit_rows;                // I32 [R]
  backend::Tensor x;                         // [T, D] residual stream
  BlockTensors block;                        // per-layer scratch, T rows
  backend::Tensor selected;                  // [R, D]
  backend::Tensor logits;                    // [R, V]
  int64_t num_seqs = 0, max_kv_len = 0, max_q_len = 0;
  int64_t num_decode_seqs = 0;  // leading sequences with one row: attended apart from the chunks
};

// Image rows to place before the first layer: src rows go to the batch rows in `dst` (I32 [N]).
struct ImageScatterTensors {
  backend::Tensor src, dst;
};

class TextDecoder {
 public:
  TextDecoder(const io::ModelConfig& config, const DecoderWeights& weights) : config_(config), weights_(weights) {}

  // Runs one step: writes the chunk's K/V into the cache and returns logits [R, V] for the rows
  // selected by each chunk (all rows, or the last one), in batch order. Allocates its buffers.
  Result<backend::TensorBuffer> forward(backend::Backend& b, const DecoderBatch& batch, KvCache& cache) const;

  // The op sequence of a step over tensors already filled; issues no allocation or transfer, so
  // it can be recorded as a graph.
  void compute(backend::Backend& b, const StepTensors& t, const std::vector<ImageScatterTensors>& images,
               KvCache& cache) const;

  // Paged attention of one layer: one call, or (decode rows ahead of prefill chunks) one call for
  // the decode rows and one for the chunks, so each takes the kernel made for its shape.
  void attend(backend::Backend& b, const StepTensors& t, const backend::Tensor& q, const backend::Tensor& out,
              KvCache& cache, size_t layer) const;

  // Validates token ids against the vocabulary.
  Status check_tokens(const StepInputs& in) const;

 private:
  const io::ModelConfig& config_;
  const DecoderWeights& weights_;
};

// Decode steps (one new token per sequence, no images) over persistent buffers, recorded once per
// (batch size, block-table width) as a graph where the backend supports it and replayed
// afterwards. With graphs, a batch is padded up to the next graph size (1, 2, 4, 8, then
// multiples of 8) by repeating its last sequence (same token, slot and context: the repeated rows
// write the same K/V bytes and their logits are dropped), so a handful of graphs serve every
// batch size; capture_graphs() records them ahead of the first request. The width is the longest table rounded up to a power of two (at least 16 blocks),
// so the per-step table upload and the attention launch follow the real context instead of the
// longest one the model allows (64 sequences × 8,192 blocks would be 2 MB per step), and one
// graph serves every context up to its width.
class DecodeRunner {
 public:
  DecodeRunner(backend::Backend& b, const TextDecoder& decoder, const io::ModelConfig& config, KvCache& cache,
               int64_t max_seqs, int64_t max_blocks_per_seq);

  // Logits [S, V] of the batch (a view valid until the next step). Every chunk has one token.
  Result<backend::Tensor> step(const DecoderBatch& batch);
  // Records the graphs of every padded batch size up to max_seqs for the block-table widths up to
  // `max_width` blocks, running dummy steps that write K/V into block 0: call it before the cache
  // holds anything. No-op without graph support.
  void capture_graphs(int64_t max_width);
  int64_t graphs_captured() const { return static_cast<int64_t>(graphs_.size()); }

 private:
  StepTensors tensors_for(int64_t num_seqs, int64_t width) const;
  int64_t width_for(int64_t blocks) const;
  int64_t padded_size(int64_t num_seqs) const;
  Result<backend::Tensor> run(StepInputs in, int64_t num_seqs);

  backend::Backend& b_;
  const TextDecoder& decoder_;
  const io::ModelConfig& config_;
  KvCache& cache_;
  int64_t max_seqs_, max_blocks_;
  backend::TensorBuffer ids_, positions_, slots_, q_start_, kv_len_, tables_, rows_, x_, selected_, logits_;
  BlockScratch scratch_;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<backend::Graph>> graphs_;  // by (sequences, width)
  std::vector<int32_t> padded_tables_;
};

}  // namespace pixtral::model
