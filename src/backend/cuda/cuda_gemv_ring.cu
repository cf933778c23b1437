// The ring GEMV kernel (PIXTRAL_CUDA_GEMV_PIPE=1 or 2): the register kernel's layout (persistent
// grid over column groups, wpc warps per column over contiguous K slices, x staged and
// normalized once per block) with the weights streamed through a cp.async ring per warp
// (cuda_gemv.cuh, WarpRing). A warp's ring runs ahead over its whole stream of (group, batch)
// items, so when a group ends, the next group's first stages are already in flight during the
// reduction and its barriers: the memory pipe no longer drains at every group boundary. The
// first stages are issued before griddepcontrol.wait (the weights do not depend on the previous
// kernel) in place of the register kernel's L2 prefetch.
// local_sync (PIPE=2): no block-wide barrier per group: the warps of one column (SwiGLU: of a
// gate/up column pair; RoPE: of an adjacent pair) meet at a named barrier, the first of them adds
// the slices in slice order and runs the epilogue; partial sums are double-buffered by group
// parity. One warp per column with the plain store needs no barrier at all.
#include "backend/cuda/cuda_gemv.cuh"

namespace pixtral::backend::cuda {
namespace {

using namespace gemv;  // NOLINT(google-build-using-namespace): the GEMV kernels' shared pieces

__device__ inline void named_sync(int id, int threads) {
  asm volatile("barrier.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// End of group g for one warp without a block barrier: the warps that share an output meet at
// barrier 1 + (column or pair) and the first of them finishes it. part [kWarps][kM] is this
// group's half of the double buffer (the other half may still be read for the previous group).
template <int kM, int kEpi>
__device__ inline void finish_group_local(const GemvArgs& a, int64_t g, float (&acc)[kM], float (*part)[kM]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wpc = a.wpc, cpb = kWarps / wpc, c = warp / wpc, slice = warp % wpc;
  const int64_t n = a.n;
#pragma unroll
  for (int m = 0; m < kM; ++m) acc[m] = warp_sum(acc[m]);
  float mine = 0.0f;  // lane m < kM: the value of row m
#pragma unroll
  for (int m = 0; m < kM; ++m)
    if (lane == m) mine = acc[m];
  if constexpr (kEpi == kStore) {
    const int64_t col = g * cpb + c;
    if (wpc == 1) {  // the warp holds the whole column
      if (lane < kM && col < n) store_output(a, lane, col, 0.0f + mine);
      return;
    }
    if (lane < kM) part[warp][lane] = mine;
    named_sync(1 + c, wpc * 32);
    if (slice == 0 && lane < kM && col < n) {
      float v = 0.0f;
      for (int j = 0; j < wpc; ++j) v += part[c * wpc + j][lane];
      store_output(a, lane, col, v);
    }
  } else {
    // The pair: SwiGLU gate column pc (local pc) and up column (local pc + half); RoPE local
    // columns 2pc and 2pc + 1. Their 2·wpc warps meet at barrier 1 + pc.
    const int half = cpb / 2;
    const int pc = kEpi == kSwiglu ? c % half : c / 2;
    const int first0 = (kEpi == kSwiglu ? pc : 2 * pc) * wpc;             // first warp of the pair's column 0
    const int first1 = (kEpi == kSwiglu ? pc + half : 2 * pc + 1) * wpc;  // and of its column 1
    if (lane < kM) part[warp][lane] = mine;
    named_sync(1 + pc, 2 * wpc * 32);
    if (warp == first0 && lane < kM) {
      float v0 = 0.0f, v1 = 0.0f;
      for (int j = 0; j < wpc; ++j) v0 += part[first0 + j][lane];
      for (int j = 0; j < wpc; ++j) v1 += part[first1 + j][lane];
      if constexpr (kEpi == kSwiglu) {
        const int64_t j = g * half + pc;
        if (j < n / 2) store_swiglu(a, lane, j, round_bf16(v0), round_bf16(v1));
      } else {
        const int64_t col0 = g * cpb + 2 * pc;
        if (col0 < n) store_rope_pair(a, lane, col0, round_bf16(v0), round_bf16(v1));
      }
    }
  }
}

// A warp's items in stream order: group g (blockIdx.x, + gridDim.x, …), batch j of its K slice
// (kUnroll chunks per lane). A group whose column or slice is empty still has one (empty) item,
// so every warp finishes every group once.
template <int kEpi, int kUnroll>
struct SliceCursor {
  int64_t g, first, end;  // first: this lane's first chunk of batch j
  int j, batches;
  const uint4* w;  // the weight row; nullptr: nothing to load

  __device__ void start(const GemvArgs& a, int64_t group, int64_t groups) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wpc = a.wpc, cpb = kWarps / wpc, slice = warp % wpc;
    const int64_t chunks = a.k / 8, per = (chunks + wpc - 1) / wpc;
    g = group;
    first = end = 0;
    j = 0;
    batches = 1;
    w = nullptr;
    if (g >= groups) return;
    const int64_t col = column_of(kEpi, g, warp / wpc, cpb, a.n), s0 = slice * per;
    end = min(chunks, s0 + per);
    if (col >= a.n || s0 >= end) return;
    w = reinterpret_cast<const uint4*>(a.w + col * a.k);
    first = s0 + lane;
    batches = static_cast<int>((end - s0 + 32 * kUnroll - 1) / (32 * kUnroll));
  }
  __device__ bool last() const { return j + 1 == batches; }
  __device__ void advance(const GemvArgs& a, int64_t groups) {
    if (++j < batches) {
      first += 32 * kUnroll;
      return;
    }
    start(a, g + gridDim.x, groups);
  }
};

template <int kM, int kEpi, bool kStaged, int kUnroll>
__global__ void __launch_bounds__(kThreads) gemv_ring_kernel(GemvArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* xs = reinterpret_cast<bf16*>(smem_raw);  // [kM, k] when kStaged, then the rings
  uint4* rings =
      reinterpret_cast<uint4*>(smem_raw + (kStaged ? kM * a.k * static_cast<int64_t>(sizeof(bf16)) : 0));
  __shared__ float part[2][kWarps][kM];
  __shared__ float vals[kM][kWarps];
  __shared__ float red[kWarps];
  const int warp = threadIdx.x >> 5;
  const int cpb = kWarps / a.wpc;
  const int64_t n = a.n, k = a.k;
  const int64_t groups = kEpi == kSwiglu ? (n / 2 + cpb / 2 - 1) / (cpb / 2) : (n + cpb - 1) / cpb;
  const WarpRing<kUnroll> ring{rings + warp * a.stages * kUnroll * 32, a.stages, a.evict_first,
                               a.evict_first ? evict_first_policy() : 0};

  if (a.prefetch_all) {  // as the register kernel: the block's whole share into L2
    const int64_t lines = (k * static_cast<int64_t>(sizeof(bf16)) + 127) / 128, per_group = cpb * lines;
    for (int64_t g = blockIdx.x; g < groups; g += gridDim.x)
      for (int64_t i = threadIdx.x; i < per_group; i += kThreads) {
        const int64_t col = column_of(kEpi, g, static_cast<int>(i / lines), cpb, n);
        if (col < n) prefetch_l2(a.w + col * k + (i % lines) * 64);
      }
  }
  // Fill all stages but one before waiting for the previous kernel.
  SliceCursor<kEpi, kUnroll> in, out;
  in.start(a, blockIdx.x, groups);
  out = in;
  int in_slot = 0, out_slot = 0;
  for (int i = 0; i + 1 < a.stages; ++i) {
    ring.issue(in_slot, in.w, in.first, in.end);
    in.advance(a, groups);
    in_slot = ring.next(in_slot);
  }
  grid_dependency_wait();
  allow_dependents();
  if constexpr (kStaged) {
    stage_x<kM>(a, xs, red);
    __syncthreads();
  }

  float acc[kM];
#pragma unroll
  for (int m = 0; m < kM; ++m) acc[m] = 0.0f;
  int parity = 0;
  while (out.g < groups) {
    __syncwarp();  // retires this warp's reads of the slot the next copy overwrites (item t − 1's)
    ring.issue(in_slot, in.w, in.first, in.end);
    in.advance(a, groups);
    in_slot = ring.next(in_slot);
    cp_async_wait_pending(a.stages - 1);  // out's item has landed
    if (out.w != nullptr) ring.template consume<kM, kStaged>(out_slot, out.first, out.end, a, xs, acc);
    out_slot = ring.next(out_slot);
    if (out.last()) {
      if (a.local_sync) {
        finish_group_local<kM, kEpi>(a, out.g, acc, part[parity]);
      } else {
        finish_group_block<kM, kEpi, false>(a, out.g, acc, part[0], vals);
      }
      parity ^= 1;
#pragma unroll
      for (int m = 0; m < kM; ++m) acc[m] = 0.0f;
    }
    out.advance(a, groups);
  }
  cp_async_wait_pending(0);  // only empty groups can be left; nothing in flight at exit
}

struct RingFamily {
  template <int kM, int kEpi, bool kStaged, int kUnroll>
  static Kernel get() {
    return gemv_ring_kernel<kM, kEpi, kStaged, kUnroll>;
  }
};

}  // namespace

Kernel gemv::ring_kernel(int64_t m, int epilogue, bool staged, int unroll) {
  return pick_kernel<RingFamily>(m, epilogue, staged, unroll);
}

}  // namespace pixtral::backend::cuda
