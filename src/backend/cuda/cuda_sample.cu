// The sample op on the device: one block of 1024 threads per row of logits, the canonical
// algorithm of ops.h SampleParams with the arithmetic of backend/sample_math.h, so every id equals
// the CPU backend's (backend/sample_row.cpp) bit for bit.
//
// Per row:
//  1. penalties (rows with entries only): the row copied to the f32 workspace, then the row's
//     entries applied in order, 1024 at a time in parallel when their tokens are distinct (a
//     shared-memory hash finds repeats), else by one thread in order;
//  2. argmax (value, then the lower id) -> greedy's answer and x_max;
//  3. top-k: the k-th largest p by radix select over the bits of p (non-negative floats order as
//     their bit patterns): three digits (11, 11, 8 bits), each a pass over the row that recomputes
//     p and histograms the candidates' digits with shared-memory atomics;
//  4. top-p: the same radix select with weight histograms (integer atomics are exact, so the sums
//     do not depend on the order; three 32-bit histograms of 14-bit parts of the weights) finds p*
//     (the probability at the cut); the tokens at p* stay in id order up to the cut, counted from
//     a block scan of tie counts;
//  5. the draw: each thread owns a contiguous id range, a block-wide exclusive scan of its kept
//     weight finds the thread whose range holds the target, and warp 0 walks that range (a warp
//     scan over the lanes' shares, then one lane's share).
// p is recomputed in every pass (the row is read again from L2/HBM) rather than stored. Rows are
// read 8 ids at a time (one 16-byte load of bf16, two of f32) when V % 8 == 0 and the rows are
// 16-byte aligned, else id by id.
#include <type_traits>

#include "backend/cuda/cuda_sample.h"
#include "backend/sample_math.h"

namespace pixtral::backend::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 2048;  // radix digits of up to 11 bits; p <= 1 has bits < 2^30
constexpr int kVec = 8;      // ids per vector load
// Up to this vocabulary the weight histograms are three uint32 histograms of 14-bit parts of the
// weights (each part sum < 2^18 · 2^14 = 2^32): 32-bit shared atomics are native, 64-bit ones
// are not and cost several times a pass.
constexpr int64_t kSplitWeightsMaxVocab = int64_t{1} << 18;
constexpr int kHashSlots = 2048;  // repeated tokens among 1024 penalty entries
constexpr unsigned kFullMask = 0xffffffffu;

struct Shared {
  union {
    unsigned int count[kBins];           // top-k: tokens per digit
    unsigned int weight_part[3][kBins];  // top-p, V <= 2^18: weight bits [0, 14), [14, 28), [28, 41)
    unsigned long long weight[kBins];    // top-p, larger V: uint64 weights per digit
  } hist;
  int hash[kHashSlots];
  unsigned long long warp_sum[kWarps];
  float warp_best[kWarps];
  long long warp_best_id[kWarps];
  float best;
  long long best_id;
  unsigned int sel_bin;
  unsigned long long sel_above;
  int repeated;
  int walk_owner;  // the draw: the thread whose id range holds the target
  unsigned long long walk_before, walk_ties_before;
};

__device__ __forceinline__ float to_f32(bf16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_f32(float v) {
  return v;
}

// One row of logits, or its penalised copy in the workspace.
template <typename T>
struct Row {
  const T* logits;
  const float* penalised;  // nullptr: no entries for this row
  int64_t vocab;
  bool vectors_aligned;  // vocab % kVec == 0 and 16-byte aligned rows: whole-vector loads

  __device__ __forceinline__ int64_t vectors() const { return (vocab + kVec - 1) / kVec; }
  __device__ __forceinline__ float at(int64_t i) const {
    return penalised != nullptr ? penalised[i] : to_f32(logits[i]);
  }

  // x[k] = the value of id kVec·q + k (0 past the vocabulary).
  __device__ __forceinline__ void load(int64_t q, float (&x)[kVec]) const {
    const int64_t base = q * kVec;
    if (vectors_aligned && penalised != nullptr) {  // written by this block: plain loads
      const float4 a = *reinterpret_cast<const float4*>(penalised + base);
      const float4 b = *reinterpret_cast<const float4*>(penalised + base + 4);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else if (vectors_aligned && std::is_same<T, bf16>::value) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(logits + base));
      const unsigned int words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        x[2 * k] = __uint_as_float(words[k] << 16);
        x[2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
      }
    } else if (vectors_aligned) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(logits + base));
      const float4 b = __ldg(reinterpret_cast<const float4*>(logits + base) + 1);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    } else {
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const int64_t i = base + k;
        x[k] = i >= vocab ? 0.0f : penalised != nullptr ? penalised[i] : to_f32(logits[i]);
      }
    }
  }
};

