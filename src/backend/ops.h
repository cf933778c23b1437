// Parameter structs of the backend ops. Every op is asynchronous with respect to the host on
// device backends (ordered on the backend's stream); shapes are checked by the implementations.
// Notation: T = tokens in the step, D = model width, H = heads, Hkv = KV heads, hd = head_dim.
#pragma once

#include "backend/tensor.h"

namespace pixtral::backend {

// y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]) (+ y when accumulate: the residual add).
// x and y are activations; w and bias are weights (the backend's weight dtype).
struct MatmulParams {
  Tensor x;         // [M, K]
  Tensor w;         // [N, K]  (nn.Linear layout)
  Tensor bias;      // [N] or empty
  Tensor y;         // [M, N]
  bool accumulate = false;
};

// y[T, D] = w ⊙ round_act(x · rsqrt(mean(x²) + eps)), statistics in fp32 (spec/model.md §4.2).
struct RmsNormParams {
  Tensor x;       // [T, D]
  Tensor weight;  // [D]
  Tensor y;       // [T, D] (may alias x)
  float eps = 1e-5f;
};

// Rotary embedding on adjacent pairs (2p, 2p+1) — the mistral ("interleaved") convention.
// 1D (decoder): angle_p = pos · theta^(-2p/hd), p < hd/2.
// 2D (vision, spec/model.md §4.3): with f_k = theta^(-2k/hd), pairs p < hd/4 use row·f_{2p},
// pairs p ≥ hd/4 use col·f_{2(p-hd/4)+1}.
struct RopeParams {
  Tensor x;        // [T, H, hd], rotated in place
  Tensor pos;      // I32 [T]: decoder position, or row index for 2D
  Tensor pos_col;  // I32 [T]: column index for 2D; empty for 1D
  float theta = 10000.0f;
};

// out[T, F] = silu(gate_up[:, :F]) ⊙ gate_up[:, F:]   (SwiGLU with w1 and w3 fused as [2F, D]).
struct SiluMulParams {
  Tensor gate_up;  // [T, 2F]
  Tensor out;      // [T, F]
};

// x = 0.5·x·(1 + erf(x/√2)) in place (exact GELU of the adapter, spec/model.md §5).
struct GeluParams {
  Tensor x;  // [T, F]
};

// out[t] = table[ids[t]].
struct EmbeddingParams {
  Tensor table;  // [V, D] (weight)
  Tensor ids;    // I32 [T]
  Tensor out;    // [T, D]
};

// dst[index[i]] = src[i] for each row i (image features into [IMG] rows, spec/model.md §6).
struct ScatterRowsParams {
  Tensor src;    // [N, D]
  Tensor index;  // I32 [N]
  Tensor dst;    // [T, D]
};

// out[i] = src[index[i]] (the rows whose logits are wanted).
struct GatherRowsParams {
  Tensor src;    // [T, D]
  Tensor index;  // I32 [N]
  Tensor out;    // [N, D]
};

// Image [C, H, W] (f32, normalized) -> patches [(H/p)·(W/p), C·p·p], row-major over the patch
// grid, patch vector index c·p·p + ky·p + kx (the Conv2d weight's memory order, §4.1).
struct PatchifyParams {
  Tensor image;    // F32 [C, H, W]
  Tensor patches;  // [(H/p)·(W/p), C·p·p] activation dtype
  int64_t patch_size = 16;
};

// y = RMSNorm(x; norm_weight) · wᵀ, the normalized rows rounded as rms_norm rounds them. With
// swiglu the product's columns are [gate | up] halves (w = [w1; w3], [2F, D]) and
// y[:, j] = silu(a[:, j]) ⊙ a[:, F + j] of the product a rounded to the activation dtype, as
// matmul + silu_mul compute it. (The decoder's FFN input and its final norm + logits.)
struct NormMatmulParams {
  Tensor x;            // [M, K]
  Tensor norm_weight;  // [K]
  Tensor w;            // [N, K]
  Tensor y;            // [M, N], or [M, N/2] with swiglu
  float eps = 1e-5f;
  bool swiglu = false;
};

// Paged KV cache of one layer: [num_blocks, block_size, Hkv, hd]. A token's slot is
// block_id · block_size + offset; sequences map logical blocks to block ids via block tables.
struct KvWriteParams {
  Tensor k;             // [T, Hkv, hd]
  Tensor v;             // [T, Hkv, hd]
  Tensor k_cache;       // [num_blocks, block_size, Hkv, hd]
  Tensor v_cache;       // [num_blocks, block_size, Hkv, hd]
  Tensor slot_mapping;  // I32 [T]
};

// The decoder's attention inputs in one op: [q | k | v] = RMSNorm(x; norm_weight) · w_qkvᵀ with
// w_qkv = [wq; wk; wv], each rounded to the activation dtype; 1D RoPE (interleaved pairs, theta)
// at pos on q and k; q written to `q`, k and v to the paged cache rows slot_mapping[t]. Equal to
// rms_norm + three matmuls + rope ×2 + kv_write.
struct QkvRopeParams {
  Tensor x;             // [T, D]
  Tensor norm_weight;   // [D]
  Tensor w_qkv;         // [(H + 2·Hkv)·hd, D]
  Tensor pos;           // I32 [T]
  Tensor q;             // [T, H, hd]
  Tensor k_cache;       // [num_blocks, block_size, Hkv, hd]
  Tensor v_cache;       // [num_blocks, block_size, Hkv, hd]
  Tensor slot_mapping;  // I32 [T]
  float eps = 1e-5f;
  float theta = 10000.0f;
};

// Causal attention of a batch of sequences over the paged cache (prefill chunks and decode alike).
// Sequence s owns query rows [q_start[s], q_start[s+1]) and has kv_len[s] tokens of context in the
// cache, the new ones included; its query row i sits at position kv_len[s] - q_len[s] + i and sees
// cache positions 0..that position. Query head h reads KV head h / (H / Hkv).
struct PagedAttentionParams {
  Tensor q;             // [T, H, hd]
  Tensor k_cache;       // [num_blocks, block_size, Hkv, hd]
  Tensor v_cache;       // [num_blocks, block_size, Hkv, hd]
  // I32 [S + 1]: sequence s has the rows [q_start[s], q_start[s+1]) of q and out (absolute, so one
  // step's rows can be split over several calls); rows outside [q_start[0], q_start[S]) are left
  // as they are.
  Tensor q_start;
  Tensor kv_len;        // I32 [S]
  Tensor block_tables;  // I32 [S, max_blocks_per_seq]
  Tensor out;           // [T, H, hd]
  float scale = 1.0f;
  int64_t num_seqs = 0;
  int64_t max_kv_len = 0;  // host-known bound, for launch sizing
  int64_t max_q_len = 0;   // host-known bound, for launch sizing
};

// Bidirectional attention within each packed segment (one image each): tokens
// [cu_seqlens[i], cu_seqlens[i+1]) attend only to each other (spec/model.md §4.5).
struct VarlenAttentionParams {
  Tensor q, k, v;       // [N, H, hd]
  Tensor cu_seqlens;    // I32 [num_segments + 1]
  Tensor out;           // [N, H, hd]
  float scale = 1.0f;
  int64_t num_segments = 0;
  int64_t max_seqlen = 0;  // host-known bound
};

// One token per row of logits, by the canonical sampling algorithm: backend/sample_row.h on the
// host, the arithmetic of backend/sample_math.h everywhere, so every backend and the host
// engine::Sampler pick the same ids bit for bit (docs/sampling.md). Per row r, with V the vocab:
//   x = logits[r] as f32, then each penalty entry e of row r, in order, on x[token[e]]:
//       x = (x > 0 ? x / rep[e] : x * rep[e]) - sub[e]        (sub = +inf masks the token)
//   temperature[r] < 1e-5: the argmax of x, the lowest id on ties. Otherwise
//   p = sample_exp((x - max x) * (1 / T)) (the top token's p is 1), w = trunc(p * 2^40);
//   kept: p >= max(min_p, the top_k-th largest p) (ties at the k-th value stay); then, unless
//   top-p is off, in the order (p descending, id ascending) the tokens whose preceding kept weight
//   is < max(1, trunc(top_p * W)), W the kept weight (the most likely token always stays);
//   the draw: t = min(trunc(uniform * K), K - 1) in double, K the final kept weight; the sample is
//   the first kept id, in id order, whose cumulative weight exceeds t. K = 0 (every logit -inf,
//   or non-finite logits): the argmax, as greedy (id 0 when every logit is -inf).
// Penalty entries are sorted by row (penalty_row non-decreasing); a row's entries apply in their
// order, a token may appear in several. Rows must lie in [0, R), tokens in [0, V) (checked: the
// CPU aborts, the CUDA kernel traps).
struct SampleParams {
  Tensor logits;         // [R, V] a float dtype of the backend (CPU f32; CUDA bf16 or f32); not modified
  Tensor temperature;    // F32 [R]
  Tensor top_k;          // I32 [R]  (<= 0 or >= V: off)
  Tensor top_p;          // F32 [R]  (>= 1: off)
  Tensor min_p;          // F32 [R]  (<= 0: off)
  Tensor uniform;        // F64 [R]  the draw in [0, 1): engine::uniform_at(seed, step)
  Tensor penalty_row;    // I32 [E]  non-decreasing (E may be 0: empty tensors)
  Tensor penalty_token;  // I32 [E]
  Tensor penalty_rep;    // F32 [E]
  Tensor penalty_sub;    // F32 [E]
  Tensor out_ids;        // I32 [R]
};

}  // namespace pixtral::backend
