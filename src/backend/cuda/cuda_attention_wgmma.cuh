// Hopper (sm_90a) attention for many query rows: prefill chunks over the paged cache (causal,
// GQA) and the vision encoder's varlen segments (bidirectional), head_dim 64 and 128, bf16 in/out,
// fp32 accumulation; included by cuda_attention.cu, which sends it every call that
// prefill_kernel would take (cuda_attention_prefill.cuh) when the device and the build have
// sm_90a. Same semantics, (row, head) pair packing, heaviest-first block order, split-KV partials
// and device-side kv_len as prefill_kernel. A FlashAttention-3-style first version, without TMA or
// warp specialization:
//  - one block = two consumer warpgroups (256 threads), each owning 64 (row, head) pairs of one
//    KV head of one sequence (BM = 128 pairs: the GQA group's heads share every K/V tile); the Q
//    tile is loaded once into shared memory;
//  - K/V tiles of BN = 128 keys stream through a STAGES-deep cp.async ring (all 256 threads load,
//    paged rows through the block table). mbarriers hand the slots over: full[s] completes when
//    every thread's copies of the tile have landed (cp.async.mbarrier.arrive.noinc), then
//    fence.proxy.async hands them to the async proxy; empty[s] when every warp's wgmmas on the
//    slot are done. So the two warpgroups run decoupled (no block barrier per tile);
//  - S = Q·Kᵀ with wgmma m64n128k16 (A = Q and B = K from shared memory, both K-major), the online
//    softmax in base 2 on the fp32 accumulator fragments, then O += P·V with wgmma m64nHDk16
//    (A = P from registers as bf16, B = V from shared memory, MN-major);
//  - the causal/boundary mask only on the tiles that need it, per warpgroup; a warpgroup skips the
//    tiles wholly past its rows' causal limits (it still takes part in the loads and barriers).
//
// Shared-memory layout and wgmma descriptors. Every tile is 128 rows × HD, stored as HD / 64 column
// halves of [128][64] bf16 (16 KiB each): one row of a half is 128 bytes, and row r's 16-byte
// chunk c sits at chunk c ^ (r & 7). With the tile base
// 1024-byte aligned this is exactly the hardware's 128-byte swizzle (Swizzle<3,4,3>: address bits
// [4,7) XOR bits [7,10)), the layout that a descriptor with layout type SWIZZLE_128B describes.
// Descriptor (64 bits): [0,14) start address >> 4, [16,30) leading byte offset >> 4, [32,46) stride
// byte offset >> 4, [49,52) base offset, [62,64) layout type (1 = 128-byte swizzle).
//  - Q (A) and K (B), K-major, 128B swizzle: the canonical layout is ((8,m),(8 elems,2k)) with
//    rows 128 bytes apart inside an 8-row group and SBO between 8-row groups: 8 · 128 = 1024 bytes.
//    The K extent of one instruction (16 elements = 32 bytes) lies inside one 128-byte swizzle
//    row, so LBO is unused (set to 1, i.e. 16 bytes). The k-th 16-wide slice starts in column
//    half k / 4, 32·(k % 4) bytes into the row (the swizzle is applied to the final address bits,
//    so an offset inside the 1024-byte atom is valid and base offset stays 0). Warpgroup w's Q
//    rows start 64 · 128 = 8192 bytes · w into each half (1024-aligned).
//  - V (B of P·V), stored [keys][d]: N (= d) is contiguous, so B is MN-major (imm-trans-b = 1).
//    The canonical MN-major 128B layout is ((64 elems,m),(8,k)): 64 N-elements in one 128-byte
//    row, LBO between 64-wide N blocks: the column halves, 16 KiB apart (head_dim 128's
//    m64n128k16 reads both; head_dim 64 has one), SBO between groups of 8 K rows (keys):
//    8 · 128 = 1024 bytes. The k-th 16-key slice starts 16 · 128 = 2048·k bytes into the half
//    (1024-aligned).
// Accumulators: m64nN f32 D of a warpgroup = warp w of the group owns rows 16w .. 16w + 15, and
// within the warp the mma.sync m16n8 C layout repeated over N/8 n-tiles: d[4j + e] is row
// lane/4 + 8(e/2), column 8j + 2(lane%4) + (e%2). The A register fragment of m64k16 is the mma.sync
// m16k16 A layout, so S n-tiles 2k and 2k+1 packed to bf16 are exactly P's k-th A fragment.
#pragma once

