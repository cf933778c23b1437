// Internal to backend/cuda: CUDA_CHECK, bf16 utilities and the kernel launchers that CudaBackend
// calls. Launchers take raw device pointers plus sizes, enqueue on `stream` and never synchronize.
// Element types: `bf16` is __nv_bfloat16; all activation/weight tensors are row-major bf16.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define CUDA_CHECK(expr)                                                                          \
  do {                                                                                            \
    const cudaError_t px_cuda_err_ = (expr);                                                      \
    if (px_cuda_err_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d: CUDA error %s: %s (%s)\n", __FILE__, __LINE__,                \
                   cudaGetErrorName(px_cuda_err_), cudaGetErrorString(px_cuda_err_), #expr);      \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

// Checks the launch of the kernel just issued (configuration errors; faults surface later).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace pixtral::backend::cuda {

using bf16 = __nv_bfloat16;

inline unsigned int ceil_div(int64_t a, int64_t b) { return static_cast<unsigned int>((a + b - 1) / b); }

// ---- cuda_kernels.cu ------------------------------------------------------------------------
// dst[i] = mean + stddev * counter_normal(seed, i), the formula of base::counter_normal.
void launch_fill_random_bf16(bf16* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t s);
void launch_fill_random_f32(float* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t s);
// y[t, :] = bf16(w * bf16(x * rsqrt(mean(x²) + eps))); x [t, d], y may alias x.
void launch_rms_norm(const bf16* x, const bf16* w, bf16* y, int64_t t, int64_t d, float eps, cudaStream_t s);
// In-place rotary embedding of x [t, h, hd]; pos_col == nullptr selects 1D.
void launch_rope(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h, int64_t hd,
                 float theta, cudaStream_t s);
void launch_silu_mul(const bf16* gate_up, bf16* out, int64_t t, int64_t f, cudaStream_t s);
void launch_gelu(bf16* x, int64_t n, cudaStream_t s);
// Row copies: dst row dst_index[i] (or i) = src row src_index[i] (or i), rows of row_bytes;
// indices are checked against src_rows/dst_rows on the device (a bad index traps).
void launch_copy_rows(const void* src, const int32_t* src_index, int64_t src_rows, void* dst,
                      const int32_t* dst_index, int64_t dst_rows, int64_t n, int64_t row_bytes, cudaStream_t s);
// kv_write: k_cache row slots[i] = k row i and v_cache row slots[i] = v row i, one launch.
void launch_kv_write(const void* k, const void* v, void* k_cache, void* v_cache, const int32_t* slots, int64_t num_slots,
                     int64_t n, int64_t row_bytes, cudaStream_t s);
// image F32 [c, h, w] -> patches bf16 [(h/p)·(w/p), c·p·p].
void launch_patchify(const float* image, bf16* patches, int64_t c, int64_t h, int64_t w, int64_t p,
                     cudaStream_t s);
// y[i] = bf16(x[i] + y[i]) or bias broadcast: y[m, n] += bias[n] (used by matmul fallbacks).
void launch_add_bias(bf16* y, const bf16* bias, int64_t m, int64_t n, cudaStream_t s);

// ---- cuda_elementwise.cu ---------------------------------------------------------------------
// 16-byte vectorized versions of the element-wise ops above (the launchers above call them first);
// each returns false, launching nothing, when a size or pointer does not allow 8-element accesses.
bool launch_rms_norm_vectorized(const bf16* x, const bf16* w, bf16* y, int64_t t, int64_t d, float eps, cudaStream_t s);
bool launch_rope_vectorized(bf16* x, const int32_t* pos, const int32_t* pos_col, int64_t t, int64_t h, int64_t hd,
                            float theta, cudaStream_t s);
bool launch_silu_mul_vectorized(const bf16* gate_up, bf16* out, int64_t t, int64_t f, cudaStream_t s);
bool launch_gelu_vectorized(bf16* x, int64_t n, cudaStream_t s);
// qkv [t, (h + 2·hkv)·hd] (one GEMM over [wq; wk; wv]) → q [t, h, hd] with 1D rope at pos; k
// with rope into k_cache row slots[i], v into v_cache row slots[i] (cache rows of hkv·hd; a slot
// outside [0, num_slots) traps). False (nothing launched) unless hd % 8 == 0 and 16-byte aligned.
bool launch_qkv_split_rope(const bf16* qkv, bf16* q, bf16* k_cache, bf16* v_cache, const int32_t* pos,
                           const int32_t* slots, int64_t num_slots, int64_t t, int64_t h, int64_t hkv, int64_t hd,
                           float theta, cudaStream_t s);

// ---- cuda_matmul.cu -------------------------------------------------------------------------
// Small-M GEMV: y[m, n] = Σ_k x[m, k]·w[n, k] (+ bias[n]) (+ y[m, n] when accumulate), m <= 8,
// k % 8 == 0, x/w (and norm_w) 16-byte aligned; with the fusions of GemvFusion around it.
constexpr int64_t kGemvMaxM = 8;
constexpr size_t kGemvMaxStagedBytes = 200 * 1024;  // x [m, k] staged in shared memory, at most

enum class GemvFusion {
  kNone,     // y = x·wᵀ (+ bias) (+ y)
  kSwiglu,   // w = [gate; up] ([2F, K]): y [m, F] = silu(bf16(x·gateᵀ)) ⊙ bf16(x·upᵀ)
  kQkvRope,  // w = [wq; wk; wv]: y = q [m, q_cols] roped; k roped and v into the caches at slots[m]
};

struct GemvArgs {
  const bf16* x = nullptr;  // [m, k]
  const bf16* w = nullptr;  // [n, k]
  const bf16* bias = nullptr;
  bf16* y = nullptr;
  int64_t m = 0, n = 0, k = 0;
  bool accumulate = false;
  const bf16* norm_w = nullptr;  // [k]: x rows RMS-normalized (rms_norm's rounding) before the product
  float eps = 1e-5f;
  // kQkvRope
  const int32_t* pos = nullptr;    // [m]
  const int32_t* slots = nullptr;  // [m]
  bf16* k_cache = nullptr;         // [num_slots, kv_cols]
  bf16* v_cache = nullptr;
  int64_t num_slots = 0, q_cols = 0, kv_cols = 0, head_dim = 0;
  float theta = 10000.0f;
  int wpc = 1;                // set by the launcher
  bool prefetch_all = false;  // set by the launcher: the whole matrix goes to L2 before the wait
  // Ring kernels only (set by the launcher from GemvTuning): ring depth per warp, barriers among
  // the warps of one column (pair) instead of the block, weight reads marked L2 evict-first.
  int stages = 3;
  bool local_sync = false;
  bool evict_first = false;
};
// Matrices up to this size are prefetched into L2 whole before the GEMV waits for the previous
// kernel (w_o, 42 MB, behind decode attention); larger ones only their first chunks.
constexpr size_t kGemvL2PrefetchBytes = 44u << 20;

// How the GEMV kernel streams the weights (GemvTuning::pipe, PIXTRAL_CUDA_GEMV_PIPE).
enum class GemvPipe {
  kRegisters,  // "0": loads into registers, kUnroll per lane in flight; block barriers per group
  kRing,       // "1": a cp.async ring per warp that runs ahead across column groups (the next
               // group's weights are in flight during a group's reduction); block barriers
  kRingLocal,  // "2": the ring, and barriers only among the warps of one column (SwiGLU / RoPE:
               // of one column pair), partial sums double-buffered; none at one warp per column
};

// Launch choices (cuda_bench sweeps them; the backend reads PIXTRAL_CUDA_GEMV_WPC, _BLOCKS, _STAGE,
// _PREFETCH, _UNROLL, _PIPE, _STAGES, _WARP, _GRID, _EVICT and PIXTRAL_CUDA_PDL).
struct GemvTuning {
  int warps_per_col = 0;   // 1, 2, 4, 8 warps share an output column over K slices; 0: from the shape
  int blocks_per_sm = 0;   // cap on resident blocks per SM (persistent grid); 0: occupancy
  bool stage_x = true;     // plain GEMVs also stage x in shared memory when it fits (fused ones
                           // always do); "0" reads it through L1 (faster for wo/down alone, not
                           // in the whole decode step: 100.6 vs 98.9 tok/s measured)
  bool pdl = true;         // programmatic dependent launch
  bool prefetch_all = false;  // whole matrices up to kGemvL2PrefetchBytes into L2 before the wait
                              // (only pays when the previous kernel lets the GEMV start early)
  int unroll = 4;             // 4 or 8 16-byte weight chunks per lane per step (ring: per stage)
  GemvPipe pipe = GemvPipe::kRegisters;
  int stages = 3;             // ring kernels: stages per warp (2..8), all but one in flight
  // The warp kernel: each warp owns whole outputs (a column, a gate/up or a RoPE pair) over all
  // of K, spread round-robin over the blocks; ring streaming, no barrier after the prologue;
  // ignores wpc / pipe. Taken for M <= warp_max_m; -1 (default): M = 1 unless a pipe or a K split
  // is forced. Measured on the H100 (cuda_bench --decode-graph, batch 1): 9.55 -> 9.00 ms per token
  // at 512 context, 11.01 -> 10.75 at 32k (w_o 20.1 -> 15.8 us, the fused w_qkv 27.2 -> 23.7 us).
  int warp_max_m = -1;
  bool full_grid = false;     // a block per column group (warp kernel: per 8 outputs), not a
                              // persistent grid of what is resident at once
  bool evict_first = false;   // ring kernels: weight reads with an L2 evict-first policy
};

void launch_gemv_fused(GemvArgs a, GemvFusion fusion, const GemvTuning& tuning, int num_sms, cudaStream_t s);
void launch_gemv(const bf16* x, const bf16* w, const bf16* bias, bf16* y, int64_t m, int64_t n, int64_t k,
                 bool accumulate, const GemvTuning& tuning, int num_sms, cudaStream_t s);
// Warps per output column for an [n, k] weight (swiglu: [gate | up] halves) on a persistent grid
// of `slots` blocks.
int gemv_warps_per_col(int64_t n, int64_t k, bool swiglu, int64_t slots);
size_t gemv_staged_bytes(int64_t m, int64_t k);

// ---- cuda_skinny.cu --------------------------------------------------------------------------
// The batched-decode GEMM on tensor cores for up to 64 rows (the GEMV's job past 8 rows): y[m, n] =
// bf16(x·wᵀ (+ bias) (+ y when accumulate)), or with swiglu (w = [gate; up], [2F, K]) y [m, F] =
// silu(bf16(x·gateᵀ)) ⊙ bf16(x·upᵀ). Needs k a multiple of the geometry's K slice and n of its tile
// rows (64 or 128 each; skinny_fits), 16-byte aligned x, w, y. K is split over the blocks of a
// cluster when the matrix has few tiles.
constexpr int64_t kSkinnyMaxM = 64;
constexpr int kSkinnyMaxSplits = 8;  // a portable cluster

struct SkinnyArgs {
  const bf16* x = nullptr;  // [m, k]
  const bf16* w = nullptr;  // [n, k]
  const bf16* bias = nullptr;
  bf16* y = nullptr;        // [m, n], or [m, n / 2] with swiglu
  int64_t m = 0, n = 0, k = 0;
  bool accumulate = false;
};
// Taken up to max_m rows (default 16: measured faster than cuBLASLt there; at 32-64 rows cuBLASLt is
// faster on the decoder's smaller matrices: docs/cuda.md). PIXTRAL_CUDA_SKINNY ("0": off; "N": up to
// N <= 64 rows), PIXTRAL_CUDA_SKINNY_SPLITS (1-8; 0: the plan) and _GEOMETRY (0-2; either of these
// two alone takes it up to 64 rows, for tests and benchmarks).
struct SkinnyTuning {
  int64_t max_m = 16;
  int splits = 0;
  bool pdl = true;
  int geometry = 1;  // tile rows, K per stage and ring depth (cuda_skinny.cu's Geometries)
};
bool skinny_fits(int64_t m, int64_t n, int64_t k, bool swiglu, int geometry);
// K splits for `tiles` tiles of `kiters` 64-wide slices on `slots` resident blocks.
int skinny_splits(int64_t tiles, int64_t kiters, int64_t slots);
void launch_skinny(const SkinnyArgs& a, bool swiglu, const SkinnyTuning& tuning, int num_sms, cudaStream_t s);

// ---- cuda_attention.cu ----------------------------------------------------------------------
// Launch choices of the attention op for many query rows (prefill chunks, varlen segments): the
// backend reads PIXTRAL_CUDA_ATTN ("wgmma", the default where wgmma_attention_supported; "mma32",
// "flash2") and PIXTRAL_CUDA_ATTN_WARPS ("4",
// "8"; mma32 only) so that the variants can be compared and tested in one process.
enum class PrefillAttention {
  kMma32,   // prefill_kernel: 32 (row, head) pairs per warp, a 3-4 stage cp.async ring
  kFlash2,  // flash_kernel with 4 warps of 16 pairs (the first tensor-core kernel)
  kWgmma,   // the sm_90a wgmma kernel (cuda_attention_wgmma.cuh); uneven GQA groups as kMma32
};
struct AttentionTuning {
  PrefillAttention prefill = PrefillAttention::kMma32;
  int prefill_warps = 0;  // mma32: 4 or 8 warps of 32 pairs per block; 0: by head_dim (64: 4, 128: 8)
  int wgmma_splits = 0;   // wgmma: KV splits per (query tile, KV head) (at most 16); 0: plan_wgmma's choice
};

// Whether the build holds sm_90a code (PIXTRAL_CUDA_SM90A) and the device is compute capability
// 9.0: the wgmma kernel's condition.
bool wgmma_attention_supported(int device);

// Geometry of one attention call; see AttentionArgs in cuda_attention.cu for the layouts.
struct AttentionArgs {
  const bf16* q = nullptr;        // [T, H, hd]
  const bf16* k = nullptr;        // paged: cache [blocks, block_size, Hkv, hd]; varlen: [N, H, hd]
  const bf16* v = nullptr;        // same layout as k
  bf16* out = nullptr;            // [T, H, hd]
  const int32_t* q_start = nullptr;       // paged: [S+1]; varlen: cu_seqlens [S+1]
  const int32_t* kv_len = nullptr;        // paged: [S]; varlen: nullptr
  const int32_t* block_tables = nullptr;  // paged: [S, max_blocks]; varlen: nullptr
  int64_t max_blocks = 0, block_size = 0;
  int64_t num_seqs = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t max_q_len = 0, max_kv_len = 0, total_rows = 0;
  float scale = 1.0f;
  bool causal = true;  // paged (causal over the cache) vs varlen (bidirectional in a segment)
};
// float workspace needed by launch_attention (split-KV partials); 0 when no split is used.
int64_t attention_workspace_floats(const AttentionArgs& a, const AttentionTuning& t, int num_sms);
void launch_attention(const AttentionArgs& a, const AttentionTuning& t, float* workspace, int num_sms,
                      cudaStream_t s);

// ---- cuda_attention_decode.cu ---------------------------------------------------------------
// The decode kernel for paged calls with max_q_len · group <= 16, head_dim 64/128 and 16-byte
// aligned q/k/v/out (decode_attention_fits). It merges its key splits itself: workspace holds
// decode_attention_workspace_floats f32 partials (nullptr when 0); counters holds
// decode_attention_counters u32 that must be zero before the first launch and are left zero by
// every launch. pdl: launched with programmatic stream serialization (griddepcontrol.wait first).
bool decode_attention_fits(const AttentionArgs& a);
int64_t decode_attention_workspace_floats(const AttentionArgs& a, int num_sms);
int64_t decode_attention_counters(const AttentionArgs& a);
void launch_decode_attention(const AttentionArgs& a, float* workspace, uint32_t* counters, int num_sms, bool pdl,
                             cudaStream_t s);

}  // namespace pixtral::backend::cuda
