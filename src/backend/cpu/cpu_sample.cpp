// CpuBackend::sample: per row, the penalty entries in order, then backend::RowSampler (the
// canonical algorithm of ops.h SampleParams). Rows run in parallel on the thread pool.
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/sample_math.h"
#include "backend/sample_row.h"
#include "base/thread_pool.h"

namespace pixtral::backend {
namespace {

// Entries per row of sorted penalty rows: row r owns [begin[r], begin[r + 1]).
std::vector<int64_t> entry_ranges(const int32_t* rows, const int32_t* tokens, int64_t num_entries,
                                  int64_t num_rows, int64_t vocab) {
  std::vector<int64_t> begin(static_cast<size_t>(num_rows) + 1, num_entries);
  int64_t next_row = 0;
  for (int64_t e = 0; e < num_entries; ++e) {
    PX_CHECK_MSG(rows[e] >= 0 && rows[e] < num_rows, "sample: penalty_row out of range");
    PX_CHECK_MSG(rows[e] >= next_row - 1, "sample: penalty entries must be sorted by row");
    PX_CHECK_MSG(tokens[e] >= 0 && tokens[e] < vocab, "sample: penalty_token out of range");
    while (next_row <= rows[e]) begin[static_cast<size_t>(next_row++)] = e;
  }
  return begin;
}

}  // namespace

void CpuBackend::sample(const SampleParams& p) {
  PX_CHECK_MSG(p.logits.dtype == DType::kF32 && p.logits.shape.rank == 2, "sample logits F32 [R, V]");
  const int64_t rows = p.logits.dim(0), vocab = p.logits.dim(1);
  if (rows == 0) return;
  const int64_t num_entries = check_sample_params(p, rows);
  const int32_t* tokens = num_entries > 0 ? p.penalty_token.as<int32_t>() : nullptr;
  const float* reps = num_entries > 0 ? p.penalty_rep.as<float>() : nullptr;
  const float* subs = num_entries > 0 ? p.penalty_sub.as<float>() : nullptr;
  const std::vector<int64_t> begin =
      entry_ranges(num_entries > 0 ? p.penalty_row.as<int32_t>() : nullptr, tokens, num_entries, rows, vocab);
  const float* logits = p.logits.as<float>();
  int32_t* out = p.out_ids.as<int32_t>();
  base::ThreadPool::global().parallel_for(rows, [&](int64_t row_begin, int64_t row_end) {
    RowSampler sampler;
    std::vector<float> x;
    for (int64_t r = row_begin; r < row_end; ++r) {
      x.assign(logits + r * vocab, logits + (r + 1) * vocab);
      for (int64_t e = begin[static_cast<size_t>(r)]; e < begin[static_cast<size_t>(r) + 1]; ++e) {
        float& v = x[static_cast<size_t>(tokens[e])];
        v = sample_penalize(v, reps[e], subs[e]);
      }
      out[r] = sampler.sample(x, {.temperature = p.temperature.as<float>()[r],
                                  .top_k = p.top_k.as<int32_t>()[r],
                                  .top_p = p.top_p.as<float>()[r],
                                  .min_p = p.min_p.as<float>()[r],
                                  .uniform = p.uniform.as<double>()[r]});
    }
  });
}

}  // namespace pixtral::backend
