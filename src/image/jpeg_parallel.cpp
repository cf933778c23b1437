// JPEG decode with the entropy decoding in libjpeg-turbo (jpeg_read_coefficients, serial by
// nature) and the rest -- ISLOW IDCT, fancy chroma upsampling, YCbCr->RGB -- re-implemented
// bit-exactly after libjpeg-turbo's C code (jidctint.c, jdsample.c, jdcolor.c; its SIMD paths
// give identical results) and run over the thread pool. Only baseline YCbCr 4:4:4 / 4:2:2 /
// 4:2:0 is handled here; everything else falls back to libjpeg's own full decode.
// ref: spec/inputs.md §5.1 step 1 (Pillow = libjpeg-turbo defaults: ISLOW, fancy upsampling)
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
#include <jerror.h>

#include <algorithm>
#include <array>
#include <csetjmp>
#include <optional>
#include <string>

#include "base/thread_pool.h"
#include "image/codec.h"

namespace pixtral::image::detail {
namespace {

struct ErrorMgr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";
};

void error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}
void emit_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) error_exit(cinfo);
}

// jidctint.c constants (CONST_BITS = 13) and helpers.
constexpr int kConstBits = 13, kPass1Bits = 2;
constexpr int64_t F0298 = 2446, F0390 = 3196, F0541 = 4433, F0765 = 6270, F0899 = 7373, F1175 = 9633,
                  F1501 = 12299, F1847 = 15137, F1961 = 16069, F2053 = 16819, F2562 = 20995, F3072 = 25172;
inline int64_t descale(int64_t x, int n) { return (x + (int64_t{1} << (n - 1))) >> n; }
// libjpeg's post-IDCT range-limit table: 10-bit wraparound, then clamp of x + 128.
inline uint8_t range_limit(int64_t x) {
  int v = static_cast<int>(x & 1023);
  if (v >= 512) v -= 1024;
  return static_cast<uint8_t>(std::clamp(v + 128, 0, 255));
}

// One odd/even butterfly of jpeg_idct_islow, shared by both passes; out[k] before descaling.
inline void islow_1d(int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4, int64_t d5, int64_t d6,
                     int64_t d7, int64_t* out) {
  int64_t z1 = (d2 + d6) * F0541;
  const int64_t tmp2e = z1 + d6 * -F1847, tmp3e = z1 + d2 * F0765;
  const int64_t tmp0e = (d0 + d4) * (int64_t{1} << kConstBits), tmp1e = (d0 - d4) * (int64_t{1} << kConstBits);
  const int64_t tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e, tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  int64_t tmp0 = d7, tmp1 = d5, tmp2 = d3, tmp3 = d1;
  z1 = tmp0 + tmp3;
  int64_t z2 = tmp1 + tmp2, z3 = tmp0 + tmp2, z4 = tmp1 + tmp3;
  const int64_t z5 = (z3 + z4) * F1175;
  tmp0 *= F0298, tmp1 *= F2053, tmp2 *= F3072, tmp3 *= F1501;
  z1 *= -F0899, z2 *= -F2562, z3 *= -F1961, z4 *= -F0390;
  z3 += z5, z4 += z5;
  tmp0 += z1 + z3, tmp1 += z2 + z4, tmp2 += z2 + z3, tmp3 += z1 + z4;
  out[0] = tmp10 + tmp3, out[7] = tmp10 - tmp3, out[1] = tmp11 + tmp2, out[6] = tmp11 - tmp2;
  out[2] = tmp12 + tmp1, out[5] = tmp12 - tmp1, out[3] = tmp13 + tmp0, out[4] = tmp13 - tmp0;
}

// jpeg_idct_islow on one block (natural order) into out (stride). The zero-AC shortcuts of the C
// code give the same values as the full butterflies, so they are not needed for exactness.
void idct_islow(const JCOEF* in, const UINT16* quant, uint8_t* out, size_t stride) {
  int64_t ws[64], tmp[8];
  for (int c = 0; c < 8; ++c) {
    auto q = [&](int r) { return static_cast<int64_t>(in[r * 8 + c]) * quant[r * 8 + c]; };
    islow_1d(q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7), tmp);
    for (int r = 0; r < 8; ++r) ws[r * 8 + c] = descale(tmp[r], kConstBits - kPass1Bits);
  }
  for (int r = 0; r < 8; ++r) {
    const int64_t* w = &ws[r * 8];
    islow_1d(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], tmp);
    for (int c = 0; c < 8; ++c) out[r * stride + c] = range_limit(descale(tmp[c], kConstBits + kPass1Bits + 3));
  }
}

