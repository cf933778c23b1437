// IDCT, fancy upsampling and YCbCr->RGB of the parallel JPEG decoder. The scalar versions follow
// libjpeg-turbo's C code (jidctint.c, jdsample.c, jdcolor.c); the SIMD versions (SSE2 here, AVX2
// in jpeg_kernels_avx2.cpp, both from jpeg_kernels_simd.inc) follow its SIMD code
// (jidctint-sse2.asm: the same 16-bit lane arithmetic) and give the same bits.
#include "image/jpeg_kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pixtral::image::detail::jpeg {
namespace {

// jdcolor.c build_ycc_rgb_table (SCALEBITS = 16).
struct ColorTables {
  int cr_r[256], cb_b[256], cr_g[256], cb_g[256];
  ColorTables() {
    auto fix = [](double x) { return static_cast<int>(x * 65536.0 + 0.5); };
    for (int i = 0; i < 256; ++i) {
      const int x = i - 128;
      cr_r[i] = (fix(1.40200) * x + (1 << 15)) >> 16;
      cb_b[i] = (fix(1.77200) * x + (1 << 15)) >> 16;
      cr_g[i] = -fix(0.71414) * x;
      cb_g[i] = -fix(0.34414) * x + (1 << 15);
    }
  }
};
const ColorTables& color_tables() {
  static const ColorTables tables;
  return tables;
}

std::atomic<bool>& avx2_flag() {
#if defined(PIXTRAL_JPEG_AVX2)
  static std::atomic<bool> on{__builtin_cpu_supports("avx2") && std::getenv("PIXTRAL_NO_AVX2") == nullptr};
#else
  static std::atomic<bool> on{false};
#endif
  return on;
}
[[maybe_unused]] bool have_avx2() { return avx2_flag().load(std::memory_order_relaxed); }

inline uint8_t clamp255(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// One 1-D ISLOW butterfly (jidctint.c), before descaling.
inline void islow_1d(const int64_t* d, int64_t* out) {
  int64_t z2 = d[2], z3 = d[6];
  int64_t z1 = (z2 + z3) * F0541;
  const int64_t tmp2e = z1 + z3 * -F1847, tmp3e = z1 + z2 * F0765;
  const int64_t tmp0e = (d[0] + d[4]) * (int64_t{1} << kConstBits), tmp1e = (d[0] - d[4]) * (int64_t{1} << kConstBits);
  const int64_t tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e, tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  int64_t tmp0 = d[7], tmp1 = d[5], tmp2 = d[3], tmp3 = d[1];
  z1 = tmp0 + tmp3, z2 = tmp1 + tmp2, z3 = tmp0 + tmp2;
  int64_t z4 = tmp1 + tmp3;
  const int64_t z5 = (z3 + z4) * F1175;
  tmp0 *= F0298, tmp1 *= F2053, tmp2 *= F3072, tmp3 *= F1501;
  z1 *= -F0899, z2 *= -F2562, z3 *= -F1961, z4 *= -F0390;
  z3 += z5, z4 += z5;
  tmp0 += z1 + z3, tmp1 += z2 + z4, tmp2 += z2 + z3, tmp3 += z1 + z4;
  out[0] = tmp10 + tmp3, out[7] = tmp10 - tmp3, out[1] = tmp11 + tmp2, out[6] = tmp11 - tmp2;
  out[2] = tmp12 + tmp1, out[5] = tmp12 - tmp1, out[3] = tmp13 + tmp0, out[4] = tmp13 - tmp0;
}
inline int64_t descale(int64_t x, int n) { return (x + (int64_t{1} << (n - 1))) >> n; }

template <Chroma kKind>
void ycc_row_scalar_impl(const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out) {
  const ColorTables& t = color_tables();
  for (int64_t x = 0; x < width; ++x) {
    const int yy = y[x];
    int b = yy, r = yy;
    if constexpr (kKind == Chroma::kNone) {
      out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = static_cast<uint8_t>(yy);
      continue;
    } else if constexpr (kKind == Chroma::kH1) {
      b = static_cast<const uint8_t*>(cb)[x], r = static_cast<const uint8_t*>(cr)[x];
    } else {
      // Fancy upsampling: even outputs lean on the left neighbour, odd ones on the right.
      const int64_t i = x / 2, side = (x % 2 == 0) ? -1 : 1;
      const int16_t* sb = static_cast<const int16_t*>(cb);
      const int16_t* sr = static_cast<const int16_t*>(cr);
      if constexpr (kKind == Chroma::kH2V1) {
        const int bias = (x % 2 == 0) ? 1 : 2;
        b = (3 * sb[i] + sb[i + side] + bias) >> 2, r = (3 * sr[i] + sr[i + side] + bias) >> 2;
      } else {
        const int bias = (x % 2 == 0) ? 8 : 7;
        b = (3 * sb[i] + sb[i + side] + bias) >> 4, r = (3 * sr[i] + sr[i + side] + bias) >> 4;
      }
    }
    out[3 * x] = clamp255(yy + t.cr_r[r]);
    out[3 * x + 1] = clamp255(yy + ((t.cb_g[b] + t.cr_g[r]) >> 16));
    out[3 * x + 2] = clamp255(yy + t.cb_b[b]);
  }
}

#if defined(__SSE2__)
namespace sse2 {
using V = __m128i;
constexpr int kLanes = 1;
#define SIMD(op) _mm_##op
#define V_OR _mm_or_si128
#define V_AND _mm_and_si128
#define V_ZERO _mm_setzero_si128
#define V_SRLI_BYTES _mm_srli_si128
#define V_LOADU(p) _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
#define V_ALL_ZERO(v) (_mm_movemask_epi8(_mm_cmpeq_epi8((v), _mm_setzero_si128())) == 0xFFFF)
#define V_STORE_RGB(out, A, D, F)                                      \
  do {                                                                 \
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), A);              \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 16), D);       \
    _mm_storeu_si128(reinterpret_cast<__m128i*>((out) + 32), F);       \
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
}  // namespace sse2
#endif  // __SSE2__

}  // namespace

