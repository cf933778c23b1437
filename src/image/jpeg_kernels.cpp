// IDCT, fancy upsampling and YCbCr->RGB of the parallel JPEG decoder. The scalar versions follow
// libjpeg-turbo's C code (jidctint.c, jdsample.c, jdcolor.c); the SSE2 versions follow its SIMD
// code (jidctint-sse2.asm: the same 16-bit lane arithmetic) and give the same bits.
#include "image/jpeg_kernels.h"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pixtral::image::detail::jpeg {
namespace {

// jidctint.c constants (CONST_BITS = 13, PASS1_BITS = 2).
constexpr int kConstBits = 13, kPass1Bits = 2;
constexpr int32_t F0298 = 2446, F0390 = 3196, F0541 = 4433, F0765 = 6270, F0899 = 7373, F1175 = 9633,
                  F1501 = 12299, F1847 = 15137, F1961 = 16069, F2053 = 16819, F2562 = 20995, F3072 = 25172;

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

inline __m128i pair16(int16_t a, int16_t b) { return _mm_set_epi16(b, a, b, a, b, a, b, a); }

// jidctint-sse2.asm's 1-D pass over 8 vectors (index = frequency, lanes = the other axis):
// 16-bit inputs, 32-bit products and sums, descaled by kShift and packed with saturation.
template <int kShift>
inline void idct_1d(const __m128i* in, __m128i* out) {
  const __m128i zero = _mm_setzero_si128();
  // Even part.
  __m128i lo = _mm_unpacklo_epi16(in[2], in[6]), hi = _mm_unpackhi_epi16(in[2], in[6]);
  const __m128i f130_054 = pair16(F0541 + F0765, F0541), f054_m130 = pair16(F0541, F0541 - F1847);
  const __m128i tmp3l = _mm_madd_epi16(lo, f130_054), tmp3h = _mm_madd_epi16(hi, f130_054);
  const __m128i tmp2l = _mm_madd_epi16(lo, f054_m130), tmp2h = _mm_madd_epi16(hi, f054_m130);
  const __m128i sum04 = _mm_add_epi16(in[0], in[4]), dif04 = _mm_sub_epi16(in[0], in[4]);
  const __m128i tmp0l = _mm_srai_epi32(_mm_unpacklo_epi16(zero, sum04), 16 - kConstBits);
  const __m128i tmp0h = _mm_srai_epi32(_mm_unpackhi_epi16(zero, sum04), 16 - kConstBits);
  const __m128i tmp1l = _mm_srai_epi32(_mm_unpacklo_epi16(zero, dif04), 16 - kConstBits);
  const __m128i tmp1h = _mm_srai_epi32(_mm_unpackhi_epi16(zero, dif04), 16 - kConstBits);
  const __m128i tmp10l = _mm_add_epi32(tmp0l, tmp3l), tmp10h = _mm_add_epi32(tmp0h, tmp3h);
  const __m128i tmp13l = _mm_sub_epi32(tmp0l, tmp3l), tmp13h = _mm_sub_epi32(tmp0h, tmp3h);
  const __m128i tmp11l = _mm_add_epi32(tmp1l, tmp2l), tmp11h = _mm_add_epi32(tmp1h, tmp2h);
  const __m128i tmp12l = _mm_sub_epi32(tmp1l, tmp2l), tmp12h = _mm_sub_epi32(tmp1h, tmp2h);
  // Odd part.
  const __m128i z3 = _mm_add_epi16(in[3], in[7]), z4 = _mm_add_epi16(in[1], in[5]);
  lo = _mm_unpacklo_epi16(z3, z4), hi = _mm_unpackhi_epi16(z3, z4);
  const __m128i m078_117 = pair16(F1175 - F1961, F1175), f117_078 = pair16(F1175, F1175 - F0390);
  const __m128i z3l = _mm_madd_epi16(lo, m078_117), z3h = _mm_madd_epi16(hi, m078_117);
  const __m128i z4l = _mm_madd_epi16(lo, f117_078), z4h = _mm_madd_epi16(hi, f117_078);
  lo = _mm_unpacklo_epi16(in[7], in[1]), hi = _mm_unpackhi_epi16(in[7], in[1]);
  const __m128i m060_m089 = pair16(F0298 - F0899, -F0899), m089_060 = pair16(-F0899, F1501 - F0899);
  const __m128i o0l = _mm_add_epi32(_mm_madd_epi16(lo, m060_m089), z3l);
  const __m128i o0h = _mm_add_epi32(_mm_madd_epi16(hi, m060_m089), z3h);
  const __m128i o3l = _mm_add_epi32(_mm_madd_epi16(lo, m089_060), z4l);
  const __m128i o3h = _mm_add_epi32(_mm_madd_epi16(hi, m089_060), z4h);
  lo = _mm_unpacklo_epi16(in[5], in[3]), hi = _mm_unpackhi_epi16(in[5], in[3]);
  const __m128i m050_m256 = pair16(F2053 - F2562, -F2562), m256_050 = pair16(-F2562, F3072 - F2562);
  const __m128i o1l = _mm_add_epi32(_mm_madd_epi16(lo, m050_m256), z4l);
  const __m128i o1h = _mm_add_epi32(_mm_madd_epi16(hi, m050_m256), z4h);
  const __m128i o2l = _mm_add_epi32(_mm_madd_epi16(lo, m256_050), z3l);
  const __m128i o2h = _mm_add_epi32(_mm_madd_epi16(hi, m256_050), z3h);
  // Output stage.
  const __m128i round = _mm_set1_epi32(1 << (kShift - 1));
  auto fin = [&](__m128i l, __m128i h) {
    return _mm_packs_epi32(_mm_srai_epi32(_mm_add_epi32(l, round), kShift),
                           _mm_srai_epi32(_mm_add_epi32(h, round), kShift));
  };
  out[0] = fin(_mm_add_epi32(tmp10l, o3l), _mm_add_epi32(tmp10h, o3h));
  out[7] = fin(_mm_sub_epi32(tmp10l, o3l), _mm_sub_epi32(tmp10h, o3h));
  out[1] = fin(_mm_add_epi32(tmp11l, o2l), _mm_add_epi32(tmp11h, o2h));
  out[6] = fin(_mm_sub_epi32(tmp11l, o2l), _mm_sub_epi32(tmp11h, o2h));
  out[2] = fin(_mm_add_epi32(tmp12l, o1l), _mm_add_epi32(tmp12h, o1h));
  out[5] = fin(_mm_sub_epi32(tmp12l, o1l), _mm_sub_epi32(tmp12h, o1h));
  out[3] = fin(_mm_add_epi32(tmp13l, o0l), _mm_add_epi32(tmp13h, o0h));
  out[4] = fin(_mm_sub_epi32(tmp13l, o0l), _mm_sub_epi32(tmp13h, o0h));
}

inline void transpose8x8(__m128i* v) {
  const __m128i a0 = _mm_unpacklo_epi16(v[0], v[1]), a1 = _mm_unpackhi_epi16(v[0], v[1]);
  const __m128i a2 = _mm_unpacklo_epi16(v[2], v[3]), a3 = _mm_unpackhi_epi16(v[2], v[3]);
  const __m128i a4 = _mm_unpacklo_epi16(v[4], v[5]), a5 = _mm_unpackhi_epi16(v[4], v[5]);
  const __m128i a6 = _mm_unpacklo_epi16(v[6], v[7]), a7 = _mm_unpackhi_epi16(v[6], v[7]);
  const __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
  const __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
  const __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
  const __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
  v[0] = _mm_unpacklo_epi64(b0, b4), v[1] = _mm_unpackhi_epi64(b0, b4);
  v[2] = _mm_unpacklo_epi64(b1, b5), v[3] = _mm_unpackhi_epi64(b1, b5);
  v[4] = _mm_unpacklo_epi64(b2, b6), v[5] = _mm_unpackhi_epi64(b2, b6);
  v[6] = _mm_unpacklo_epi64(b3, b7), v[7] = _mm_unpackhi_epi64(b3, b7);
}

// 8 pixels in 16-bit lanes: jdcolor.c's table arithmetic done exactly with 16-bit multiplies.
//   Cr_r = (91881 x + 2^15) >> 16 = x + ((26345 x + 2^15) >> 16)
//   Cb_b = (116130 x + 2^15) >> 16 = 2x + ((-14942 x + 2^15) >> 16)
//   Cb_g + Cr_g = (-22554 xb - 46802 xr + 2^15) >> 16 = ((-22554 xb + 18734 xr + 2^15) >> 16) - xr
// where (p + 2^15) >> 16 of a 16x16-bit product p is its high half plus bit 15 of its low half.
inline void ycc8(__m128i y, __m128i cb, __m128i cr, __m128i& r, __m128i& g, __m128i& b) {
  const __m128i c128 = _mm_set1_epi16(128);
  const __m128i xb = _mm_sub_epi16(cb, c128), xr = _mm_sub_epi16(cr, c128);
  const __m128i kr = _mm_set1_epi16(26345), kb = _mm_set1_epi16(-14942);
  r = _mm_add_epi16(_mm_add_epi16(y, xr),
                    _mm_add_epi16(_mm_mulhi_epi16(xr, kr), _mm_srli_epi16(_mm_mullo_epi16(xr, kr), 15)));
  b = _mm_add_epi16(_mm_add_epi16(y, _mm_add_epi16(xb, xb)),
                    _mm_add_epi16(_mm_mulhi_epi16(xb, kb), _mm_srli_epi16(_mm_mullo_epi16(xb, kb), 15)));
  const __m128i kg = pair16(-22554, 18734), half = _mm_set1_epi32(1 << 15);
  const __m128i gl = _mm_srai_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(xb, xr), kg), half), 16);
  const __m128i gh = _mm_srai_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(xb, xr), kg), half), 16);
  g = _mm_add_epi16(y, _mm_sub_epi16(_mm_packs_epi32(gl, gh), xr));
}

