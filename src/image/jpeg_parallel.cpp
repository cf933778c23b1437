// Parallel baseline-JPEG decoder, the orchestration: header through libjpeg, scratch memory, the
// chunk count, entropy decoding (jpeg_entropy.h), then IDCT / upsampling / colour over the thread
// pool (jpeg_kernels.h). Every condition under which libjpeg-turbo would warn, fail, or compute
// differently makes it decline (nullptr); the caller then runs libjpeg. ref: spec/inputs.md §5.1 step 1
#include "image/jpeg_parallel.h"

#include <cstddef>
#include <cstdio>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <jpeglib.h>
#include <jerror.h>

#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstring>
#include <map>
#include <new>
#include <mutex>
#include <vector>

#include "base/thread_pool.h"
#include "image/jpeg_entropy.h"
#include "image/jpeg_kernels.h"

namespace pixtral::image::detail {
namespace {

using jpeg::Chroma;
using jpeg::Huffman;
using jpeg::IdctTable;
using jpeg::Layout;
using jpeg::Run;
using jpeg::ScanBlocks;
using jpeg::Segment;

// ---- Header (through libjpeg, so that its parsing and its checks apply) -------------------------

struct ErrorMgr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  bool warned = false;
};

void error_exit(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<ErrorMgr*>(cinfo->err)->jump, 1); }
void emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) reinterpret_cast<ErrorMgr*>(cinfo->err)->warned = true;
}

// Plain data copied out of libjpeg's header state (no destructors: filled inside a setjmp frame).
struct Header {
  const char* declined;
  int width, height, components;
  int h[3], v[3];
  int64_t mcus_per_row, mcu_rows;
  int64_t restart_interval;
  size_t entropy_offset;
  JHUFF_TBL dc[3], ac[3];
  uint16_t quant[3][64];
};

void describe(const jpeg_decompress_struct& c, std::span<const uint8_t> bytes, Header& h) {
  h.declined = nullptr;
  if (c.progressive_mode || c.arith_code || c.data_precision != 8 || c.CCIR601_sampling) {
    h.declined = "not baseline/extended sequential Huffman 8-bit";
    return;
  }
  const bool grey = c.num_components == 1 && c.jpeg_color_space == JCS_GRAYSCALE;
  const bool ycc = c.num_components == 3 && c.jpeg_color_space == JCS_YCbCr;
  if (!grey && !ycc) {
    h.declined = "colour space other than grey or YCbCr";
    return;
  }
  if (c.comps_in_scan != c.num_components || c.Ss != 0 || c.Se != 63 || c.Ah != 0 || c.Al != 0) {
    h.declined = "more than one scan";
    return;
  }
  h.width = static_cast<int>(c.image_width);
  h.height = static_cast<int>(c.image_height);
  h.components = c.num_components;
  for (int i = 0; i < c.num_components; ++i) {
    const jpeg_component_info* k = c.cur_comp_info[i];
    if (k != &c.comp_info[i]) {
      h.declined = "scan components out of frame order";
      return;
    }
    h.h[i] = k->h_samp_factor, h.v[i] = k->v_samp_factor;
    const JHUFF_TBL* dc = c.dc_huff_tbl_ptrs[k->dc_tbl_no];
    const JHUFF_TBL* ac = c.ac_huff_tbl_ptrs[k->ac_tbl_no];
    const JQUANT_TBL* q = c.quant_tbl_ptrs[k->quant_tbl_no];
    if (!dc || !ac || !q) {
      h.declined = "missing table";
      return;
    }
    h.dc[i] = *dc, h.ac[i] = *ac;
    std::memcpy(h.quant[i], q->quantval, sizeof h.quant[i]);
  }
  if (grey) {
    if (h.h[0] != 1 || h.v[0] != 1) h.declined = "grey with sampling factors";
    h.mcus_per_row = (h.width + 7) / 8, h.mcu_rows = (h.height + 7) / 8;
  } else {
    const bool chroma_1x1 = h.h[1] == 1 && h.v[1] == 1 && h.h[2] == 1 && h.v[2] == 1;
    const bool luma = (h.h[0] == 1 && h.v[0] == 1) || (h.h[0] == 2 && h.v[0] == 1) || (h.h[0] == 2 && h.v[0] == 2);
    if (!chroma_1x1 || !luma) h.declined = "sampling factors other than 4:4:4, 4:2:2, 4:2:0";
    // libjpeg upsamples with the "fancy" filters only when the chroma is wider than 2 samples.
    if (h.h[0] == 2 && (h.width + 1) / 2 <= 2) h.declined = "too narrow for fancy upsampling";
    h.mcus_per_row = (h.width + 8 * h.h[0] - 1) / (8 * h.h[0]);
    h.mcu_rows = (h.height + 8 * h.v[0] - 1) / (8 * h.v[0]);
  }
  h.restart_interval = c.restart_interval;
  h.entropy_offset = static_cast<size_t>(c.src->next_input_byte - bytes.data());
}

