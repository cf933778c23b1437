// Pixel kernels of the parallel JPEG decoder (jpeg_parallel.cpp), bit-exact with libjpeg-turbo's
// defaults that Pillow uses: ISLOW inverse DCT (jidctint.c and its SSE2/AVX2 versions), fancy
// chroma upsampling (jdsample.c h2v1/h2v2) and YCbCr->RGB (jdcolor.c). Each kernel has a
// portable scalar version (the reference the tests compare against) and an SSE2 version (AVX2 as
// well on x86-64 CPUs that have it; PIXTRAL_NO_AVX2 in the environment turns it off).
// ref: spec/inputs.md §5.1 step 1 (Pillow = libjpeg-turbo defaults)
#pragma once

#include <cstddef>
#include <cstdint>

namespace pixtral::image::detail::jpeg {

// jidctint.c constants (CONST_BITS = 13, PASS1_BITS = 2).
constexpr int kConstBits = 13, kPass1Bits = 2;
constexpr int32_t F0298 = 2446, F0390 = 3196, F0541 = 4433, F0765 = 6270, F0899 = 7373, F1175 = 9633,
                  F1501 = 12299, F1847 = 15137, F1961 = 16069, F2053 = 16819, F2562 = 20995, F3072 = 25172;

// Whether the AVX2 kernels run (default: when the CPU has AVX2 and PIXTRAL_NO_AVX2 is unset).
// use_avx2 (tests, benchmarks) switches them; returns whether they are now on.
bool use_avx2(bool on);
bool avx2_in_use();

// Quantization table of one component in natural order, plus the per-coefficient bounds that
// keep the dequantized value in [-8191, 8191] (see idct_islow).
struct IdctTable {
  alignas(16) int16_t q[64];
  alignas(16) int16_t lim[64];   // floor(8191 / q)
  alignas(16) int16_t lim2[64];  // 2 * lim
  // False when a quantizer is outside [1, 32767] (libjpeg reads it as a signed 16-bit value).
  bool set(const uint16_t* quantval);
};

// ISLOW IDCT of one block (coefficients in natural order; dc_add is added to coefficient 0 with
// 16-bit wraparound, as libjpeg stores DC values) into 8 rows of 8 samples at out (stride).
// libjpeg-turbo's C code (32/64-bit integers, 10-bit wraparound before the final clamp) and its
// SIMD code (16-bit lanes, saturating packs) agree only while the dequantized coefficients stay
// in [-8191, 8191], the first pass in [-16384, 16383] and the output before clamping in
// [-512, 511]; that always holds for coefficients a real encoder produces. Returns false when a
// block leaves that range (the caller then lets libjpeg decode the file).
bool idct_islow(const int16_t* coef, int16_t dc_add, const IdctTable& table, uint8_t* out, ptrdiff_t stride);
bool idct_islow_scalar(const int16_t* coef, int16_t dc_add, const IdctTable& table, uint8_t* out, ptrdiff_t stride);
// Two blocks at once (AVX2 when the CPU has it); true iff both are in range.
bool idct_islow2(const int16_t* coef0, int16_t dc0, const IdctTable& table0, uint8_t* out0, ptrdiff_t stride0,
                 const int16_t* coef1, int16_t dc1, const IdctTable& table1, uint8_t* out1, ptrdiff_t stride1);

// One RGB output row. y: luma samples (readable up to width rounded up to 32, plus 32).
// Chroma sources by layout:
//  - kH1: cb/cr rows at full resolution (4:4:4), same readability as y;
//  - kH2V1 (4:2:2): cb/cr rows of ceil(width/2) samples, h2v1 fancy upsampling;
//  - kH2V2 (4:2:0): cb/cr are "column sums" 3*nearer + further row (int16), h2v2 fancy upsampling.
// For kH2V1 and kH2V2 the chroma is given as int16 `sums` with one valid element before index 0
// and after the last one (edge replication) and readable up to ceil(width/2) rounded up to 16, plus 16.
// out receives width * 3 bytes.
enum class Chroma { kNone, kH1, kH2V1, kH2V2 };
void ycc_row(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out);
void ycc_row_scalar(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out);

// Builds the padded int16 chroma input of ycc_row for kH2V1 (near only, far == nullptr) or
// kH2V2 (3*near + far) from n samples; sums must have room for [-1, round_up(n, 16) + 16].
void chroma_sums(const uint8_t* near, const uint8_t* far, int64_t n, int16_t* sums);

#if defined(PIXTRAL_JPEG_AVX2)
// jpeg_kernels_avx2.cpp (compiled with -mavx2; only called after a CPU check).
namespace avx2 {
bool idct_islow2(const int16_t* coef0, int16_t dc0, const IdctTable& table0, uint8_t* out0, ptrdiff_t stride0,
                 const int16_t* coef1, int16_t dc1, const IdctTable& table1, uint8_t* out1, ptrdiff_t stride1);
void ycc_row(Chroma kind, const uint8_t* y, const void* cb, const void* cr, int64_t width, uint8_t* out);
}  // namespace avx2
#endif

}  // namespace pixtral::image::detail::jpeg
