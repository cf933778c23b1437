// AVX2 versions of the JPEG pixel kernels: the SSE2 bodies (jpeg_kernels_simd.inc) on 256-bit
// vectors, two blocks / 32 pixels a call. This file is compiled with -mavx2 and only called after
// a CPU check (jpeg_kernels.cpp); it includes nothing but intrinsics, <cstring> and
// jpeg_kernels.h, so no inline function compiled for AVX2 can be shared with the rest of the
// program.
#include <immintrin.h>

#include <cstring>

#include "image/jpeg_kernels.h"

namespace pixtral::image::detail::jpeg::avx2 {
namespace {

using V = __m256i;
constexpr int kLanes = 2;
#define SIMD(op) _mm256_##op
#define V_OR _mm256_or_si256
#define V_AND _mm256_and_si256
#define V_ZERO _mm256_setzero_si256
#define V_SRLI_BYTES _mm256_srli_si256
#define V_LOADU(p) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
#define V_ALL_ZERO(v) (_mm256_testz_si256((v), (v)) != 0)
#define V_STORE_RGB(out, A, D, F)                                                       \
  do {                                                                                  \
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(A));       \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 16), _mm256_castsi256_si128(D)); \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 32), _mm256_castsi256_si128(F)); \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 48), _mm256_extracti128_si256(A, 1)); \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 64), _mm256_extracti128_si256(D, 1)); \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 80), _mm256_extracti128_si256(F, 1)); \
  } while (0)
#include "image/jpeg_kernels_simd.inc"
#undef SIMD
#undef V_OR
#undef V_AND
#undef V_ZERO
#undef V_SRLI_BYTES
#undef V_LOADU
#undef V_ALL_ZERO
#undef V_STORE_RGB

inline __m256i load2(const int16_t* a, const int16_t* b) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
}

}  // namespace

bool idct_islow2(const int16_t* coef0, int16_t dc0, const IdctTable& table0, uint8_t* out0, ptrdiff_t stride0,
                 const int16_t* coef1, int16_t dc1, const IdctTable& table1, uint8_t* out1, ptrdiff_t stride1) {
  V c[8], q[8], lim[8], lim2[8], packed[4];
  for (int i = 0; i < 8; ++i) {
    c[i] = load2(coef0 + 8 * i, coef1 + 8 * i);
    q[i] = load2(table0.q + 8 * i, table1.q + 8 * i);
    lim[i] = load2(table0.lim + 8 * i, table1.lim + 8 * i);
    lim2[i] = load2(table0.lim2 + 8 * i, table1.lim2 + 8 * i);
  }
  c[0] = _mm256_add_epi16(c[0], _mm256_setr_epi16(dc0, 0, 0, 0, 0, 0, 0, 0, dc1, 0, 0, 0, 0, 0, 0, 0));
  const V bad = idct_core(c, q, lim, lim2, packed);
  for (int r = 0; r < 4; ++r) {
    const __m128i a = _mm256_castsi256_si128(packed[r]), b = _mm256_extracti128_si256(packed[r], 1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out0 + 2 * r * stride0), a);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out0 + (2 * r + 1) * stride0), _mm_srli_si128(a, 8));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out1 + 2 * r * stride1), b);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out1 + (2 * r + 1) * stride1), _mm_srli_si128(b, 8));
  }
  return _mm256_testz_si256(bad, bad) != 0;
}

void ycc_row(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out) {
  switch (kind) {
    case Chroma::kNone: return ycc_row_impl<Chroma::kNone>(y, cb, cr, width, out);
    case Chroma::kH1: return ycc_row_impl<Chroma::kH1>(y, cb, cr, width, out);
    case Chroma::kH2V1: return ycc_row_impl<Chroma::kH2V1>(y, cb, cr, width, out);
    case Chroma::kH2V2: return ycc_row_impl<Chroma::kH2V2>(y, cb, cr, width, out);
  }
}

}  // namespace pixtral::image::detail::jpeg::avx2
