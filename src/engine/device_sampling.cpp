#include "engine/device_sampling.h"

#include <cstring>
#include <string>

namespace pixtral::engine {

void DeviceSampleBatch::add(const DeviceSampleRow& row) {
  const auto r = static_cast<int32_t>(rows());
  temperature.push_back(row.temperature);
  top_k.push_back(row.top_k);
  top_p.push_back(row.top_p);
  min_p.push_back(row.min_p);
  uniform.push_back(row.uniform);
  for (const auto& [token, penalty] : row.penalties) {
    penalty_row.push_back(r);
    penalty_token.push_back(token);
    penalty_rep.push_back(penalty.first);
    penalty_sub.push_back(penalty.second);
  }
}

void DeviceSampleBatch::clear() {
  for (auto* v : {&temperature, &top_p, &min_p, &penalty_rep, &penalty_sub}) v->clear();
  for (auto* v : {&top_k, &penalty_row, &penalty_token}) v->clear();
  uniform.clear();
}

Status DeviceSampleBatch::run(backend::Backend& backend, const backend::Tensor& logits,
                              std::vector<int32_t>* ids) const {
  const int64_t r = rows();
  if (logits.shape.rank != 2 || logits.dim(0) != r)
    return invalid_argument("device sampling: logits " + logits.shape.to_string() + " for " +
                            std::to_string(r) + " rows");
  ids->assign(static_cast<size_t>(r), 0);
  if (r == 0) return Status::ok();
  const int64_t vocab = logits.dim(1);
  std::vector<size_t> entries;  // the entries whose token lies in the vocabulary
  for (size_t e = 0; e < penalty_token.size(); ++e)
    if (penalty_token[e] >= 0 && penalty_token[e] < vocab) entries.push_back(e);
  const auto num_entries = static_cast<int64_t>(entries.size());

  // Everything in one I32 buffer (4-byte words), the doubles first (8-byte aligned):
  // uniform [2R] | temperature, top_p, min_p, top_k, out_ids [R each] | row, token, rep, sub [E each].
  const int64_t words = 7 * r + 4 * num_entries;
  std::vector<int32_t> host(static_cast<size_t>(words));
  auto put = [&host](int64_t offset, const void* src, int64_t count) {
    std::memcpy(host.data() + offset, src, static_cast<size_t>(count) * 4);
  };
  put(0, uniform.data(), 2 * r);
  put(2 * r, temperature.data(), r);
  put(3 * r, top_p.data(), r);
  put(4 * r, min_p.data(), r);
  put(5 * r, top_k.data(), r);
  for (int64_t i = 0; i < num_entries; ++i) {
    const size_t e = entries[static_cast<size_t>(i)];
    put(7 * r + i, &penalty_row[e], 1);
    put(7 * r + num_entries + i, &penalty_token[e], 1);
    put(7 * r + 2 * num_entries + i, &penalty_rep[e], 1);
    put(7 * r + 3 * num_entries + i, &penalty_sub[e], 1);
  }
  const backend::TensorBuffer buffer = backend.alloc(base::DType::kI32, {words});
  backend.upload(host.data(), base::DType::kI32, buffer);
  const auto view = [&buffer](int64_t offset, base::DType dtype, int64_t count) {
    backend::Tensor t;
    t.data = buffer.tensor().as<int32_t>() + offset;
    t.dtype = dtype;
    t.shape = {count};
    return count > 0 ? t : backend::Tensor{};
  };
  const backend::Tensor out = view(6 * r, base::DType::kI32, r);
  backend.sample({.logits = logits,
                  .temperature = view(2 * r, base::DType::kF32, r),
                  .top_k = view(5 * r, base::DType::kI32, r),
                  .top_p = view(3 * r, base::DType::kF32, r),
                  .min_p = view(4 * r, base::DType::kF32, r),
                  .uniform = view(0, base::DType::kF64, r),
                  .penalty_row = view(7 * r, base::DType::kI32, num_entries),
                  .penalty_token = view(7 * r + num_entries, base::DType::kI32, num_entries),
                  .penalty_rep = view(7 * r + 2 * num_entries, base::DType::kF32, num_entries),
                  .penalty_sub = view(7 * r + 3 * num_entries, base::DType::kF32, num_entries),
                  .out_ids = out});
  backend.download_i32(out, ids->data());
  return Status::ok();
}

}  // namespace pixtral::engine
