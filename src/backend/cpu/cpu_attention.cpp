// CPU attention: the plain definition, one (query row, head) at a time, softmax in fp32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "base/thread_pool.h"

namespace pixtral::backend {
namespace {

// out[hd] = softmax(q·K[j]ᵀ·scale over j < n) · V, with key/value rows fetched by index.
template <typename KeyRow, typename ValueRow>
void attend_row(const float* q, int64_t head_dim, int64_t n, float scale, const KeyRow& key_row,
                const ValueRow& value_row, std::vector<float>& scores, float* out) {
  scores.resize(static_cast<size_t>(n));
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    const float* k = key_row(j);
    float dot = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) dot += q[d] * k[d];
    scores[j] = dot * scale;
    max_score = std::max(max_score, scores[j]);
  }
  double denom = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    denom += scores[j];
  }
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float wgt = static_cast<float>(scores[j] / denom);
    const float* v = value_row(j);
    for (int64_t d = 0; d < head_dim; ++d) out[d] += wgt * v[d];
  }
}

}  // namespace

void CpuBackend::paged_attention(const PagedAttentionParams& p) {
  const int64_t num_heads = p.q.dim(1), head_dim = p.q.dim(2);
  const int64_t block_size = p.k_cache.dim(1), num_kv_heads = p.k_cache.dim(2);
  const int64_t group = num_heads / num_kv_heads;
  const int64_t max_blocks = p.block_tables.dim(1);
  const int32_t* q_start = p.q_start.as<int32_t>();
  const int32_t* kv_len = p.kv_len.as<int32_t>();
  const int32_t* tables = p.block_tables.as<int32_t>();
  const float* k_cache = p.k_cache.as<float>();
  const float* v_cache = p.v_cache.as<float>();
  const int64_t first_row = q_start[0], num_rows = q_start[p.num_seqs] - first_row;

  // One work item per (query row, head); find the row's sequence by a scan (S is small).
  base::ThreadPool::global().parallel_for(num_rows * num_heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores;
    for (int64_t item = b; item < e; ++item) {
      const int64_t row = first_row + item / num_heads, head = item % num_heads;
      int64_t s = 0;
      while (q_start[s + 1] <= row) ++s;
      const int64_t q_len = q_start[s + 1] - q_start[s];
      const int64_t pos = kv_len[s] - q_len + (row - q_start[s]);  // causal: sees 0..pos
      const int32_t* table = tables + s * max_blocks;
      const int64_t kv_head = head / group;
      auto cache_row = [&](const float* cache, int64_t j) {
        const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
        return cache + (slot * num_kv_heads + kv_head) * head_dim;
      };
      attend_row(p.q.as<float>() + (row * num_heads + head) * head_dim, head_dim, pos + 1, p.scale,
                 [&](int64_t j) { return cache_row(k_cache, j); },
                 [&](int64_t j) { return cache_row(v_cache, j); }, scores,
                 p.out.as<float>() + (row * num_heads + head) * head_dim);
    }
  });
}

void CpuBackend::varlen_attention(const VarlenAttentionParams& p) {
  const int64_t n = p.q.dim(0), num_heads = p.q.dim(1), head_dim = p.q.dim(2);
  const int32_t* cu = p.cu_seqlens.as<int32_t>();
  base::ThreadPool::global().parallel_for(n * num_heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores;
    for (int64_t item = b; item < e; ++item) {
      const int64_t row = item / num_heads, head = item % num_heads;
      int64_t s = 0;
      while (cu[s + 1] <= row) ++s;
      const int64_t begin = cu[s], len = cu[s + 1] - cu[s];
      auto at = [&](const Tensor& t, int64_t j) {
        return t.as<float>() + ((begin + j) * num_heads + head) * head_dim;
      };
      attend_row(p.q.as<float>() + (row * num_heads + head) * head_dim, head_dim, len, p.scale,
                 [&](int64_t j) { return at(p.k, j); }, [&](int64_t j) { return at(p.v, j); }, scores,
                 p.out.as<float>() + (row * num_heads + head) * head_dim);
    }
  });
}

}  // namespace pixtral::backend
