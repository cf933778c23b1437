// The skinny GEMM: y[m, n] = x[m, k]·w[n, k]ᵀ for 9 <= m <= 64 rows (batched decode) on tensor
// cores, the weights streamed once. The backend takes it up to 16 rows by default (SkinnyTuning):
// there it reads the decoder's weights at 2.5-3.1 TB/s against cuBLASLt's 2.2-2.95; at 32-64 rows
// this mma.sync kernel runs out of tensor-core issue rate on the smaller matrices (4x the MMAs per
// byte of 16 rows) and cuBLASLt, on wgmma, is faster (docs/cuda.md, "Seventh session").
//
// Built like the GEMV (weights streamed, the product is cheap) rather than like a square GEMM:
//   - a block owns a tile of kRows weight rows (output columns; SwiGLU: the gate rows and the up
//     rows of kRows / 2 outputs) and all of the batch's rows, padded to kTok = 16, 32 or 64;
//   - K goes through a kStages-deep cp.async ring of kBk-wide slices (the weight tile and the x
//     slice, rows XOR-swizzled by 16-byte chunk); each of the 4 warps multiplies its 16-row weight
//     tiles by the whole x slice with bf16 mma.sync m16n8k16 (fp32 accumulators); blocks start at
//     different slices of their K range, so that they do not all read the same x lines at once;
//   - matrices with few tiles split K over the blocks of a thread-block cluster (at most 8): each
//     block leaves its fp32 partial tile in its shared memory and, after a cluster barrier, every
//     block sums a share of the tile over the cluster's blocks in split order (distributed shared
//     memory: no workspace, and the sum does not depend on timing) and stores it;
//   - epilogue: y = bf16(acc (+ bias) (+ y)) (the GEMV's store_output formula), or SwiGLU:
//     y[m, j] = bf16(silu(bf16(gate)) · bf16(up)) (silu_mul's formula on the rounded products);
//   - programmatic dependent launch: the first stages' weights are requested before
//     griddepcontrol.wait, so they stream in while the previous kernel finishes.
#include <cooperative_groups.h>

#include <mutex>
#include <tuple>
#include <utility>

#include "backend/cuda/cuda_mma.cuh"