// 16 pixels given as even / odd halves (low 8 bytes of each) of three channels -> 48 bytes
// interleaved (libjpeg-turbo's jdcolext-sse2.asm RGB_PIXELSIZE == 3 shuffle).
inline void store_rgb48(__m128i ae, __m128i ao, __m128i be, __m128i bo, __m128i ce, __m128i co, uint8_t* out) {
  __m128i A = ae, B = ao, C = be, D = bo, E = ce, F = co, G, H;
  A = _mm_unpacklo_epi8(A, C);  // A0 B0 A2 B2 ...
  E = _mm_unpacklo_epi8(E, B);  // C0 A1 C2 A3 ...
  D = _mm_unpacklo_epi8(D, F);  // B1 C1 B3 C3 ...
  G = A, H = A;
  A = _mm_unpacklo_epi16(A, E);
  G = _mm_unpackhi_epi16(G, E);
  H = _mm_srli_si128(H, 2);
  E = _mm_srli_si128(E, 2);
  C = D, B = D;
  D = _mm_unpacklo_epi16(D, H);
  C = _mm_unpackhi_epi16(C, H);
  B = _mm_srli_si128(B, 2);
  F = E;
  E = _mm_unpacklo_epi16(E, B);
  F = _mm_unpackhi_epi16(F, B);
  H = _mm_shuffle_epi32(A, 0x4E);
  B = E;
  A = _mm_unpacklo_epi32(A, D);
  E = _mm_unpacklo_epi32(E, H);
  D = _mm_unpackhi_epi32(D, B);
  H = _mm_shuffle_epi32(G, 0x4E);
  B = F;
  G = _mm_unpacklo_epi32(G, C);
  F = _mm_unpacklo_epi32(F, H);
  C = _mm_unpackhi_epi32(C, B);
  A = _mm_unpacklo_epi64(A, E);
  D = _mm_unpacklo_epi64(D, G);
  F = _mm_unpacklo_epi64(F, C);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), A);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), D);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), F);
}