// fn(id, x) for this thread's ids: vectors threadIdx.x, + 1024, ... (coalesced), two loads in
// flight; any order.
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_strided(const Row<T>& row, Fn&& fn) {
  const int64_t n = row.vectors();
  int64_t q = threadIdx.x;
  for (; q + kThreads < n; q += 2 * kThreads) {
    float a[kVec], b[kVec];
    row.load(q, a);
    row.load(q + kThreads, b);
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (q * kVec + k < row.vocab) fn(q * kVec + k, a[k]);
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if ((q + kThreads) * kVec + k < row.vocab) fn((q + kThreads) * kVec + k, b[k]);
  }
  if (q < n) {
    float a[kVec];
    row.load(q, a);
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (q * kVec + k < row.vocab) fn(q * kVec + k, a[k]);
  }
}

// fn(id, x) for the ids of vectors [q_begin, q_end) in increasing order while it returns true.
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_in_order(const Row<T>& row, int64_t q_begin, int64_t q_end,
                                                  Fn&& fn) {
  for (int64_t q = q_begin; q < q_end; q += 2) {
    float a[kVec], b[kVec];
    row.load(q, a);
    const bool second = q + 1 < q_end;
    if (second) row.load(q + 1, b);
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if (q * kVec + k < row.vocab && !fn(q * kVec + k, a[k])) return;
    if (!second) return;
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      if ((q + 1) * kVec + k < row.vocab && !fn((q + 1) * kVec + k, b[k])) return;
  }
}

// Inclusive prefix sum over the warp in lane order.
__device__ __forceinline__ unsigned long long warp_inclusive_scan(unsigned long long v) {
  const int lane = threadIdx.x & 31;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const unsigned long long n = __shfl_up_sync(kFullMask, v, offset);
    if (lane >= offset) v += n;
  }
  return v;
}

// Exclusive prefix sum over the block in thread order; *total = the sum of all.
__device__ unsigned long long block_exclusive_scan(unsigned long long v, unsigned long long* total,
                                                   Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned long long inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const unsigned long long n = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += n;
  }
  if (lane == 31) sh.warp_sum[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    unsigned long long w = sh.warp_sum[lane];
    for (int offset = 1; offset < 32; offset <<= 1) {
      const unsigned long long n = __shfl_up_sync(kFullMask, w, offset);
      if (lane >= offset) w += n;
    }
    sh.warp_sum[lane] = w;
  }
  __syncthreads();
  const unsigned long long warp_before = warp > 0 ? sh.warp_sum[warp - 1] : 0;
  *total = sh.warp_sum[kWarps - 1];
  __syncthreads();  // warp_sum is reused by the next scan
  return warp_before + inclusive - v;
}

// The first index in [0, n) whose row is >= key (n if none), rows non-decreasing: each round
// probes 1024 evenly spaced positions of the remaining window.
__device__ long long block_lower_bound(const int32_t* rows, long long n, long long key) {
  long long lo = 0, hi = n;  // the answer lies in [lo, hi]
  while (lo < hi) {
    const long long step = (hi - lo + kThreads - 1) / kThreads;
    const long long pos = lo + threadIdx.x * step;
    const int below = pos < hi && rows[pos] < key;
    const int count = __syncthreads_count(below);  // probes below key form a prefix
    if (count == 0) {
      hi = lo;
    } else {
      const long long next = lo + count * step;
      if (next < hi) hi = next;
      lo = lo + (count - 1) * step + 1;
    }
  }
  return lo;
}

// Traps on entries outside their ranges or out of row order; block b checks its share of them.
__device__ void check_entries(const SampleArgs& a) {
  const long long e_begin = a.num_entries * blockIdx.x / a.rows,
                  e_end = a.num_entries * (blockIdx.x + 1) / a.rows;
  for (long long e = e_begin + threadIdx.x; e < e_end; e += kThreads) {
    const int32_t row = a.penalty_row[e], token = a.penalty_token[e];
    if (row < 0 || row >= a.rows || token < 0 || token >= a.vocab) __trap();
    if (e + 1 < a.num_entries && a.penalty_row[e + 1] < row) __trap();
  }
}

