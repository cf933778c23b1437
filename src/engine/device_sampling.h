// DeviceSampleBatch: the rows of one step packed for backend::Backend::sample, one row per row of
// the step's logits, and the call itself: one upload of the packed inputs, the op, one download of
// the ids. The ids equal what each request's Sampler::sample would pick from the same logits
// (call Sampler::accept with them).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "pixtral/status.h"

namespace pixtral::engine {

struct DeviceSampleBatch {
  // Row r of the logits is sampled with the r-th row added.
  void add(const DeviceSampleRow& row);
  int64_t rows() const { return static_cast<int64_t>(temperature.size()); }
  void clear();

  // Samples every row of logits [rows(), V] (on the backend that holds it) into ids [rows()].
  // Penalty entries outside [0, V) are dropped (as Sampler::sample ignores them). Synchronizes (the
  // ids come back to the host).
  Status run(backend::Backend& backend, const backend::Tensor& logits, std::vector<int32_t>* ids) const;

  // SampleParams' per-row inputs [R] and penalty entries [E] (rows ascending).
  std::vector<float> temperature, top_p, min_p;
  std::vector<int32_t> top_k;
  std::vector<double> uniform;
  std::vector<int32_t> penalty_row, penalty_token;
  std::vector<float> penalty_rep, penalty_sub;
};

}  // namespace pixtral::engine
