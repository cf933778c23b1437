// The warp GEMV kernel (PIXTRAL_CUDA_GEMV_WARP=1): each warp owns whole outputs over all of K: a
// column (plain store), the gate and the up column of one SwiGLU output, or an adjacent RoPE pair.
// No partial sum crosses warps, so after the prologue (x staged, normalized when fused) nothing
// waits at a barrier. Output u goes to block u % grid, warp (u / grid) % 8, so the blocks (and
// the SMs) get equal shares ±1 output at any output count; the weights stream through the warp's
// cp.async ring (cuda_gemv.cuh, WarpRing) across its outputs, the first stages issued before
// griddepcontrol.wait. The sums are the other kernels' at one warp per column (bit-identical).
#include "backend/cuda/cuda_gemv.cuh"

namespace pixtral::backend::cuda {
namespace {

using namespace gemv;  // NOLINT(google-build-using-namespace): the GEMV kernels' shared pieces

// A warp's items in stream order: output u (+ 8·grid each time), its weight rows r (1 or 2),
// batch j of kUnroll chunks per lane over K.
template <int kEpi, int kUnroll>
struct UnitCursor {
  static constexpr int kRows = kEpi == kStore ? 1 : 2;
  int64_t u, first, end;  // first: this lane's first chunk of batch j; end: chunks per row
  int r, j, batches;
  const uint4* w;  // weight row r of output u; nullptr past the last output

  __device__ void start(const GemvArgs& a, int64_t unit, int64_t units) {
    end = a.k / 8;
    batches = end > 0 ? static_cast<int>((end + 32 * kUnroll - 1) / (32 * kUnroll)) : 1;
    u = unit;
    r = 0;
    j = 0;
    first = threadIdx.x & 31;
    set_row(a, units);
  }
  static __device__ int64_t row_of(const GemvArgs& a, int64_t unit, int row) {
    if constexpr (kEpi == kSwiglu) return row == 0 ? unit : a.n / 2 + unit;
    if constexpr (kEpi == kQkvRope) return 2 * unit + row;
    return unit;
  }
  __device__ void set_row(const GemvArgs& a, int64_t units) {
    w = u < units ? reinterpret_cast<const uint4*>(a.w + row_of(a, u, r) * a.k) : nullptr;
  }
  __device__ bool last() const { return r + 1 == kRows && j + 1 == batches; }
  __device__ void advance(const GemvArgs& a, int64_t units, int64_t stride) {
    if (++j < batches) {
      first += 32 * kUnroll;
      return;
    }
    j = 0;
    first = threadIdx.x & 31;
    if (++r == kRows) {
      r = 0;
      u += stride;
    }
    set_row(a, units);
  }
};

// Output u from the warp's partial sums (row 0 in acc0, row 1 in acc1); lane m writes x row m.
template <int kM, int kEpi>
__device__ inline void finish_unit(const GemvArgs& a, int64_t u, float (&acc0)[kM], float (&acc1)[kM]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < kM; ++m) {
    acc0[m] = warp_sum(acc0[m]);
    if constexpr (kEpi != kStore) acc1[m] = warp_sum(acc1[m]);
  }
  float v0 = 0.0f, v1 = 0.0f;  // as the block reduction of one slice: 0 + the warp's sum
#pragma unroll
  for (int m = 0; m < kM; ++m)
    if (lane == m) {
      v0 += acc0[m];
      v1 += acc1[m];
    }
  if (lane >= kM) return;
  if constexpr (kEpi == kStore) {
    store_output(a, lane, u, v0);
  } else if constexpr (kEpi == kSwiglu) {
    store_swiglu(a, lane, u, round_bf16(v0), round_bf16(v1));
  } else {
    store_rope_pair(a, lane, 2 * u, round_bf16(v0), round_bf16(v1));
  }
}

template <int kM, int kEpi, bool kStaged, int kUnroll>
__global__ void __launch_bounds__(kThreads) gemv_warp_kernel(GemvArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* xs = reinterpret_cast<bf16*>(smem_raw);  // [kM, k] when kStaged, then the rings
  uint4* rings =
      reinterpret_cast<uint4*>(smem_raw + (kStaged ? kM * a.k * static_cast<int64_t>(sizeof(bf16)) : 0));
  __shared__ float red[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n = a.n, k = a.k, units = kEpi == kStore ? n : n / 2;
  const int64_t stride = static_cast<int64_t>(kWarps) * gridDim.x;
  const int64_t first_unit = static_cast<int64_t>(warp) * gridDim.x + blockIdx.x;
  const WarpRing<kUnroll> ring{rings + warp * a.stages * kUnroll * 32, a.stages, a.evict_first,
                               a.evict_first ? evict_first_policy() : 0};
  using Cursor = UnitCursor<kEpi, kUnroll>;

  if (a.prefetch_all) {  // the warp's whole share into L2
    const int64_t lines = (k * static_cast<int64_t>(sizeof(bf16)) + 127) / 128;
    for (int64_t u = first_unit; u < units; u += stride)
      for (int r = 0; r < Cursor::kRows; ++r)
        for (int64_t i = lane; i < lines; i += 32) prefetch_l2(a.w + Cursor::row_of(a, u, r) * k + i * 64);
  }
  // Fill all stages but one before waiting for the previous kernel.
  Cursor in, out;
  in.start(a, first_unit, units);
  out = in;
  int in_slot = 0, out_slot = 0;
  for (int i = 0; i + 1 < a.stages; ++i) {
    ring.issue(in_slot, in.w, in.first, in.end);
    in.advance(a, units, stride);
    in_slot = ring.next(in_slot);
  }
  grid_dependency_wait();
  allow_dependents();
  if constexpr (kStaged) {
    stage_x<kM>(a, xs, red);
    __syncthreads();
  }

  float acc0[kM], acc1[kM];
#pragma unroll
  for (int m = 0; m < kM; ++m) acc0[m] = acc1[m] = 0.0f;
  while (out.u < units) {
    __syncwarp();  // retires this warp's reads of the slot the next copy overwrites (item t − 1's)
    ring.issue(in_slot, in.w, in.first, in.end);
    in.advance(a, units, stride);
    in_slot = ring.next(in_slot);
    cp_async_wait_pending(a.stages - 1);  // out's item has landed
    if (Cursor::kRows == 1 || out.r == 0) {
      ring.template consume<kM, kStaged>(out_slot, out.first, out.end, a, xs, acc0);
    } else {
      ring.template consume<kM, kStaged>(out_slot, out.first, out.end, a, xs, acc1);
    }
    out_slot = ring.next(out_slot);
    if (out.last()) {
      finish_unit<kM, kEpi>(a, out.u, acc0, acc1);
#pragma unroll
      for (int m = 0; m < kM; ++m) acc0[m] = acc1[m] = 0.0f;
    }
    out.advance(a, units, stride);
  }
  cp_async_wait_pending(0);  // only empty groups can be left; nothing in flight at exit
}

struct WarpFamily {
  template <int kM, int kEpi, bool kStaged, int kUnroll>
  static Kernel get() {
    return gemv_warp_kernel<kM, kEpi, kStaged, kUnroll>;
  }
};

}  // namespace

Kernel gemv::warp_kernel(int64_t m, int epilogue, bool staged, int unroll) {
  return pick_kernel<WarpFamily>(m, epilogue, staged, unroll);
}

}  // namespace pixtral::backend::cuda