namespace pixtral::backend::cuda {
namespace {

namespace cg = cooperative_groups;
using mma::allow_dependents;
using mma::cp_async16;
using mma::cp_async_commit;
using mma::cp_async_wait;
using mma::grid_dependency_wait;
using mma::ldsm_x4;
using mma::mma_16816;
using mma::smem_u32;

constexpr int kThreads = 128;  // 4 warps
constexpr int kMinItersPerSplit = 4;

// Tile geometry: kRows weight rows per tile, K slices of kBk per stage, a kStages-deep ring.
template <int kRows_, int kBk_, int kStages_>
struct Geometry {
  static constexpr int kRows = kRows_, kBk = kBk_, kStages = kStages_;
  static constexpr int kChunks = kBk / 8;           // 16-byte chunks per row and stage
  static constexpr int kRowBytes = kBk * 2;
  static constexpr int kMTiles = kRows / 64;        // 16-row tiles per warp
  static constexpr int kPartialStride = kRows + 4;  // fp32 partial [kTok][kRows] row, padded (no bank conflicts)
  template <int kTok>
  static constexpr int stage_bytes() {
    return (kRows + kTok) * kRowBytes;
  }
  template <int kTok>
  static constexpr int smem_bytes() {
    return std::max(kStages * stage_bytes<kTok>(), kTok * kPartialStride * 4);
  }
};
// PIXTRAL_CUDA_SKINNY_GEOMETRY picks one (default 1; cuda_bench --skinny compares them; docs/cuda.md
// has the figures, with three others measured and dropped: 64 rows × 256 K × 3 stages, 64 × 128 × 6,
// 128 × 64 × 8).
using Geometries = std::tuple<Geometry<128, 64, 4>, Geometry<64, 128, 3>, Geometry<128, 128, 4>>;
constexpr int kNumGeometries = std::tuple_size_v<Geometries>;

// Weight row of tile row r: kRows consecutive rows, or (SwiGLU) kRows / 2 gate rows then the
// matching up rows.
template <bool kSwiglu, int kRows>
__device__ inline int64_t weight_row(const SkinnyArgs& a, int64_t tile, int r) {
  constexpr int kHalf = kRows / 2;
  if constexpr (kSwiglu) return r < kHalf ? tile * kHalf + r : a.n / 2 + tile * kHalf + (r - kHalf);
  return tile * kRows + r;
}

// Shared-memory byte offset of 16-byte chunk c of row r (rows of G::kRowBytes, XOR swizzle of the
// chunk's low 3 bits by r & 7: conflict-free ldmatrix and cp.async stores).
template <class G>
__device__ inline uint32_t swizzled(int r, int c) {
  return static_cast<uint32_t>(r * G::kRowBytes + ((c ^ (r & 7)) << 4));
}

template <int kTok, bool kSwiglu, class G>
__global__ void __launch_bounds__(kThreads, G::template smem_bytes<kTok>() <= 113 * 1024 ? 2 : 1)
    skinny_kernel(SkinnyArgs a) {
  constexpr int kRows = G::kRows, kBk = G::kBk, kStages = G::kStages, kChunks = G::kChunks;
  constexpr int kStageBytes = G::template stage_bytes<kTok>(), kWeightBytes = kRows * G::kRowBytes;
  constexpr int kRowStep = kThreads / kChunks;  // rows between one thread's copies
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int split = static_cast<int>(blockIdx.x), splits = static_cast<int>(gridDim.x);
  const int64_t tile = blockIdx.y, k = a.k;
  const int64_t kiters = k / kBk;
  const int64_t it0 = split * kiters / splits;
  const int iters = static_cast<int>((split + 1) * kiters / splits - it0);
  const uint32_t base = smem_u32(smem);
  // Blocks start at different slices of their K range (tile t at slice t mod iters), so that they
  // do not all read the same x lines at once; each block's order is fixed, so the sums are too.
  const int rot = iters > 0 ? static_cast<int>(tile % iters) : 0;
  auto slice = [&](int it) { return it + rot < iters ? it + rot : it + rot - iters; };

  // This thread's copies: chunk c of rows r0 + kRowStep·i; consecutive threads read consecutive
  // chunks of a row.
  const int c = tid % kChunks, r0 = tid / kChunks;
  const bf16* wsrc[kRows / kRowStep];
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i)
    wsrc[i] = a.w + weight_row<kSwiglu, kRows>(a, tile, r0 + kRowStep * i) * k + it0 * kBk + c * 8;
  auto load_w = [&](int stage, int it) {
    const uint32_t dst = base + static_cast<uint32_t>(stage * kStageBytes);
#pragma unroll
    for (int i = 0; i < kRows / kRowStep; ++i)
      cp_async16(dst + swizzled<G>(r0 + kRowStep * i, c), wsrc[i] + slice(it) * kBk, true);
  };
  auto load_x = [&](int stage, int it) {
    const uint32_t dst = base + static_cast<uint32_t>(stage * kStageBytes + kWeightBytes);
#pragma unroll
    for (int i = 0; i < (kTok + kRowStep - 1) / kRowStep; ++i) {
      const int row = r0 + kRowStep * i;
      if (kTok % kRowStep != 0 && row >= kTok) break;
      const bool valid = row < a.m;
      cp_async16(dst + swizzled<G>(row, c), a.x + (valid ? row : 0) * k + (it0 + slice(it)) * kBk + c * 8, valid);
    }
  };

  // The weights do not depend on the previous kernel: request the first stages' before waiting.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < iters) load_w(s, s);
    cp_async_commit();
  }
  grid_dependency_wait();
  allow_dependents();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < iters) load_x(s, s);
    cp_async_commit();
  }

  // Warp w: the 16-row weight tiles w, w + 4, ... (SwiGLU: gate rows, then up rows).
  float acc[G::kMTiles][kTok / 8][4] = {};
  const int a_row = lane & 15, a_chunk = lane >> 4;
  const int b_row = (lane & 7) + ((lane >> 4) << 3), b_chunk = (lane >> 3) & 1;
  for (int i = 0; i < iters; ++i) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage i landed for every thread; stage i - 1 is free again
    if (i + kStages - 1 < iters) {
      const int s = (i + kStages - 1) % kStages;
      load_w(s, i + kStages - 1);
      load_x(s, i + kStages - 1);
    }
    cp_async_commit();
    const uint32_t ws = base + static_cast<uint32_t>((i % kStages) * kStageBytes), xs = ws + kWeightBytes;