bool use_avx2(bool on) {
#if defined(PIXTRAL_JPEG_AVX2)
  on = on && __builtin_cpu_supports("avx2");
#else
  on = false;
#endif
  avx2_flag().store(on);
  return on;
}
bool avx2_in_use() { return have_avx2(); }

bool IdctTable::set(const uint16_t* quantval) {
  // libjpeg keeps the table in natural order; quantval is indexed the same way.
  for (int i = 0; i < 64; ++i) {
    if (quantval[i] < 1 || quantval[i] > 32767) return false;
    q[i] = static_cast<int16_t>(quantval[i]);
    lim[i] = static_cast<int16_t>(8191 / quantval[i]);
    lim2[i] = static_cast<int16_t>(2 * lim[i]);
  }
  return true;
}

bool idct_islow_scalar(const int16_t* coef, int16_t dc_add, const IdctTable& table, uint8_t* out, ptrdiff_t stride) {
  bool ok = true;
  int64_t in[64], ws[64], v[8], tmp[8];
  for (int i = 0; i < 64; ++i) {
    const int16_t c = i == 0 ? static_cast<int16_t>(coef[0] + dc_add) : coef[i];
    in[i] = int64_t{c} * table.q[i];
    ok &= in[i] >= -8191 && in[i] <= 8191;
  }
  for (int c = 0; c < 8; ++c) {
    for (int r = 0; r < 8; ++r) v[r] = in[r * 8 + c];
    islow_1d(v, tmp);
    for (int r = 0; r < 8; ++r) {
      ws[r * 8 + c] = descale(tmp[r], kConstBits - kPass1Bits);
      ok &= ws[r * 8 + c] >= -16384 && ws[r * 8 + c] <= 16383;
    }
  }
  for (int r = 0; r < 8; ++r) {
    islow_1d(&ws[r * 8], tmp);
    for (int c = 0; c < 8; ++c) {
      const int64_t x = descale(tmp[c], kConstBits + kPass1Bits + 3);
      ok &= x >= -512 && x <= 511;
      out[r * stride + c] = static_cast<uint8_t>(std::clamp<int64_t>(x + 128, 0, 255));
    }
  }
  return ok;
}

