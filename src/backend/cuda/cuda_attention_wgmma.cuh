// Hopper (sm_90a) attention for the vision encoder's varlen segments: non-causal, head_dim 64,
// num_heads == num_kv_heads, bf16 in/out, fp32 accumulation; included by cuda_attention.cu and
// selected by PIXTRAL_CUDA_ATTN=wgmma (use_wgmma there; every other case keeps its kernel).
// A FlashAttention-3-style first version, without TMA or warp specialization:
//  - one block = two consumer warpgroups (256 threads), each owning 64 query rows of one head of
//    one segment (BM = 128); the Q tile is loaded once into shared memory;
//  - K/V tiles of BN = 128 keys stream through a STAGES-deep cp.async ring (all 256 threads load;
//    cp.async.wait_group + fence.proxy.async + __syncthreads hands a tile to the async proxy);
//  - S = Q·Kᵀ with wgmma m64n128k16 (A = Q and B = K from shared memory, both K-major), the online
//    softmax in base 2 on the fp32 accumulator fragments, then O += P·V with wgmma m64n64k16
//    (A = P from registers as bf16, B = V from shared memory, MN-major: imm-trans-b = 1);
//  - only the last key tile of a segment is masked; rows past the segment end are not written.
// No KV split (4,096 tokens × 16 heads gives 512 blocks) and no workspace.
//
// Shared-memory layout and wgmma descriptors. Every tile is [rows][64] bf16: one row is 128
// bytes, and row r's 16-byte chunk c sits at chunk c ^ (r & 7) (flash::swz<64>). With the tile base
// 1024-byte aligned this is exactly the hardware's 128-byte swizzle (Swizzle<3,4,3>: address bits
// [4,7) XOR bits [7,10)), the layout that a descriptor with layout type SWIZZLE_128B describes.
// Descriptor (64 bits): [0,14) start address >> 4, [16,30) leading byte offset >> 4, [32,46) stride
// byte offset >> 4, [49,52) base offset, [62,64) layout type (1 = 128-byte swizzle).
//  - Q (A) and K (B), K-major, 128B swizzle: the canonical layout is ((8,m),(8 elems,2k)) with
//    rows 128 bytes apart inside an 8-row group and SBO between 8-row groups: 8 · 128 = 1024 bytes.
//    The K extent of one instruction (16 elements = 32 bytes) lies inside one 128-byte swizzle
//    row, so LBO is unused (set to 1, i.e. 16 bytes). The k-th 16-wide slice starts 32·k bytes
//    into the row: start address + 32·k (the swizzle is applied to the final address bits, so an
//    offset inside the 1024-byte atom is valid and base offset stays 0). Warpgroup w's Q rows
//    start 64 · 128 = 8192 bytes · w in (1024-aligned).
//  - V (B of P·V), stored [keys][d]: N (= d) is contiguous, so B is MN-major (imm-trans-b = 1).
//    The canonical MN-major 128B layout is ((64 elems,m),(8,k)): 64 N-elements in one 128-byte
//    row, LBO between 64-wide N blocks (unused: N = 64 is one block; set to the 8192-byte tile
//    half for definiteness), SBO between groups of 8 K rows (keys): 8 · 128 = 1024 bytes. The
//    k-th 16-key slice starts 16 · 128 = 2048·k bytes in (1024-aligned).
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

constexpr int kHd = 64, kBm = 128, kBn = 128, kThreads = 256;
constexpr uint32_t kQBytes = kBm * kHd * 2, kKvBytes = kBn * kHd * 2;  // 16 KiB each