// Copies the row into `out` (f32) and applies the entries [begin, end) in their order.
template <typename T>
__device__ void apply_penalties(const SampleArgs& a, const T* logits, float* out, long long begin,
                                long long end, Shared& sh) {
  const int tid = threadIdx.x;
  for (int64_t i = tid; i < a.vocab; i += kThreads) out[i] = to_f32(logits[i]);
  for (long long base = begin; base < end; base += kThreads) {
    const long long n = end - base < kThreads ? end - base : kThreads;
    for (int s = tid; s < kHashSlots; s += kThreads) sh.hash[s] = -1;
    if (tid == 0) sh.repeated = 0;
    __syncthreads();  // also orders the copy above before the first entry
    int token = -1;
    if (tid < n) {
      token = a.penalty_token[base + tid];
      unsigned int slot = (static_cast<unsigned int>(token) * 2654435761u) >> 21;  // 11 bits
      while (true) {
        const int prev = atomicCAS(&sh.hash[slot], -1, token);
        if (prev == -1) break;
        if (prev == token) {
          sh.repeated = 1;
          break;
        }
        slot = (slot + 1) & (kHashSlots - 1);
      }
    }
    __syncthreads();
    if (sh.repeated == 0) {
      if (tid < n)
        out[token] = sample_penalize(out[token], a.penalty_rep[base + tid], a.penalty_sub[base + tid]);
    } else if (tid == 0) {
      for (long long e = base; e < base + n; ++e) {
        const int32_t t = a.penalty_token[e];
        out[t] = sample_penalize(out[t], a.penalty_rep[e], a.penalty_sub[e]);
      }
    }
    __syncthreads();
  }
}

// The largest logit and its lowest id (id = vocab when every logit is NaN) into sh.best, sh.best_id.
template <typename T>
__device__ void block_argmax(const Row<T>& row, Shared& sh) {
  float best = -INFINITY;
  long long best_id = row.vocab;
  for_each_strided(row, [&](int64_t i, float v) {
    if (sample_argmax_better(v, i, best, best_id)) {
      best = v;
      best_id = i;
    }
  });
  const auto reduce = [&] {
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float v = __shfl_xor_sync(kFullMask, best, offset);
      const long long id = __shfl_xor_sync(kFullMask, best_id, offset);
      if (sample_argmax_better(v, id, best, best_id)) {
        best = v;
        best_id = id;
      }
    }
  };
  reduce();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sh.warp_best[warp] = best;
    sh.warp_best_id[warp] = best_id;
  }
  __syncthreads();
  if (warp == 0) {
    best = sh.warp_best[lane];
    best_id = sh.warp_best_id[lane];
    reduce();
    if (lane == 0) {
      sh.best = best;
      sh.best_id = best_id;
    }
  }
  __syncthreads();
}

struct Selection {
  unsigned int value = 0;        // bits of the selected p
  unsigned long long above = 0;  // amount of the candidates with a larger p
  unsigned long long rest = 0;   // target - above: what the candidates at value must supply (>= 1)
};