#include "backend/cuda/cuda_attention_prefill.cuh"

namespace pixtral::backend::cuda::wgmma {

using flash::cp_async16;
using flash::cp_async_commit;
using flash::pack_bf16;
using flash::smem_u32;

constexpr int kBm = 128, kBn = 128, kThreads = 256;
constexpr uint32_t kHalfBytes = 128 * 64 * 2;  // one [128][64] column half of a tile: 16 KiB

template <int HD, int STAGES>
constexpr int smem_bytes() {  // Q + STAGES (K, V) tiles + 2 mbarriers per slot + slack to align the base to 1024
  return (kBm * HD + 2 * STAGES * kBn * HD) * 2 + 16 * STAGES + 1024;
}

// Shared-memory matrix descriptor, 128-byte swizzle (see the file comment).
__device__ __forceinline__ uint64_t make_desc(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  uint64_t d = static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= uint64_t{1} << 62;
  return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Makes this thread's generic-proxy shared-memory writes (cp.async) visible to the async proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// mbarriers of the ring (shared::cta, 64-bit). Slot s has full[s] (256 arrivals: every thread's
// cp.async of the tile, through cp.async.mbarrier.arrive.noinc) and empty[s] (8 arrivals: one per
// warp once its warpgroup's wgmmas on the slot have completed).
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives on bar when every cp.async this thread issued so far has completed (no pending-count
// increment: the barrier's expected count includes this arrival).
__device__ __forceinline__ void cp_async_arrive(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// Register fences: the compiler sees a wgmma's accumulators as written when the asm statement
// issues, and its A registers as free after it; these empty asm statements after wgmma_wait pin
// accumulator reads after the wait and keep the A registers live until then.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
}

// d[64] (+)= A(desc: 64×16, K-major) · B(desc: 16×128, K-major); scale_d 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d)
      : "memory");
}

// d[32] (+)= A(registers: the m64k16 bf16 fragment a) · B(desc: 16×64, MN-major, imm-trans-b 1).
__device__ __forceinline__ void wgmma_m64n64k16_rs_tn(float (&d)[32], const uint32_t (&a)[4], uint64_t db,
                                                      int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d)
      : "memory");
}

// d[64] (+)= A(registers: the m64k16 bf16 fragment a) · B(desc: 16×128, MN-major, imm-trans-b 1).
__device__ __forceinline__ void wgmma_m64n128k16_rs_tn(float (&d)[64], const uint32_t (&a)[4], uint64_t db,
                                                       int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d)
      : "memory");
}