bool idct_islow(const int16_t* coef, int16_t dc_add, const IdctTable& table, uint8_t* out, ptrdiff_t stride) {
#if defined(__SSE2__)
  __m128i c[8], q[8], lim[8], lim2[8], packed[4];
  for (int i = 0; i < 8; ++i) {
    c[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef + 8 * i));
    q[i] = _mm_load_si128(reinterpret_cast<const __m128i*>(table.q + 8 * i));
    lim[i] = _mm_load_si128(reinterpret_cast<const __m128i*>(table.lim + 8 * i));
    lim2[i] = _mm_load_si128(reinterpret_cast<const __m128i*>(table.lim2 + 8 * i));
  }
  c[0] = _mm_add_epi16(c[0], _mm_cvtsi32_si128(static_cast<uint16_t>(dc_add)));
  const __m128i bad = sse2::idct_core(c, q, lim, lim2, packed);
  for (int r = 0; r < 4; ++r) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 2 * r * stride), packed[r]);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + (2 * r + 1) * stride), _mm_srli_si128(packed[r], 8));
  }
  return _mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) == 0xFFFF;
#else
  return idct_islow_scalar(coef, dc_add, table, out, stride);
#endif
}

bool idct_islow2(const int16_t* coef0, int16_t dc0, const IdctTable& table0, uint8_t* out0, ptrdiff_t stride0,
                 const int16_t* coef1, int16_t dc1, const IdctTable& table1, uint8_t* out1, ptrdiff_t stride1) {
#if defined(PIXTRAL_JPEG_AVX2)
  if (have_avx2()) {
    return avx2::idct_islow2(coef0, dc0, table0, out0, stride0, coef1, dc1, table1, out1, stride1);
  }
#endif
  const bool a = idct_islow(coef0, dc0, table0, out0, stride0);
  const bool b = idct_islow(coef1, dc1, table1, out1, stride1);
  return a && b;
}

void chroma_sums(const uint8_t* near, const uint8_t* far, int64_t n, int16_t* sums) {
  int64_t x = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (; x + 8 <= n; x += 8) {
    const __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(near + x)), zero);
    __m128i s = a;
    if (far) {
      const __m128i f = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(far + x)), zero);
      s = _mm_add_epi16(_mm_add_epi16(a, _mm_add_epi16(a, a)), f);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sums + x), s);
  }
#endif
  for (; x < n; ++x) sums[x] = static_cast<int16_t>(far ? 3 * near[x] + far[x] : near[x]);
  sums[-1] = sums[0];
  sums[n] = sums[n - 1];
}

void ycc_row_scalar(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out) {
  switch (kind) {
    case Chroma::kNone: return ycc_row_scalar_impl<Chroma::kNone>(y, cb, cr, width, out);
    case Chroma::kH1: return ycc_row_scalar_impl<Chroma::kH1>(y, cb, cr, width, out);
    case Chroma::kH2V1: return ycc_row_scalar_impl<Chroma::kH2V1>(y, cb, cr, width, out);
    case Chroma::kH2V2: return ycc_row_scalar_impl<Chroma::kH2V2>(y, cb, cr, width, out);
  }
}

void ycc_row(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out) {
#if defined(PIXTRAL_JPEG_AVX2)
  if (have_avx2()) return avx2::ycc_row(kind, y, cb, cr, width, out);
#endif
#if defined(__SSE2__)
  switch (kind) {
    case Chroma::kNone: return sse2::ycc_row_impl<Chroma::kNone>(y, cb, cr, width, out);
    case Chroma::kH1: return sse2::ycc_row_impl<Chroma::kH1>(y, cb, cr, width, out);
    case Chroma::kH2V1: return sse2::ycc_row_impl<Chroma::kH2V1>(y, cb, cr, width, out);
    case Chroma::kH2V2: return sse2::ycc_row_impl<Chroma::kH2V2>(y, cb, cr, width, out);
  }
#else
  ycc_row_scalar(kind, y, cb, cr, width, out);
#endif
}

}  // namespace pixtral::image::detail::jpeg