// Radix select over the bits of p: the value v with amount(p > v) < target <= amount(p >= v),
// where a token's amount is 1 (kWeights false: top-k, every token) or its weight when p >= lo
// (kWeights: top-p), and target = target_of(total amount). Returns false, selecting nothing, when
// the total is 0.
template <bool kWeights, typename T, typename TargetOf>
__device__ bool radix_select(const Row<T>& row, float x_max, float inv_t, float lo, TargetOf target_of,
                             Shared& sh, Selection* out) {
  const int tid = threadIdx.x;
  const bool split = row.vocab <= kSplitWeightsMaxVocab;
  unsigned int prefix = 0, mask = 0;
  unsigned long long above = 0, target = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = pass == 0 ? 19 : pass == 1 ? 8 : 0;
    const unsigned int digit_mask = pass == 2 ? 0xffu : 0x7ffu;
    for (int b = tid; b < kBins; b += kThreads) {
      if (!kWeights) {
        sh.hist.count[b] = 0;
      } else if (split) {
        sh.hist.weight_part[0][b] = sh.hist.weight_part[1][b] = sh.hist.weight_part[2][b] = 0;
      } else {
        sh.hist.weight[b] = 0;
      }
    }
    if (tid == 0) {
      sh.sel_bin = 0;
      sh.sel_above = 0;
    }
    __syncthreads();
    for_each_strided(row, [&](int64_t, float x) {
      const float p = sample_prob(x, x_max, inv_t);
      const unsigned int bits = __float_as_uint(p);
      if ((bits & mask) != prefix) return;
      const unsigned int bin = (bits >> shift) & digit_mask;
      if (!kWeights) {
        atomicAdd(&sh.hist.count[bin], 1u);
        return;
      }
      const unsigned long long w = p >= lo ? sample_weight(p) : 0ull;
      if (w == 0) return;
      if (!split) {
        atomicAdd(&sh.hist.weight[bin], w);
        return;
      }
      const auto low = static_cast<unsigned int>(w & 0x3fffu),
                 mid = static_cast<unsigned int>((w >> 14) & 0x3fffu);
      const auto high = static_cast<unsigned int>(w >> 28);
      if (low != 0) atomicAdd(&sh.hist.weight_part[0][bin], low);
      if (mid != 0) atomicAdd(&sh.hist.weight_part[1][bin], mid);
      if (high != 0) atomicAdd(&sh.hist.weight_part[2][bin], high);
    });
    __syncthreads();
    // Thread t owns bins 2047 - 2t and 2046 - 2t: thread order is descending p.
    const int high = kBins - 1 - 2 * tid;
    const auto bin_amount = [&sh, split](int b) -> unsigned long long {
      if (!kWeights) return sh.hist.count[b];
      if (!split) return sh.hist.weight[b];
      return sh.hist.weight_part[0][b] + (static_cast<unsigned long long>(sh.hist.weight_part[1][b]) << 14) +
             (static_cast<unsigned long long>(sh.hist.weight_part[2][b]) << 28);
    };
    const unsigned long long h1 = bin_amount(high), h0 = bin_amount(high - 1);
    unsigned long long total = 0;
    const unsigned long long before = block_exclusive_scan(h1 + h0, &total, sh);
    if (pass == 0) {
      if (total == 0) return false;
      target = target_of(total);
    }
    if (before < target && target <= before + h1 + h0) {
      const bool in_high = target <= before + h1;
      sh.sel_bin = in_high ? high : high - 1;
      sh.sel_above = in_high ? before : before + h1;
    }
    __syncthreads();
    const unsigned int bin = sh.sel_bin;
    const unsigned long long bin_above = sh.sel_above;
    prefix |= bin << shift;
    mask |= digit_mask << shift;
    above += bin_above;
    target -= bin_above;
    __syncthreads();  // hist and sel_* are rewritten by the next pass
  }
  out->value = prefix;
  out->above = above;
  out->rest = target;
  return true;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ Shared sh;
  const int tid = threadIdx.x;
  const long long r = blockIdx.x;
  const int64_t vocab = a.vocab;
  const T* logits = static_cast<const T*>(a.logits) + r * vocab;
  Row<T> row{logits, nullptr, vocab, vocab % kVec == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0};
  if (a.num_entries > 0) {
    check_entries(a);
    const long long begin = block_lower_bound(a.penalty_row, a.num_entries, r);
    const long long end = block_lower_bound(a.penalty_row, a.num_entries, r + 1);
    if (end > begin) {
      float* penalised = a.workspace + r * vocab;
      apply_penalties(a, logits, penalised, begin, end, sh);
      row.penalised = penalised;
      row.vectors_aligned = row.vectors_aligned && reinterpret_cast<uintptr_t>(penalised) % 16 == 0;
    }
  }
  block_argmax(row, sh);
  const float x_max = sh.best;
  const auto argmax_id = static_cast<int32_t>(sh.best_id < vocab ? sh.best_id : 0);
  const float temperature = a.temperature[r];
  if (temperature < kSampleGreedyTemperature) {
    if (tid == 0) a.out_ids[r] = argmax_id;
    return;
  }
  const float inv_t = sample_div(1.0f, temperature);

  float threshold = 0.0f;  // top-k: the k-th largest p
  const int32_t top_k = a.top_k[r];
  if (top_k > 0 && top_k < vocab) {
    Selection s;
    radix_select<false>(
        row, x_max, inv_t, 0.0f,
        [top_k](unsigned long long) { return static_cast<unsigned long long>(top_k); }, sh, &s);
    threshold = __uint_as_float(s.value);
  }
  const float min_p = a.min_p[r];
  const float lo = min_p > threshold ? min_p : threshold;

  const float top_p = a.top_p[r];
  const bool use_top_p = top_p < 1.0f;
  float p_star = 0.0f;
  unsigned long long w_star = 0, ties_kept = 0;  // weight at p*, and how many tokens at p* stay
  if (use_top_p) {
    Selection s;
    const bool any = radix_select<true>(
        row, x_max, inv_t, lo, [top_p](unsigned long long total) { return sample_top_p_cut(top_p, total); },
        sh, &s);
    if (!any) {
      if (tid == 0) a.out_ids[r] = argmax_id;
      return;
    }
    p_star = __uint_as_float(s.value);
    w_star = sample_weight(p_star);
    ties_kept = (s.rest + w_star - 1) / w_star;
  }

  // The draw: thread tid owns the vectors [q_begin, q_end), so its ids are contiguous and the
  // threads' ranges follow each other in id order.
  const int64_t per_thread = (row.vectors() + kThreads - 1) / kThreads;
  const int64_t q_begin = tid * per_thread < row.vectors() ? tid * per_thread : row.vectors();
  const int64_t q_end = q_begin + per_thread < row.vectors() ? q_begin + per_thread : row.vectors();
  unsigned long long weight = 0, ties = 0;
  for_each_in_order(row, q_begin, q_end, [&](int64_t, float x) {
    const float p = sample_prob(x, x_max, inv_t);
    if (!(p >= lo)) return true;
    if (!use_top_p || p > p_star) {
      weight += sample_weight(p);
    } else if (p == p_star) {
      ++ties;
    }
    return true;
  });
  unsigned long long ties_before = 0, ties_total = 0;
  if (use_top_p) {
    ties_before = block_exclusive_scan(ties, &ties_total, sh);
    const unsigned long long mine = ties_kept > ties_before ? ties_kept - ties_before : 0;
    weight += w_star * (mine < ties ? mine : ties);
  }
  unsigned long long total = 0;
  const unsigned long long before = block_exclusive_scan(weight, &total, sh);
  if (total == 0) {
    if (tid == 0) a.out_ids[r] = argmax_id;
    return;
  }
  const unsigned long long target = sample_draw_target(a.uniform[r], total);
  if (before <= target && target < before + weight) {  // exactly one thread
    sh.walk_owner = tid;
    sh.walk_before = before;
    sh.walk_ties_before = ties_before;
  }
  __syncthreads();
  if (tid >= 32) return;
  // Warp 0 walks the owner's ids: each lane a contiguous share, a warp scan of the lanes' tie
  // counts and kept weights, then the lane holding the target walks its share.
  const int lane = tid;
  const int64_t owner_q =
      sh.walk_owner * per_thread < row.vectors() ? sh.walk_owner * per_thread : row.vectors();
  const int64_t id_begin = owner_q * kVec < vocab ? owner_q * kVec : vocab;
  const int64_t id_end = (owner_q + per_thread) * kVec < vocab ? (owner_q + per_thread) * kVec : vocab;
  const int64_t per_lane = (id_end - id_begin + 31) / 32;
  const int64_t lane_begin = id_begin + lane * per_lane < id_end ? id_begin + lane * per_lane : id_end;
  const int64_t lane_end = lane_begin + per_lane < id_end ? lane_begin + per_lane : id_end;
  unsigned long long lane_ties = 0;
  if (use_top_p)
    for (int64_t i = lane_begin; i < lane_end; ++i)
      lane_ties += sample_prob(row.at(i), x_max, inv_t) == p_star;
  const unsigned long long lane_ties_before =
      sh.walk_ties_before + warp_inclusive_scan(lane_ties) - lane_ties;
  // Whether id i (probability p) is kept; rank counts the ties at p* seen so far in id order.
  const auto kept = [&](float p, unsigned long long& rank) {
    if (!(p >= lo)) return false;
    if (!use_top_p || p > p_star) return true;
    return p == p_star && ++rank <= ties_kept;
  };
  unsigned long long lane_weight = 0, rank = lane_ties_before;
  for (int64_t i = lane_begin; i < lane_end; ++i) {
    const float p = sample_prob(row.at(i), x_max, inv_t);
    if (kept(p, rank)) lane_weight += sample_weight(p);
  }
  const unsigned long long lane_after = sh.walk_before + warp_inclusive_scan(lane_weight);
  const unsigned int holds = __ballot_sync(kFullMask, target < lane_after);
  if (lane != __ffs(holds) - 1) return;
  unsigned long long cumulative = lane_after - lane_weight;
  rank = lane_ties_before;
  for (int64_t i = lane_begin; i < lane_end; ++i) {
    const float p = sample_prob(row.at(i), x_max, inv_t);
    if (!kept(p, rank)) continue;
    cumulative += sample_weight(p);
    if (cumulative > target) {
      a.out_ids[r] = static_cast<int32_t>(i);
      return;
    }
  }
}

}  // namespace

void launch_sample(const SampleArgs& a, cudaStream_t s) {
  if (a.rows == 0) return;
  const auto grid = static_cast<unsigned int>(a.rows);
  if (a.logits_bf16) {
    sample_kernel<bf16><<<grid, kThreads, 0, s>>>(a);
  } else {
    sample_kernel<float><<<grid, kThreads, 0, s>>>(a);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace pixtral::backend::cuda