// jdcolor.c ycc_rgb_convert tables (SCALEBITS = 16).
struct ColorTables {
  int cr_r[256], cb_b[256];
  int64_t cr_g[256], cb_g[256];
  ColorTables() {
    auto fix = [](double x) { return static_cast<int64_t>(x * 65536.0 + 0.5); };
    for (int i = 0; i < 256; ++i) {
      const int64_t x = i - 128;
      cr_r[i] = static_cast<int>((fix(1.40200) * x + (1 << 15)) >> 16);
      cb_b[i] = static_cast<int>((fix(1.77200) * x + (1 << 15)) >> 16);
      cr_g[i] = -fix(0.71414) * x;
      cb_g[i] = -fix(0.34414) * x + (1 << 15);
    }
  }
};

// h2v1_fancy_upsample (jdsample.c) over one row of n >= 3 samples into 2n outputs.
void upsample_h2v1(const uint8_t* in, int64_t n, uint8_t* out) {
  out[0] = in[0];
  out[1] = static_cast<uint8_t>((in[0] * 3 + in[1] + 2) >> 2);
  for (int64_t i = 1; i < n - 1; ++i) {
    const int v = in[i] * 3;
    out[2 * i] = static_cast<uint8_t>((v + in[i - 1] + 1) >> 2);
    out[2 * i + 1] = static_cast<uint8_t>((v + in[i + 1] + 2) >> 2);
  }
  out[2 * n - 2] = static_cast<uint8_t>((in[n - 1] * 3 + in[n - 2] + 1) >> 2);
  out[2 * n - 1] = in[n - 1];
}

// h2v2_fancy_upsample for one output row: near = nearest chroma row, far = the next nearest.
void upsample_h2v2(const uint8_t* near, const uint8_t* far, int64_t n, uint8_t* out) {
  int this_sum = near[0] * 3 + far[0], next_sum = near[1] * 3 + far[1], last_sum;
  out[0] = static_cast<uint8_t>((this_sum * 4 + 8) >> 4);
  out[1] = static_cast<uint8_t>((this_sum * 3 + next_sum + 7) >> 4);
  last_sum = this_sum, this_sum = next_sum;
  for (int64_t i = 2; i < n; ++i) {
    next_sum = near[i] * 3 + far[i];
    out[2 * i - 2] = static_cast<uint8_t>((this_sum * 3 + last_sum + 8) >> 4);
    out[2 * i - 1] = static_cast<uint8_t>((this_sum * 3 + next_sum + 7) >> 4);
    last_sum = this_sum, this_sum = next_sum;
  }
  out[2 * n - 2] = static_cast<uint8_t>((this_sum * 3 + last_sum + 8) >> 4);
  out[2 * n - 1] = static_cast<uint8_t>((this_sum * 4 + 7) >> 4);
}

struct Plane {
  std::vector<uint8_t> data;  // [blocks_h * 8, stride]
  size_t stride = 0;
  int64_t width = 0, height = 0;  // libjpeg's downsampled_width / downsampled_height
  const uint8_t* row(int64_t y) const { return data.data() + std::clamp<int64_t>(y, 0, height - 1) * stride; }
};

// The layouts this path reproduces; anything else returns false (libjpeg decodes it).
bool supported(const jpeg_decompress_struct& c) {
  if (c.num_components != 3 || c.jpeg_color_space != JCS_YCbCr || c.progressive_mode || c.data_precision != 8 ||
      c.CCIR601_sampling || c.arith_code) {
    return false;
  }
  const jpeg_component_info* k = c.comp_info;
  for (int i = 1; i < 3; ++i) {
    if (k[i].h_samp_factor != 1 || k[i].v_samp_factor != 1) return false;
  }
  const int h = k[0].h_samp_factor, v = k[0].v_samp_factor;
  const bool layout = (h == 1 && v == 1) || (h == 2 && v == 1) || (h == 2 && v == 2);
  return layout && (h == 1 || (c.image_width + 1) / 2 > 2);  // fancy upsampling needs > 2 samples
}

// Header + entropy decoding; false after a libjpeg error. Planes are filled by the caller.
bool read_coefficients(jpeg_decompress_struct& c, ErrorMgr& err, std::span<const uint8_t> bytes, bool& handled,
                       std::array<std::vector<JBLOCKROW>, 3>& rows) {
  if (setjmp(err.jump)) return false;
  jpeg_mem_src(&c, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&c, TRUE);
  handled = supported(c);
  if (!handled) return true;
  jvirt_barray_ptr* coefs = jpeg_read_coefficients(&c);
  for (int ci = 0; ci < 3; ++ci) {
    const jpeg_component_info& k = c.comp_info[ci];
    rows[ci].resize(k.height_in_blocks);
    for (JDIMENSION by = 0; by < k.height_in_blocks; by += k.v_samp_factor) {
      JBLOCKARRAY a = (*c.mem->access_virt_barray)(reinterpret_cast<j_common_ptr>(&c), coefs[ci], by,
                                                   static_cast<JDIMENSION>(k.v_samp_factor), FALSE);
      for (int i = 0; i < k.v_samp_factor && by + i < k.height_in_blocks; ++i) rows[ci][by + i] = a[i];
    }
  }
  return true;
}

}  // namespace