// Byte offset of 16-byte chunk c (< HD / 8) of row r in a [128][HD] tile stored as HD / 64
// column halves of [128][64] (16 KiB each), 128-byte swizzled: the layout of the descriptors.
__device__ __forceinline__ uint32_t tile_offset(int r, int c) {
  return static_cast<uint32_t>((c >> 3) * kHalfBytes + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

// grid: x = tiles_per_seq · num_seqs · num_kv_heads (block x = (rank · num_seqs + seq) ·
// num_kv_heads + kvh, query tile = the sequence's own tile count − 1 − rank: heaviest first),
// z = the key splits; kThreads threads; smem_bytes<HD, STAGES>() of dynamic shared memory. PAGED:
// causal over the block table (the decoder), else bidirectional varlen segments (the encoder);
// head_dim 64 blocks fit two per SM (128 registers).
template <int HD, int STAGES, bool PAGED>
__global__ void __launch_bounds__(kThreads, HD == 64 ? 2 : 1)
    attention_kernel(AttentionArgs a, flash::FlashLaunch l, float* partial) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(STAGES >= 2 && (HD == 64 || HD == 128), "wgmma attention: ring depth, head_dim");
  constexpr int kCh = HD / 8, kRows = kThreads / kCh, kHalves = HD / 64;  // chunks per row, rows per pass
  constexpr uint32_t kQ = kBm * HD * 2, kKv = kBn * HD * 2;               // bytes of Q, of one K or V tile
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t sq = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t skv = sq + kQ;  // slot s: K at skv + 2·s·kKv, V kKv after it
  const uint32_t full = skv + 2 * STAGES * kKv, empty = full + 8 * STAGES;  // slot s's at + 8·s

  const int kvh = static_cast<int>(blockIdx.x % a.num_kv_heads);
  const int64_t rest = blockIdx.x / a.num_kv_heads;
  const int64_t seq = rest % a.num_seqs, rank = rest / a.num_seqs;
  const int g = static_cast<int>(a.num_heads / a.num_kv_heads);
  const int q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int pairs = q_len * g;
  const int tile = (pairs + kBm - 1) / kBm - 1 - static_cast<int>(rank);
  if (tile < 0) return;
  const int p0 = tile * kBm;
  const int kv = PAGED ? a.kv_len[seq] : q_len;  // paged calls are causal, varlen ones are not
  constexpr bool CAUSAL = PAGED;
  const int diag = kv - q_len;  // causal: query row r sees keys 0 .. diag + r
  const int last_row = (min(pairs, p0 + kBm) - 1) / g;
  const int tile_end = CAUSAL ? diag + last_row + 1 : kv;
  const int split_len = static_cast<int>(flash::split_len_for(kv, l.splits, kBn, l.min_split));
  const int k_begin = static_cast<int>(blockIdx.z) * split_len;
  if (k_begin >= tile_end) return;  // combine_kernel reads no split past a row's own key limit
  const int k_end = min(tile_end, k_begin + split_len);
  const int n_tiles = (k_end - k_begin + kBn - 1) / kBn;
  if (threadIdx.x == 0)
    for (int st = 0; st < STAGES; ++st) {
      mbar_init(full + 8 * st, kThreads);
      mbar_init(empty + 8 * st, kThreads / 32);
    }
  __syncthreads();

  // Loads: thread t copies chunk t % kCh of rows t / kCh + kRows·i (kRows is a multiple of 8, so
  // the swizzle of its rows is one offset).
  const int lc = threadIdx.x % kCh, lr = threadIdx.x / kCh;
  const uint32_t ld_off = tile_offset(lr, lc);
  {  // Q rows of pairs p0 .. p0 + 127 (pair p: row p / g, head kvh·g + p % g; zeros past the end)
#pragma unroll
    for (int i = 0; i < kBm / kRows; ++i) {
      const int p = p0 + lr + kRows * i;
      const bool valid = p < pairs;
      const bf16* src = a.q;
      if (valid) src += ((static_cast<int64_t>(q_begin) + p / g) * a.num_heads + kvh * g + p % g) * HD + lc * 8;
      cp_async16(sq + ld_off + static_cast<uint32_t>(i * kRows * 128), src, valid);
    }
  }
  const int32_t* table = PAGED ? a.block_tables + seq * a.max_blocks : nullptr;
  // Block of key j: j >> shift when the block size is a power of two (a shift instead of a
  // division per row and tile), else j / bs.
  const int bs = static_cast<int>(a.block_size), shift = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;
  auto load_kv = [&](int t) {
    const uint32_t slot = skv + static_cast<uint32_t>((t % STAGES) * 2) * kKv + ld_off;
    const int kt = k_begin + t * kBn;
    // The cache rows of this thread's keys (paged: table entry · block size + offset in the block),
    // all computed before the first copy and with no branch between the table loads (rows past
    // k_end take the last key's row: an address in range; their copies read nothing and
    // zero-fill). Looked up row by row, each load sat in its own branch before its copy and the
    // loads ran one after the other, stalling the warp ahead of the tile's S wgmma.
    int32_t row[kBn / kRows];
    auto key = [&](int i) { return min(kt + lr + kRows * i, k_end - 1); };
    if (!PAGED) {
#pragma unroll
      for (int i = 0; i < kBn / kRows; ++i) row[i] = q_begin + key(i);
    } else if (shift >= 0) {
#pragma unroll
      for (int i = 0; i < kBn / kRows; ++i) row[i] = (__ldg(table + (key(i) >> shift)) << shift) + (key(i) & (bs - 1));
    } else {
#pragma unroll
      for (int i = 0; i < kBn / kRows; ++i) row[i] = __ldg(table + key(i) / bs) * bs + key(i) % bs;
    }
#pragma unroll
    for (int i = 0; i < kBn / kRows; ++i) {
      const bool valid = kt + lr + kRows * i < k_end;
      const int64_t off = (static_cast<int64_t>(row[i]) * a.num_kv_heads + kvh) * HD + lc * 8;
      const uint32_t dst = slot + static_cast<uint32_t>(i * kRows * 128);
      cp_async16(dst, a.k + off, valid);
      cp_async16(dst + kKv, a.v + off, valid);
    }
  };
  // Tile s's copies (tile 0's with Q) arrive on full[s].
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st)
    if (st < n_tiles) {
      load_kv(st);
      cp_async_arrive(full + 8 * st);
    }

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const float sl2 = a.scale * kLog2e;
  // This warpgroup's pairs p0 + 64·wg .. + 63: its keys end at wg_end (causal: its last row's
  // limit), the per-row mask starts at wg_mask_from (its first row's limit). Both are uniform
  // over the warpgroup, as the wgmma instructions require.
  const int wp0 = p0 + 64 * wg;
  int wg_end = k_begin, wg_mask_from = k_begin;
  if (wp0 < pairs) {
    const int first = wp0 / g, last = (min(pairs, wp0 + 64) - 1) / g;
    wg_end = CAUSAL ? min(k_end, diag + last + 1) : k_end;
    wg_mask_from = CAUSAL ? min(k_end, diag + first + 1) : k_end;
  }
  // This thread's rows are pairs pair0 and pair0 + 8 (the masked tiles recompute their key
  // limits rather than keep them live through the loop).
  const int pair0 = wp0 + 16 * warp + (lane >> 2);

  float o[HD / 2];  // the m64nHD accumulator: column half hh's n-tile j at o[32·hh + 4j + e]
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};
  const uint32_t q_wg = sq + static_cast<uint32_t>(wg) * 64 * 128;

  // One key tile of this warpgroup: issue S = Q·Kᵀ (issue_scores), then wait for it, the online
  // softmax, O += P·V (finish_tile).
  auto issue_scores = [&](int t, float (&s)[64]) {
    const uint32_t sk = skv + static_cast<uint32_t>((t % STAGES) * 2) * kKv;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const uint32_t off = static_cast<uint32_t>((kk / 4) * kHalfBytes + 32 * (kk % 4));
      wgmma_m64n128k16_ss(s, make_desc(q_wg + off, 16, 1024), make_desc(sk + off, 16, 1024), kk > 0);
    }
    wgmma_commit();
  };
  auto finish_tile = [&](int t, int kt, float (&s)[64]) {
    const uint32_t sv = skv + static_cast<uint32_t>((t % STAGES) * 2 + 1) * kKv;
    wgmma_wait<0>();
    fence_regs(s);

    // Online softmax. This thread holds rows lane/4 (h = 0) and lane/4 + 8 (h = 1) of its warp's
    // 16, keys 8j + 2(lane%4) + (e%2) of n-tile j. The same step as prefill_kernel's tile_softmax,
    // written out here: sharing one helper (s and o cast to its [n][4] arrays) made ptxas spill in
    // the head_dim-64 kernel, whose 128-register cap keeps two blocks per SM (vision layer 173 ->
    // 192.5 us on the H100).
    if (kt + kBn > wg_mask_from) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int lim = CAUSAL ? min(k_end, diag + (pair0 + 8 * h) / g + 1) : k_end;
        const int rel = lim - kt - 2 * (lane & 3);
#pragma unroll
        for (int j = 0; j < kBn / 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            if (8 * j + e >= rel) s[4 * j + 2 * h + e] = -INFINITY;
      }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kBn / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[4 * j + e]);
    float base[2], corr[2];
    bool grew = false;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      const float m_new = fmaxf(m[h], mx[h]);
      // −inf while a row has seen no key yet (causal rows past this split's start, padding):
      // base 0 keeps exp2(−inf − base) = 0 instead of NaN.
      base[h] = m_new == -INFINITY ? 0.0f : m_new * sl2;
      corr[h] = m_new == m[h] ? 1.0f : flash::fast_exp2(fmaf(m[h], sl2, -base[h]));
      grew |= m_new != m[h];
      m[h] = m_new;
    }
    float rs[2] = {0.0f, 0.0f};
    uint32_t p[kBn / 16][4];