#pragma unroll
    for (int ks = 0; ks < kBk / 16; ++ks) {
      uint32_t af[G::kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < G::kMTiles; ++mt)
        ldsm_x4(ws + swizzled<G>(64 * mt + 16 * warp + a_row, 2 * ks + a_chunk), af[mt][0], af[mt][1], af[mt][2],
                af[mt][3]);
#pragma unroll
      for (int p = 0; p < kTok / 16; ++p) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4(xs + swizzled<G>(16 * p + b_row, 2 * ks + b_chunk), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < G::kMTiles; ++mt) {
          mma_16816(acc[mt][2 * p], af[mt], b0, b1);
          mma_16816(acc[mt][2 * p + 1], af[mt], b2, b3);
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is free: it holds the partial tile now

  // Partial tile P[token][tile row] (fp32): the C fragment's rows are weight rows, columns tokens.
  constexpr int kStride = G::kPartialStride;
  float* part = reinterpret_cast<float*>(smem);
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mt = 0; mt < G::kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kTok / 8; ++nt) {
      const int row = 64 * mt + 16 * warp + g, tok = 8 * nt + 2 * t;
      part[tok * kStride + row] = acc[mt][nt][0];
      part[(tok + 1) * kStride + row] = acc[mt][nt][1];
      part[tok * kStride + row + 8] = acc[mt][nt][2];
      part[(tok + 1) * kStride + row + 8] = acc[mt][nt][3];
    }
  cg::cluster_group cluster = cg::this_cluster();
  if (splits > 1) {
    cluster.sync();
  } else {
    __syncthreads();
  }

  // Sum over the splits (in split order) and store; the cluster's blocks share the tile's outputs.
  constexpr int kPairs = (kSwiglu ? kRows / 2 : kRows) / 2;  // output column pairs per token
  const int rank = splits > 1 ? static_cast<int>(cluster.block_rank()) : 0;
  for (int e = rank * kThreads + tid; e < kTok * kPairs; e += splits * kThreads) {
    const int tok = e / kPairs, j = 2 * (e % kPairs);
    if (tok >= a.m) break;  // e grows with tok
    float2 v = make_float2(0.0f, 0.0f), u = make_float2(0.0f, 0.0f);
    for (int q = 0; q < splits; ++q) {
      const float* pq = splits > 1 ? cluster.map_shared_rank(part, q) : part;
      const float2 pv = *reinterpret_cast<const float2*>(pq + tok * kStride + j);
      v.x += pv.x;
      v.y += pv.y;
      if constexpr (kSwiglu) {
        const float2 pu = *reinterpret_cast<const float2*>(pq + tok * kStride + kRows / 2 + j);
        u.x += pu.x;
        u.y += pu.y;
      }
    }
    if constexpr (kSwiglu) {
      const int64_t f = a.n / 2, col = tile * (kRows / 2) + j;
      float o[2];
      const float gs[2] = {v.x, v.y}, us[2] = {u.x, u.y};
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float gate = __bfloat162float(__float2bfloat16_rn(gs[h]));
        const float up = __bfloat162float(__float2bfloat16_rn(us[h]));
        o[h] = (gate / (1.0f + expf(-gate))) * up;
      }
      *reinterpret_cast<__nv_bfloat162*>(a.y + tok * f + col) = __floats2bfloat162_rn(o[0], o[1]);
    } else {
      const int64_t col = tile * kRows + j;
      bf16* dst = a.y + tok * a.n + col;
      if (a.bias != nullptr) {
        v.x += __bfloat162float(a.bias[col]);
        v.y += __bfloat162float(a.bias[col + 1]);
      }
      if (a.accumulate) {
        const __nv_bfloat162 old = *reinterpret_cast<const __nv_bfloat162*>(dst);
        v.x += __bfloat162float(old.x);
        v.y += __bfloat162float(old.y);
      }
      *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(v.x, v.y);
    }
  }
  if (splits > 1) cluster.sync();  // no block leaves while another still reads its partial tile
}

struct KernelInfo {
  void (*kernel)(SkinnyArgs) = nullptr;
  int smem = 0;
  int blocks_per_sm = 0;
  int rows = 0, bk = 0;
};