// Returns false after a libjpeg error. No objects with destructors live in this frame.
[[gnu::noinline]] bool read_header(jpeg_decompress_struct& c, ErrorMgr& err, std::span<const uint8_t> bytes, Header& h) {
  if (setjmp(err.jump)) return false;
  jpeg_mem_src(&c, bytes.data(), static_cast<unsigned long>(bytes.size()));
  if (jpeg_read_header(&c, TRUE) != JPEG_HEADER_OK) return false;
  describe(c, bytes, h);
  return true;
}

// ---- Scratch memory --------------------------------------------------------------------------

// Free scratch buffers by capacity. Bounded: beyond kMaxBytes, freed buffers go back to the system.
class ScratchCache {
 public:
  static ScratchCache& get() {
    static ScratchCache* cache = new ScratchCache;  // never destroyed: buffers may die at exit
    return *cache;
  }
  uint8_t* take(size_t& size) {
    {
      std::lock_guard lock(mutex_);
      // The smallest free buffer that fits, unless it is more than twice the request.
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size + (1 << 20)) {
        size = it->first;
        uint8_t* p = it->second;
        bytes_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    return allocate(size);
  }
  void give(uint8_t* p, size_t size) {
    {
      std::lock_guard lock(mutex_);
      if (bytes_ + size <= kMaxBytes) {
        free_.emplace(size, p);
        bytes_ += size;
        return;
      }
    }
    release(p, size);
  }

 private:
  static constexpr size_t kMaxBytes = size_t{256} << 20;
  static constexpr size_t kHuge = size_t{2} << 20;
  // Whole 2 MiB pages, marked for transparent huge pages: one page fault instead of 512.
  static uint8_t* allocate(size_t& size) {
    if (size < kHuge) return static_cast<uint8_t*>(::operator new(size));
    size = (size + kHuge - 1) / kHuge * kHuge;
    void* p = ::operator new(size, std::align_val_t{kHuge});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, size, MADV_HUGEPAGE);  // advice only: without THP these are ordinary pages
#endif
    return static_cast<uint8_t*>(p);
  }
  static void release(uint8_t* p, size_t size) {
    if (size < kHuge) ::operator delete(p);
    else ::operator delete(p, std::align_val_t{kHuge});
  }
  std::mutex mutex_;
  std::multimap<size_t, uint8_t*> free_;
  size_t bytes_ = 0;
};

}  // namespace

ScratchBuffer::ScratchBuffer(size_t bytes) : size_(bytes) { data_ = ScratchCache::get().take(size_); }
ScratchBuffer& ScratchBuffer::operator=(ScratchBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) ScratchCache::get().give(data_, size_);
    data_ = other.data_, size_ = other.size_;
    other.data_ = nullptr;
  }
  return *this;
}
ScratchBuffer::~ScratchBuffer() {
  if (data_) ScratchCache::get().give(data_, size_);
}