template <Chroma kKind>
void ycc_row_sse2(const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out) {
  const __m128i low = _mm_set1_epi16(0x00FF);
  alignas(16) uint8_t tail[48];
  for (int64_t x = 0; x < width; x += 16) {
    const __m128i yv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y + x));
    const __m128i ye = _mm_and_si128(yv, low), yo = _mm_srli_epi16(yv, 8);
    uint8_t* dst = x + 16 <= width ? out + 3 * x : tail;
    if constexpr (kKind == Chroma::kNone) {
      const __m128i e = _mm_packus_epi16(ye, ye), o = _mm_packus_epi16(yo, yo);
      store_rgb48(e, o, e, o, e, o, dst);
    } else {
      __m128i be, bo, re, ro;
      if constexpr (kKind == Chroma::kH1) {
        const __m128i bv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(cb) + x));
        const __m128i rv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(cr) + x));
        be = _mm_and_si128(bv, low), bo = _mm_srli_epi16(bv, 8);
        re = _mm_and_si128(rv, low), ro = _mm_srli_epi16(rv, 8);
      } else {
        constexpr int kShift = kKind == Chroma::kH2V1 ? 2 : 4;
        const __m128i bias_e = _mm_set1_epi16(kKind == Chroma::kH2V1 ? 1 : 8);
        const __m128i bias_o = _mm_set1_epi16(kKind == Chroma::kH2V1 ? 2 : 7);
        auto upsample = [&](const void* src, __m128i& even, __m128i& odd) {
          const int16_t* s = static_cast<const int16_t*>(src) + x / 2;
          const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
          const __m128i left = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s - 1));
          const __m128i right = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 1));
          const __m128i a3 = _mm_add_epi16(a, _mm_add_epi16(a, a));
          even = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(a3, left), bias_e), kShift);
          odd = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(a3, right), bias_o), kShift);
        };
        upsample(cb, be, bo);
        upsample(cr, re, ro);
      }
      __m128i r_e, g_e, b_e, r_o, g_o, b_o;
      ycc8(ye, be, re, r_e, g_e, b_e);
      ycc8(yo, bo, ro, r_o, g_o, b_o);
      store_rgb48(_mm_packus_epi16(r_e, r_e), _mm_packus_epi16(r_o, r_o), _mm_packus_epi16(g_e, g_e),
                  _mm_packus_epi16(g_o, g_o), _mm_packus_epi16(b_e, b_e), _mm_packus_epi16(b_o, b_o), dst);
    }
    if (dst == tail) std::memcpy(out + 3 * x, tail, static_cast<size_t>(3 * (width - x)));
  }
}