template <int kTok, bool kSwiglu, class G>
const KernelInfo& kernel_info() {
  static KernelInfo info;
  static std::once_flag once;
  std::call_once(once, [] {
    info.kernel = skinny_kernel<kTok, kSwiglu, G>;
    info.smem = G::template smem_bytes<kTok>();
    info.rows = G::kRows;
    info.bk = G::kBk;
    CUDA_CHECK(cudaFuncSetAttribute(info.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, info.smem));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&info.blocks_per_sm, info.kernel, kThreads, info.smem));
  });
  return info;
}

template <bool kSwiglu, class G>
const KernelInfo& pick_rows(int64_t m) {
  if (m <= 16) return kernel_info<16, kSwiglu, G>();
  if (m <= 32) return kernel_info<32, kSwiglu, G>();
  return kernel_info<64, kSwiglu, G>();
}

template <size_t... I>
const KernelInfo& pick(int geometry, int64_t m, bool swiglu, std::index_sequence<I...>) {
  const KernelInfo* out = nullptr;
  ((geometry == static_cast<int>(I)
        ? (out = swiglu ? &pick_rows<true, std::tuple_element_t<I, Geometries>>(m)
                        : &pick_rows<false, std::tuple_element_t<I, Geometries>>(m))
        : out),
   ...);
  return *out;
}

const KernelInfo& pick(int geometry, int64_t m, bool swiglu) {
  return pick(geometry, m, swiglu, std::make_index_sequence<kNumGeometries>{});
}

template <size_t... I>
void geometry_of(int geometry, int& rows, int& bk, std::index_sequence<I...>) {
  ((geometry == static_cast<int>(I) ? (rows = std::tuple_element_t<I, Geometries>::kRows,
                                       bk = std::tuple_element_t<I, Geometries>::kBk, 0)
                                    : 0),
   ...);
}

}  // namespace

bool skinny_fits(int64_t m, int64_t n, int64_t k, bool swiglu, int geometry) {
  (void)swiglu;  // SwiGLU tiles hold the gate and up rows of rows / 2 outputs: the same test on n = 2F
  if (geometry < 0 || geometry >= kNumGeometries) return false;
  int rows = 0, bk = 0;
  geometry_of(geometry, rows, bk, std::make_index_sequence<kNumGeometries>{});
  if (m < 1 || m > kSkinnyMaxM || k == 0 || k % bk != 0) return false;
  return n % rows == 0 && n / rows <= 65535;
}

int skinny_splits(int64_t tiles, int64_t kiters, int64_t slots) {
  // Cost in stage-loads of the slowest block: waves × (its slices + 1 for the epilogue, + 1 more
  // when the partial tiles are summed across the cluster). Fewest splits on a tie.
  int best = 1;
  int64_t best_cost = -1;
  for (int s = 1; s <= kSkinnyMaxSplits && (s == 1 || kiters / s >= kMinItersPerSplit); ++s) {
    const int64_t waves = (tiles * s + slots - 1) / slots;
    const int64_t cost = waves * ((kiters + s - 1) / s + 1 + (s > 1 ? 1 : 0));
    if (best_cost < 0 || cost < best_cost) {
      best = s;
      best_cost = cost;
    }
  }
  return best;
}

void launch_skinny(const SkinnyArgs& a, bool swiglu, const SkinnyTuning& tuning, int num_sms, cudaStream_t s) {
  const KernelInfo& info = pick(tuning.geometry, a.m, swiglu);
  const int64_t tiles = a.n / info.rows;  // SwiGLU: a tile's weight rows are rows / 2 outputs' gate and up rows
  const int64_t kiters = a.k / info.bk;
  int splits = tuning.splits > 0 ? tuning.splits
                                 : skinny_splits(tiles, kiters, static_cast<int64_t>(info.blocks_per_sm) * num_sms);
  splits = static_cast<int>(std::min<int64_t>(std::min(splits, kSkinnyMaxSplits), kiters));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned int>(splits), static_cast<unsigned int>(tiles));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = static_cast<size_t>(info.smem);
  config.stream = s;
  cudaLaunchAttribute attribute[2];
  attribute[0].id = cudaLaunchAttributeClusterDimension;
  attribute[0].val.clusterDim.x = static_cast<unsigned int>(splits);
  attribute[0].val.clusterDim.y = 1;
  attribute[0].val.clusterDim.z = 1;
  attribute[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = tuning.pdl ? 2 : 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, info.kernel, a));
}

}  // namespace pixtral::backend::cuda