namespace {

// 3M blocks = 384 MB of coefficients: a 130-megapixel 4:2:0 photo (the default limits allow 100).
constexpr int64_t kMaxBlocks = int64_t{3} << 20;

// The header through libjpeg. Returns null, or why the file must go to libjpeg.
const char* read_jpeg_header(std::span<const uint8_t> bytes, Header& h) {
  jpeg_decompress_struct c;
  ErrorMgr err;
  c.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  err.mgr.emit_message = emit_message;
  jpeg_create_decompress(&c);
  const bool ok = read_header(c, err, bytes, h);
  jpeg_destroy_decompress(&c);
  if (!ok) return "libjpeg rejects the header";
  if (err.warned) return "libjpeg warned about the header";
  return h.declined;
}

// Huffman and quantization tables of each component, and the blocks of an MCU (L points into
// huffman: two tables a component, DC then AC). Returns null, or why the file must go to libjpeg.
const char* build_tables(const Header& h, Huffman (&huffman)[6], IdctTable (&quant)[3], Layout& L) {
  for (int i = 0; i < h.components; ++i) {
    if (!huffman[2 * i].build(h.dc[i].bits, h.dc[i].huffval, true) ||
        !huffman[2 * i + 1].build(h.ac[i].bits, h.ac[i].huffval, false)) {
      return "invalid Huffman table";
    }
    if (!quant[i].set(h.quant[i])) return "quantizer out of range";
  }
  for (int i = 0; i < h.components; ++i) {
    for (int by = 0; by < h.v[i]; ++by) {
      for (int bx = 0; bx < h.h[i]; ++bx) {
        L.comp[L.bpm] = static_cast<uint8_t>(i);
        L.bx[L.bpm] = static_cast<uint8_t>(bx), L.by[L.bpm] = static_cast<uint8_t>(by);
        L.dc[L.bpm] = &huffman[2 * i], L.ac[L.bpm] = &huffman[2 * i + 1];
        ++L.bpm;
      }
    }
  }
  L.mcus = h.mcus_per_row * h.mcu_rows;
  L.blocks = L.mcus * L.bpm;
  return nullptr;
}

// Component planes sized for every block of the scan (MCU padding included).
std::unique_ptr<JpegPlanes> make_planes(const Header& h) {
  auto img = std::make_unique<JpegPlanes>();
  img->width = h.width, img->height = h.height, img->components = h.components;
  if (h.components == 1) {
    img->layout = static_cast<int>(Chroma::kNone);
  } else {
    img->layout = static_cast<int>(h.h[0] == 1 ? Chroma::kH1 : h.v[0] == 1 ? Chroma::kH2V1 : Chroma::kH2V2);
  }
  for (int i = 0; i < h.components; ++i) {
    JpegPlanes::Plane& p = img->planes[i];
    p.stride = h.mcus_per_row * h.h[i] * 8;
    const int64_t rows = h.mcu_rows * h.v[i] * 8;
    p.width = (int64_t{h.width} * h.h[i] + h.h[0] - 1) / h.h[0];
    p.height = (int64_t{h.height} * h.v[i] + h.v[0] - 1) / h.v[0];
    // +64: the row kernels read up to 16 samples past a row's end.
    p.data = ScratchBuffer(static_cast<size_t>(p.stride * rows + 64));
    std::memset(p.data.data() + p.stride * rows, 0, 64);
  }
  return img;
}

// IDCT of every block into the component planes, MCU row by MCU row over the thread pool. False
// when a block is outside the range where libjpeg's C and SIMD IDCTs agree.
bool idct_blocks(const Header& h, const Layout& L, const std::vector<Run>& runs, const IdctTable (&quant)[3],
                 JpegPlanes& img) {
  std::atomic<bool> out_of_range{false};
  const int64_t mcu_row_blocks = h.mcus_per_row * L.bpm;
  base::ThreadPool::global().parallel_for(h.mcu_rows, [&](int64_t r0, int64_t r1) {
    bool ok = true;
    size_t k = 0;
    // Blocks go to the IDCT in pairs (two at once with AVX2).
    struct Pending {
      const int16_t* coef;
      int16_t dc;
      int c;
      uint8_t* out;
    } held{};
    bool holding = false;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t a = r * mcu_row_blocks;
      while (runs[k].start + runs[k].count <= a) ++k;
      for (int64_t m = 0; m < h.mcus_per_row; ++m) {
        for (int j = 0; j < L.bpm; ++j, ++a) {
          while (a >= runs[k].start + runs[k].count) ++k;
          const Run& run = runs[k];
          const int c = L.comp[j];
          JpegPlanes::Plane& p = img.planes[c];
          const Pending block{run.chunk->blocks.at(run.first + (a - run.start)), run.dc_add[c], c,
                              p.data.data() + ((r * h.v[c] + L.by[j]) * 8) * p.stride + (m * h.h[c] + L.bx[j]) * 8};
          if (!holding) {
            held = block, holding = true;
            continue;
          }
          ok &= jpeg::idct_islow2(held.coef, held.dc, quant[held.c], held.out, img.planes[held.c].stride, block.coef,
                                  block.dc, quant[c], block.out, p.stride);
          holding = false;
        }
      }
    }
    if (holding) ok &= jpeg::idct_islow(held.coef, held.dc, quant[held.c], held.out, img.planes[held.c].stride);
    if (!ok) out_of_range = true;
  }, 2);
  return !out_of_range;
}

}  // namespace