#endif  // __SSE2__

}  // namespace

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
  const __m128i zero = _mm_setzero_si128();
  __m128i c[8];
  for (int i = 0; i < 8; ++i) c[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef + 8 * i));
  c[0] = _mm_add_epi16(c[0], _mm_cvtsi32_si128(static_cast<uint16_t>(dc_add)));
  // |coef * q| <= 8191  <=>  (coef + lim) mod 2^16 <= 2 * lim (unsigned).
  __m128i bad = zero;
  for (int i = 0; i < 8; ++i) {
    const __m128i lim = _mm_load_si128(reinterpret_cast<const __m128i*>(table.lim + 8 * i));
    const __m128i lim2 = _mm_load_si128(reinterpret_cast<const __m128i*>(table.lim2 + 8 * i));
    bad = _mm_or_si128(bad, _mm_subs_epu16(_mm_add_epi16(c[i], lim), lim2));
  }
  const __m128i ac_rows = _mm_or_si128(_mm_or_si128(_mm_or_si128(c[1], c[2]), _mm_or_si128(c[3], c[4])),
                                       _mm_or_si128(_mm_or_si128(c[5], c[6]), c[7]));
  for (int i = 0; i < 8; ++i) {
    c[i] = _mm_mullo_epi16(c[i], _mm_load_si128(reinterpret_cast<const __m128i*>(table.q + 8 * i)));
  }
  __m128i ws[8];
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(ac_rows, zero)) == 0xFFFF) {
    // Only the first row of coefficients: pass 1 is in << PASS1_BITS down each column.
    const __m128i d = _mm_slli_epi16(c[0], kPass1Bits);
    const __m128i lo = _mm_unpacklo_epi16(d, d), hi = _mm_unpackhi_epi16(d, d);
    ws[0] = _mm_shuffle_epi32(lo, 0x00), ws[1] = _mm_shuffle_epi32(lo, 0x55);
    ws[2] = _mm_shuffle_epi32(lo, 0xAA), ws[3] = _mm_shuffle_epi32(lo, 0xFF);
    ws[4] = _mm_shuffle_epi32(hi, 0x00), ws[5] = _mm_shuffle_epi32(hi, 0x55);
    ws[6] = _mm_shuffle_epi32(hi, 0xAA), ws[7] = _mm_shuffle_epi32(hi, 0xFF);
  } else {
    idct_1d<kConstBits - kPass1Bits>(c, ws);
    transpose8x8(ws);
  }
  // First-pass values in [-16384, 16383]  <=>  bit 15 of (v + 16384) clear.
  const __m128i k4000 = _mm_set1_epi16(0x4000);
  __m128i acc = zero;
  for (int i = 0; i < 8; ++i) acc = _mm_or_si128(acc, _mm_add_epi16(ws[i], k4000));
  bad = _mm_or_si128(bad, _mm_and_si128(acc, _mm_set1_epi16(static_cast<int16_t>(0x8000))));
  __m128i o[8];
  idct_1d<kConstBits + kPass1Bits + 3>(ws, o);
  // Outputs in [-512, 511]  <=>  (v + 512) & 0xFC00 == 0.
  const __m128i k512 = _mm_set1_epi16(512);
  acc = zero;
  for (int i = 0; i < 8; ++i) acc = _mm_or_si128(acc, _mm_add_epi16(o[i], k512));
  bad = _mm_or_si128(bad, _mm_and_si128(acc, _mm_set1_epi16(static_cast<int16_t>(0xFC00))));
  transpose8x8(o);
  const __m128i center = _mm_set1_epi8(static_cast<char>(0x80));
  for (int r = 0; r < 8; r += 2) {
    const __m128i p = _mm_add_epi8(_mm_packs_epi16(o[r], o[r + 1]), center);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + r * stride), p);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + (r + 1) * stride), _mm_srli_si128(p, 8));
  }
  return _mm_movemask_epi8(_mm_cmpeq_epi8(bad, zero)) == 0xFFFF;
#else
  return idct_islow_scalar(coef, dc_add, table, out, stride);
#endif
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
#if defined(__SSE2__)
  switch (kind) {
    case Chroma::kNone: return ycc_row_sse2<Chroma::kNone>(y, cb, cr, width, out);
    case Chroma::kH1: return ycc_row_sse2<Chroma::kH1>(y, cb, cr, width, out);
    case Chroma::kH2V1: return ycc_row_sse2<Chroma::kH2V1>(y, cb, cr, width, out);
    case Chroma::kH2V2: return ycc_row_sse2<Chroma::kH2V2>(y, cb, cr, width, out);
  }
#else
  ycc_row_scalar(kind, y, cb, cr, width, out);
#endif
}

}  // namespace pixtral::image::detail::jpeg