template <int STAGES>
constexpr int smem_bytes() {
  return static_cast<int>(kQBytes + 2 * STAGES * kKvBytes) + 1024;  // + slack to align the base to 1024
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

// Copies rows row0 .. row0 + 127 (zeros at and past `end`) of head `head` of a [N, heads, 64]
// tensor into a swizzled [128][64] tile at byte address dst: thread t copies chunk t % 8 of rows
// t / 8 + 32·i (32 is a multiple of 8, so the swizzle of its rows is one offset).
__device__ __forceinline__ void load_tile(uint32_t dst, const bf16* src, int64_t heads, int64_t head, int row0,
                                          int end) {
  const int c = threadIdx.x % 8, r0 = threadIdx.x / 8;
  const uint32_t d0 = dst + static_cast<uint32_t>(flash::swz<kHd>(r0, c)) * 2;
  const bf16* s0 = src + head * kHd + c * 8;
#pragma unroll
  for (int i = 0; i < kBm / 32; ++i) {
    const int r = row0 + r0 + 32 * i;
    const bool valid = r < end;
    cp_async16(d0 + static_cast<uint32_t>(i * 32 * kHd * 2), s0 + (valid ? static_cast<int64_t>(r) * heads * kHd : 0),
               valid);
  }
}

// grid: x = tiles_per_seq · num_seqs · num_heads (block x = (rank · num_seqs + seq) · num_heads +
// head, query tile = the segment's own tile count − 1 − rank: longest segments first);
// kThreads threads; smem_bytes<STAGES>() of dynamic shared memory.
template <int STAGES>
__global__ void __launch_bounds__(kThreads, 1) attention_kernel(AttentionArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(STAGES >= 2, "wgmma attention ring");
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t sq = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t skv = sq + kQBytes;  // slot s: K at skv + 2·s·kKvBytes, V kKvBytes after it

  const int64_t head = blockIdx.x % a.num_heads;
  const int64_t rest = blockIdx.x / a.num_heads;
  const int64_t seq = rest % a.num_seqs, rank = rest / a.num_seqs;
  const int q_begin = a.q_start[seq], q_len = a.q_start[seq + 1] - q_begin;
  const int tile = (q_len + kBm - 1) / kBm - 1 - static_cast<int>(rank);
  if (tile < 0) return;
  const int row0 = tile * kBm;
  const int tiles = (q_len + kBn - 1) / kBn;  // key tiles (non-causal: the whole segment)
  const int64_t hq = a.num_heads, hkv = a.num_kv_heads;
  const bf16* qbase = a.q + static_cast<int64_t>(q_begin) * hq * kHd;
  const bf16* kbase = a.k + static_cast<int64_t>(q_begin) * hkv * kHd;
  const bf16* vbase = a.v + static_cast<int64_t>(q_begin) * hkv * kHd;

  load_tile(sq, qbase, hq, head, row0, q_len);
  auto load_kv = [&](int t) {
    const uint32_t slot = skv + static_cast<uint32_t>((t % STAGES) * 2) * kKvBytes;
    load_tile(slot, kbase, hkv, head, t * kBn, q_len);
    load_tile(slot + kKvBytes, vbase, hkv, head, t * kBn, q_len);
  };
  // Group s holds key tile s (group 0 also Q); empty groups keep the count uniform.
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < tiles) load_kv(st);
    cp_async_commit();
  }

  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const float sl2 = a.scale * kLog2e;
  float o[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};
  const uint32_t q_wg = sq + static_cast<uint32_t>(wg) * 64 * kHd * 2;

  for (int t = 0; t < tiles; ++t) {
    // Tile t has landed (this thread's copies), is visible to the async proxy, and every
    // warpgroup has finished the wgmmas of tile t − 1, whose slot the next load refills.
    flash::cp_async_wait<STAGES - 2>();
    fence_proxy_async();
    __syncthreads();
    if (t + STAGES - 1 < tiles) load_kv(t + STAGES - 1);
    cp_async_commit();

    const uint32_t sk = skv + static_cast<uint32_t>((t % STAGES) * 2) * kKvBytes, sv = sk + kKvBytes;
    float s[64];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kHd / 16; ++kk)
      wgmma_m64n128k16_ss(s, make_desc(q_wg + 32 * kk, 16, 1024), make_desc(sk + 32 * kk, 16, 1024), kk > 0);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(s);

    // Online softmax. This thread holds rows lane/4 (h = 0) and lane/4 + 8 (h = 1) of its warp's
    // 16, keys 8j + 2(lane%4) + (e%2) of n-tile j.
    const int kt = t * kBn;
    if (kt + kBn > q_len) {
      const int lim = q_len - kt - 2 * (lane & 3);
#pragma unroll
      for (int j = 0; j < kBn / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (8 * j + (e & 1) >= lim) s[4 * j + e] = -INFINITY;
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
      const float m_new = fmaxf(m[h], mx[h]);  // finite: every key tile has at least one key
      base[h] = m_new * sl2;
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
      for (int j = 0; j < kHd / 8; ++j) {
        o[4 * j] *= corr[0];
        o[4 * j + 1] *= corr[0];
        o[4 * j + 2] *= corr[1];
        o[4 * j + 3] *= corr[1];
      }
    }

    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBn / 16; ++kk)
      wgmma_m64n64k16_rs_tn(o, p[kk], make_desc(sv + 2048 * kk, kKvBytes / 2, 1024), 1);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(o);
    fence_regs(p);
  }
  flash::cp_async_wait<0>();

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = lsum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int r = row0 + wg * 64 + warp * 16 + (lane >> 2) + 8 * h;
    if (r >= q_len) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    bf16* dst = a.out + ((static_cast<int64_t>(q_begin) + r) * hq + head) * kHd + 2 * (lane & 3);
#pragma unroll
    for (int j = 0; j < kHd / 8; ++j)
      *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j) = __floats2bfloat162_rn(o[4 * j + 2 * h] * inv,
                                                                             o[4 * j + 2 * h + 1] * inv);
  }
#else
  __trap();  // built for an architecture without wgmma (sm_90a only)
#endif
}

}  // namespace pixtral::backend::cuda::wgmma