void JpegPlanes::rgb_rows(int64_t y0, int64_t y1, uint8_t* out) const {
  const auto kind = static_cast<Chroma>(layout);
  const Plane &luma = planes[0], &cb = planes[1], &cr = planes[2];
  thread_local std::vector<int16_t> sums;  // rows are often asked for one at a time
  int16_t *sb = nullptr, *sr = nullptr;
  if (kind == Chroma::kH2V1 || kind == Chroma::kH2V2) {
    const int64_t room = (cb.width + 15) / 16 * 16 + 40;
    if (sums.size() < static_cast<size_t>(2 * room)) sums.assign(static_cast<size_t>(2 * room), 0);
    sb = sums.data() + 1, sr = sums.data() + room + 1;
  }
  for (int64_t y = y0; y < y1; ++y) {
    uint8_t* dst = out + (y - y0) * width * 3;
    switch (kind) {
      case Chroma::kNone:
        jpeg::ycc_row(kind, luma.row(y), nullptr, nullptr, width, dst);
        break;
      case Chroma::kH1:
        jpeg::ycc_row(kind, luma.row(y), cb.row(y), cr.row(y), width, dst);
        break;
      case Chroma::kH2V1:
        jpeg::chroma_sums(cb.row(y), nullptr, cb.width, sb);
        jpeg::chroma_sums(cr.row(y), nullptr, cr.width, sr);
        jpeg::ycc_row(kind, luma.row(y), sb, sr, width, dst);
        break;
      case Chroma::kH2V2: {
        // Chroma row y/2, blended with the row above (even y) or below (odd y); rows outside the
        // image repeat the edge row, as libjpeg's context rows do.
        const int64_t near = y / 2, far = std::clamp<int64_t>(y % 2 == 0 ? near - 1 : near + 1, 0, cb.height - 1);
        jpeg::chroma_sums(cb.row(near), cb.row(far), cb.width, sb);
        jpeg::chroma_sums(cr.row(near), cr.row(far), cr.width, sr);
        jpeg::ycc_row(kind, luma.row(y), sb, sr, width, dst);
        break;
      }
    }
  }
}

std::unique_ptr<JpegPlanes> decode_jpeg_planes(std::span<const uint8_t> bytes, int chunks, JpegDecodeStats* stats_out) {
  JpegDecodeStats local;
  JpegDecodeStats& stats = stats_out ? *stats_out : local;
  stats = JpegDecodeStats{};
  auto decline = [&](const char* why) {
    stats.declined = why;
    return std::unique_ptr<JpegPlanes>();
  };
  Header h{};
  if (const char* why = read_jpeg_header(bytes, h)) return decline(why);
  Huffman huffman[6];
  IdctTable quant[3];
  Layout L;
  if (const char* why = build_tables(h, huffman, quant, L)) return decline(why);
  stats.blocks = L.blocks;
  // All coefficients are held at once (128 bytes a block); libjpeg streams the huge ones instead.
  if (L.blocks > kMaxBlocks) return decline("too large to hold all coefficients");

  Segment seg;
  const char* why = jpeg::unstuff(bytes.subspan(h.entropy_offset), h.restart_interval > 0, seg);
  if (why) return decline(why);
  // By default two chunks per thread (the pool hands them out as threads free up, which evens
  // out uneven chunks and busy cores), of at least 32 KiB: below that the resynchronisation costs
  // more than it saves. An explicit count is only limited to one byte per chunk.
  auto& pool = base::ThreadPool::global();
  const int64_t n = chunks > 0 ? std::clamp<int64_t>(seg.size, 1, chunks)
                               : std::clamp<int64_t>(seg.size / 32768, 1, 2 * pool.num_threads());
  ScanBlocks scan;
  why = jpeg::decode_scan(seg, L, h.restart_interval, static_cast<int>(n), scan, stats);
  if (why) return decline(why);
  seg.data = ScratchBuffer();

  std::unique_ptr<JpegPlanes> img = make_planes(h);
  if (!idct_blocks(h, L, scan.runs, quant, *img)) {
    return decline("coefficients outside the range where libjpeg's IDCTs agree");
  }
  return img;
}

std::optional<RgbImage> decode_jpeg_parallel(std::span<const uint8_t> bytes, int chunks, JpegDecodeStats* stats) {
  std::unique_ptr<JpegPlanes> planes = decode_jpeg_planes(bytes, chunks, stats);
  if (!planes) return std::nullopt;
  RgbImage image{planes->width, planes->height, std::vector<uint8_t>(static_cast<size_t>(planes->width * planes->height * 3))};
  base::ThreadPool::global().parallel_for(image.height, [&](int64_t y0, int64_t y1) {
    planes->rgb_rows(y0, y1, image.pixels.data() + y0 * image.width * 3);
  }, 16);
  return image;
}

}  // namespace pixtral::image::detail