Result<std::optional<RgbImage>> decode_jpeg_parallel(std::span<const uint8_t> bytes) {
  jpeg_decompress_struct c;
  ErrorMgr err;
  c.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  err.mgr.emit_message = emit_message;
  jpeg_create_decompress(&c);
  bool handled = false;
  std::array<std::vector<JBLOCKROW>, 3> rows;  // per component: [height_in_blocks] block rows
  if (!read_coefficients(c, err, bytes, handled, rows)) {
    jpeg_destroy_decompress(&c);
    return invalid_argument(std::string("jpeg: corrupt or truncated file: ") + err.message);
  }
  if (!handled) {
    jpeg_destroy_decompress(&c);
    return std::optional<RgbImage>();
  }
  auto& pool = base::ThreadPool::global();
  const int max_h = c.max_h_samp_factor, max_v = c.max_v_samp_factor;
  std::array<Plane, 3> planes;
  for (int ci = 0; ci < 3; ++ci) {
    const jpeg_component_info& k = c.comp_info[ci];
    Plane& p = planes[ci];
    p.stride = static_cast<size_t>(k.width_in_blocks) * 8;
    p.width = (static_cast<int64_t>(c.image_width) * k.h_samp_factor + max_h - 1) / max_h;
    p.height = (static_cast<int64_t>(c.image_height) * k.v_samp_factor + max_v - 1) / max_v;
    p.data.resize(p.stride * k.height_in_blocks * 8);
    const UINT16* quant = k.quant_table->quantval;
    pool.parallel_for(k.height_in_blocks, [&](int64_t b0, int64_t b1) {
      for (int64_t by = b0; by < b1; ++by) {
        for (JDIMENSION bx = 0; bx < k.width_in_blocks; ++bx) {
          idct_islow(rows[ci][by][bx], quant, p.data.data() + by * 8 * p.stride + bx * 8, p.stride);
        }
      }
    }, 4);
  }
  const int64_t w = c.image_width, h = c.image_height;
  const int hs = c.comp_info[0].h_samp_factor, vs = c.comp_info[0].v_samp_factor;
  jpeg_destroy_decompress(&c);
  static const ColorTables tables;
  RgbImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
  pool.parallel_for(h, [&](int64_t y0, int64_t y1) {
    std::vector<uint8_t> cb(static_cast<size_t>(2 * planes[1].width + 2)), cr(cb.size());
    for (int64_t y = y0; y < y1; ++y) {
      const uint8_t* luma = planes[0].row(y);
      const uint8_t *pb = planes[1].row(y), *pr = planes[2].row(y);
      if (vs == 2) {  // 4:2:0: chroma row y/2, the next nearest above (even y) or below (odd y)
        const int64_t i = y / 2, other = (y % 2 == 0) ? i - 1 : i + 1;
        upsample_h2v2(planes[1].row(i), planes[1].row(other), planes[1].width, cb.data());
        upsample_h2v2(planes[2].row(i), planes[2].row(other), planes[2].width, cr.data());
        pb = cb.data(), pr = cr.data();
      } else if (hs == 2) {  // 4:2:2
        upsample_h2v1(planes[1].row(y), planes[1].width, cb.data());
        upsample_h2v1(planes[2].row(y), planes[2].width, cr.data());
        pb = cb.data(), pr = cr.data();
      }
      uint8_t* out = image.pixels.data() + y * w * 3;
      for (int64_t x = 0; x < w; ++x) {
        const int yy = luma[x], b = pb[x], r = pr[x];
        out[3 * x] = static_cast<uint8_t>(std::clamp(yy + tables.cr_r[r], 0, 255));
        out[3 * x + 1] = static_cast<uint8_t>(std::clamp<int64_t>(yy + ((tables.cb_g[b] + tables.cr_g[r]) >> 16), 0, 255));
        out[3 * x + 2] = static_cast<uint8_t>(std::clamp(yy + tables.cb_b[b], 0, 255));
      }
    }
  }, 8);
  return std::optional<RgbImage>(std::move(image));
}

}  // namespace pixtral::image::detail