#pragma unroll
    for (int j = 0; j < kBn / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[4 * j + e] = flash::fast_exp2(fmaf(s[4 * j + e], sl2, -base[e >> 1]));
        rs[e >> 1] += s[4 * j + e];
      }
      p[j / 2][(j & 1) * 2] = pack_bf16(s[4 * j], s[4 * j + 1]);
      p[j / 2][(j & 1) * 2 + 1] = pack_bf16(s[4 * j + 2], s[4 * j + 3]);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) lsum[h] = lsum[h] * corr[h] + rs[h];
    if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
      for (int hh = 0; hh < kHalves; ++hh)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          o[32 * hh + 4 * j] *= corr[0];
          o[32 * hh + 4 * j + 1] *= corr[0];
          o[32 * hh + 4 * j + 2] *= corr[1];
          o[32 * hh + 4 * j + 3] *= corr[1];
        }
    }

    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBn / 16; ++kk) {
      if constexpr (HD == 128) {  // both column halves in one m64n128k16 (LBO: half to half)
        wgmma_m64n128k16_rs_tn(o, p[kk], make_desc(sv + 2048 * kk, kHalfBytes, 1024), 1);
      } else {
        wgmma_m64n64k16_rs_tn(o, p[kk], make_desc(sv + 2048 * kk, kHalfBytes, 1024), 1);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(o);
    fence_regs(p);
  };

  for (int t = 0; t < n_tiles; ++t) {
    // Refill the slot of tile t − 1 with tile t + STAGES − 1 once both warpgroups are done with
    // it, then wait for every thread's copies of tile t. The warpgroups run decoupled (one may be
    // a tile ahead). Measured on the H100 (docs/cuda.md): a block barrier per tile instead, a
    // 3-deep ring for head_dim 128, P·V as two m64n64k16 and FlashAttention-3's ping-pong (the
    // warpgroups taking turns to issue their S wgmmas, through named barriers) were all as fast or
    // slower; ping-pong lost 7 % on the causal prefill.
    if (t + STAGES - 1 < n_tiles) {
      if (t >= 1) mbar_wait(empty + 8 * ((t - 1) % STAGES), static_cast<uint32_t>(((t - 1) / STAGES) & 1));
      load_kv(t + STAGES - 1);
      cp_async_arrive(full + 8 * ((t + STAGES - 1) % STAGES));
    }
    mbar_wait(full + 8 * (t % STAGES), static_cast<uint32_t>((t / STAGES) & 1));
    fence_proxy_async();  // the generic-proxy copies, now observed, to the async proxy (wgmma)

    const int kt = k_begin + t * kBn;
    const bool work = kt < wg_end;  // else every row of this warpgroup is past its keys (causal)
    float s[64];
    if (work) {
      issue_scores(t, s);
      finish_tile(t, kt, s);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(empty + 8 * (t % STAGES));
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = lsum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int pr = pair0 + 8 * h;
    if (pr >= pairs) continue;
    const int64_t item = (static_cast<int64_t>(q_begin) + pr / g) * a.num_heads + kvh * g + pr % g;  // (row, head)
    const int col = 2 * (lane & 3);
    if (l.splits == 1) {
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      bf16* dst = a.out + item * HD + col;
#pragma unroll
      for (int hh = 0; hh < kHalves; ++hh)
#pragma unroll
        for (int j = 0; j < 8; ++j)
          *reinterpret_cast<__nv_bfloat162*>(dst + 64 * hh + 8 * j) =
              __floats2bfloat162_rn(o[32 * hh + 4 * j + 2 * h] * inv, o[32 * hh + 4 * j + 2 * h + 1] * inv);
    } else {
      float* w = partial + (item * l.splits + blockIdx.z) * (HD + 2);
#pragma unroll
      for (int hh = 0; hh < kHalves; ++hh)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          w[64 * hh + 8 * j + col] = o[32 * hh + 4 * j + 2 * h];
          w[64 * hh + 8 * j + col + 1] = o[32 * hh + 4 * j + 2 * h + 1];
        }
      if ((lane & 3) == 0) {
        w[HD] = m[h] * sl2;  // base-2 scaled units, as the other kernels write them (−inf stays)
        w[HD + 1] = sum;
      }
    }
  }
#else
  __trap();  // built for an architecture without wgmma (sm_90a only)
#endif
}

}  // namespace pixtral::backend::cuda::wgmma
