// Parallel baseline-JPEG decoder: own Huffman decoding split over threads (restart intervals or
// speculative self-synchronising chunks), then IDCT / upsampling / colour over the thread pool.
// Every condition under which libjpeg-turbo would warn, fail, or compute differently makes it
// decline (nullptr); the caller then runs libjpeg. ref: spec/inputs.md §5.1 step 1
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
#include "image/jpeg_kernels.h"

namespace pixtral::image::detail {
namespace {

using jpeg::Chroma;

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

// ---- Entropy-coded segment ---------------------------------------------------------------------

constexpr size_t kPad = 1024;  // zero bytes after the data: a garbage block reads at most ~250 bytes on

// The scan's data with byte stuffing removed, and where each restart interval begins in it.
struct Segment {
  ScratchBuffer data;  // size data bytes, then kPad zeros
  std::vector<int64_t> restarts;
  int64_t size = 0;
};

// libjpeg's fill_bit_buffer rules: FF (FF...) 00 is one FF data byte; FF (FF...) xx is marker xx.
// The segment must end with EOI (or, with a restart interval, run through RST0..7 in sequence).
const char* unstuff(std::span<const uint8_t> raw, bool restarts, Segment& s) {
  s.data = ScratchBuffer(raw.size() + kPad);
  uint8_t* out = s.data.data();
  const uint8_t* p = raw.data();
  const uint8_t* const end = raw.data() + raw.size();
  int next_rst = 0;
  for (;;) {
    const uint8_t* ff = static_cast<const uint8_t*>(std::memchr(p, 0xFF, static_cast<size_t>(end - p)));
    if (!ff) return "no EOI marker after the scan";
    std::memcpy(out, p, static_cast<size_t>(ff - p));
    out += ff - p;
    p = ff + 1;
    while (p < end && *p == 0xFF) ++p;
    if (p == end) return "no EOI marker after the scan";
    const uint8_t m = *p++;
    if (m == 0x00) {
      *out++ = 0xFF;
    } else if (m >= 0xD0 && m <= 0xD7 && restarts) {
      if (m != 0xD0 + next_rst) return "restart markers out of sequence";
      next_rst = (next_rst + 1) & 7;
      s.restarts.push_back(out - s.data.data());
    } else if (m == 0xD9) {
      break;
    } else {
      return "marker inside or after the scan";
    }
  }
  s.size = out - s.data.data();
  std::memset(out, 0, kPad);
  return nullptr;
}

// ---- Huffman decoding ----------------------------------------------------------------------------

constexpr int kFastBits = 10;

// jpeg_natural_order plus 16 extra entries: a run past the block end writes coefficient 63,
// as libjpeg does with corrupt data.
constexpr uint8_t kNaturalOrder[80] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
    6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
    39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

inline int32_t extend(uint32_t v, int s) {  // HUFF_EXTEND
  return v < (1u << (s - 1)) ? static_cast<int32_t>(v) - (1 << s) + 1 : static_cast<int32_t>(v);
}

struct Huffman {
  uint16_t fast[1 << kFastBits];     // codes of <= kFastBits bits: (length << 8) | symbol; 0: longer
  int32_t combined[1 << kFastBits];  // AC: value << 16 | run << 8 | code+magnitude length, when it fits
  int32_t maxcode[18];
  int32_t valoffset[18];
  uint8_t huffval[256];

  // jpeg_make_d_derived_tbl, with its checks (a table it rejects makes us decline).
  bool build(const JHUFF_TBL& t, bool dc) {
    int size[257], code[257], p = 0;
    for (int l = 1; l <= 16; ++l) {
      const int n = t.bits[l];
      if (p + n > 256) return false;
      for (int i = 0; i < n; ++i) size[p++] = l;
    }
    size[p] = 0;
    const int symbols = p;
    int c = 0, si = size[0];
    p = 0;
    while (size[p]) {
      while (size[p] == si) code[p++] = c++;
      if (c >= (1 << si)) return false;
      c <<= 1, ++si;
    }
    p = 0;
    for (int l = 1; l <= 16; ++l) {
      if (t.bits[l]) {
        valoffset[l] = p - code[p];
        p += t.bits[l];
        maxcode[l] = code[p - 1];
      } else {
        maxcode[l] = -1;
      }
    }
    maxcode[17] = 0xFFFFF;
    std::memcpy(huffval, t.huffval, sizeof huffval);
    for (int i = 0; dc && i < symbols; ++i) {
      if (huffval[i] > 15) return false;
    }
    std::memset(fast, 0, sizeof fast);
    std::memset(combined, 0, sizeof combined);
    for (int i = 0; i < symbols; ++i) {
      const int l = size[i];
      if (l > kFastBits) continue;
      const int first = code[i] << (kFastBits - l);
      for (int j = 0; j < 1 << (kFastBits - l); ++j) {
        const int index = first + j;
        fast[index] = static_cast<uint16_t>((l << 8) | huffval[i]);
        const int run = huffval[i] >> 4, s = huffval[i] & 15;
        if (!dc && s != 0 && l + s <= kFastBits) {
          const uint32_t v = (static_cast<uint32_t>(index) >> (kFastBits - l - s)) & ((1u << s) - 1);
          combined[index] = static_cast<int32_t>((static_cast<uint32_t>(extend(v, s)) << 16) |
                                                 static_cast<uint32_t>(run << 8) | static_cast<uint32_t>(l + s));
        }
      }
    }
    return true;
  }
};

// MSB-first bit reader over the unstuffed data (refill: F. Giesen's "variant 4").
struct BitReader {
  const uint8_t* base = nullptr;
  const uint8_t* p = nullptr;
  uint64_t buf = 0;
  int cnt = 0;

  void seek(const uint8_t* data, int64_t byte) {
    base = data, p = data + byte, buf = 0, cnt = 0;
    refill();
  }
  uint64_t pos() const { return static_cast<uint64_t>(p - base) * 8 - static_cast<uint64_t>(cnt); }
  void refill() {
    uint64_t w;
    std::memcpy(&w, p, 8);
    buf |= __builtin_bswap64(w) >> cnt;
    p += (63 - cnt) >> 3;
    cnt |= 56;
  }
  uint32_t peek(int n) const { return static_cast<uint32_t>(buf >> (64 - n)); }
  void consume(int n) { buf <<= n, cnt -= n; }
};

// Codes longer than kFastBits (jpeg_huff_decode). False for an invalid code.
[[gnu::noinline]] bool slow_symbol(uint32_t bits, const Huffman& h, int& len, int& sym) {  // bits: next 16
  for (int l = kFastBits + 1; l <= 16; ++l) {
    const int32_t code = static_cast<int32_t>(bits >> (16 - l));
    if (code <= h.maxcode[l]) {
      len = l;
      sym = h.huffval[(code + h.valoffset[l]) & 0xFF];
      return true;
    }
  }
  return false;
}

// One block (decode_mcu_slow's per-block loop). pred: the component's DC predictor (wrapping
// like libjpeg's int, stored truncated to 16 bits). False after an invalid code, which ends the
// block after skipping 16 bits (garbage either way: a chunk's speculative start, or corrupt data).
[[gnu::always_inline]] inline bool decode_block(BitReader& reader, const Huffman& dc, const Huffman& ac, uint32_t& pred,
                                                int16_t* block) {
  BitReader br = reader;  // a local copy stays in registers
  br.refill();
  int len, s;
  uint32_t e = dc.fast[br.peek(kFastBits)];
  if (e) [[likely]] {
    len = static_cast<int>(e >> 8), s = static_cast<int>(e & 0xFF);
  } else if (!slow_symbol(br.peek(16), dc, len, s)) {
    br.consume(16);
    reader = br;
    return false;
  }
  br.consume(len);
  if (s) {
    const uint32_t v = br.peek(s);
    br.consume(s);
    pred += static_cast<uint32_t>(extend(v, s));
  }
  block[0] = static_cast<int16_t>(pred);
  for (int k = 1; k < 64;) {
    if (br.cnt < 32) br.refill();  // a symbol takes at most 16 + 15 bits
    const uint32_t look = br.peek(kFastBits);
    const int32_t c = ac.combined[look];
    if (c) [[likely]] {
      k += (c >> 8) & 15;
      block[kNaturalOrder[k]] = static_cast<int16_t>(c >> 16);
      ++k;
      br.consume(c & 31);
      continue;
    }
    e = ac.fast[look];
    int sym;
    if (e) [[likely]] {
      len = static_cast<int>(e >> 8), sym = static_cast<int>(e & 0xFF);
    } else if (!slow_symbol(br.peek(16), ac, len, sym)) {
      br.consume(16);
      reader = br;
      return false;
    }
    br.consume(len);
    const int r = sym >> 4;
    s = sym & 15;
    if (s) {
      k += r;
      const uint32_t v = br.peek(s);
      br.consume(s);
      block[kNaturalOrder[k]] = static_cast<int16_t>(extend(v, s));
      ++k;
    } else if (r == 15) {
      k += 16;
    } else {
      break;
    }
  }
  reader = br;
  return true;
}

// Decoded blocks of one chunk in decoding order, in slabs (no copying as it grows).
class BlockStore {
 public:
  static constexpr int kSlabShift = 14, kSlab = 1 << kSlabShift;
  int64_t size() const { return size_; }
  int16_t* append() {
    if ((size_ & (kSlab - 1)) == 0 && static_cast<int64_t>(slabs_.size()) * kSlab == size_) {
      slabs_.emplace_back(size_t{kSlab} * 64 * sizeof(int16_t));
    }
    int16_t* b = at(size_++);
    std::memset(b, 0, 64 * sizeof(int16_t));
    return b;
  }
  int16_t* at(int64_t i) const {
    return reinterpret_cast<int16_t*>(slabs_[i >> kSlabShift].data()) + (i & (kSlab - 1)) * 64;
  }
  void clear() { slabs_.clear(), size_ = 0; }

 private:
  std::vector<ScratchBuffer> slabs_;
  int64_t size_ = 0;
};

struct Layout {
  int bpm = 0;               // blocks per MCU
  uint8_t comp[10] = {};     // component of each block of an MCU
  uint8_t bx[10] = {}, by[10] = {};  // its block position inside the component's part of the MCU
  const Huffman* dc[10] = {};
  const Huffman* ac[10] = {};
  int64_t mcus = 0, blocks = 0;
};

// 3M blocks = 384 MB of coefficients: a 130-megapixel 4:2:0 photo (the default limits allow 100).
constexpr int64_t kMaxBlocks = int64_t{3} << 20;

// Block starts a chunk records for the previous chunk to synchronise with.
constexpr int64_t kRecords = 4096;
struct Record {
  uint64_t pos;
  int32_t blk;
  uint32_t pred[3];
};

struct Chunk {
  BitReader br;
  uint32_t pred[3] = {};
  int blk = 0;  // position of the next block in its MCU
  BlockStore blocks;
  std::vector<Record> records;
  std::vector<int64_t> anomalies;  // blocks decoded from an invalid code or past the data end
  // Synchronisation found by the previous-chunk pass: chunk `sync_chunk` is valid from its
  // record `sync_record` on, which is where this chunk's block `sync_blocks` would start.
  int sync_chunk = -1;
  int64_t sync_record = 0, sync_blocks = 0;
  uint32_t sync_pred[3] = {};

  void decode(const Layout& L, uint64_t end_bits) {
    const int64_t index = blocks.size();
    int16_t* out = blocks.append();
    const int b = blk;
    if (!decode_block(br, *L.dc[b], *L.ac[b], pred[L.comp[b]], out)) anomalies.push_back(index);
    if (br.pos() > end_bits) anomalies.push_back(index);  // libjpeg would feed zeros and warn
    blk = b + 1 == L.bpm ? 0 : b + 1;
  }
};

// A run of blocks of the scan, in decoding order, held by one chunk.
struct Run {
  const Chunk* chunk;
  int64_t first;   // index in chunk->blocks
  int64_t start;   // index in the scan
  int64_t count;
  int16_t dc_add[3];  // DC correction (the chunk's predictors started from a guess)
};

bool no_anomaly_in(const Chunk& c, int64_t first, int64_t count) {
  for (int64_t a : c.anomalies) {
    if (a >= first && a < first + count) return false;
  }
  return true;
}

// Speculative chunks without restart markers. Returns the runs covering the scan, or a reason.
const char* decode_speculative(const Segment& seg, const Layout& L, int n, std::vector<Chunk>& chunks,
                               std::vector<Run>& runs, JpegDecodeStats& stats) {
  const uint64_t end_bits = static_cast<uint64_t>(seg.size) * 8;
  std::vector<uint64_t> bounds(static_cast<size_t>(n) + 1);
  for (int t = 0; t <= n; ++t) bounds[t] = static_cast<uint64_t>(seg.size * t / n) * 8;
  const int64_t cap = L.blocks + kRecords;  // no owner ever needs more
  auto& pool = base::ThreadPool::global();
  // Pass 1: each chunk decodes from its first bit (assumed to start a first block of an MCU) to
  // its end, recording its first block starts.
  pool.parallel_for(n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      Chunk& ch = chunks[t];
      ch.br.seek(seg.data.data(), static_cast<int64_t>(bounds[t] / 8));
      const uint64_t stop = bounds[t + 1];
      for (;;) {
        const uint64_t pos = ch.br.pos();
        if (pos >= stop || ch.blocks.size() >= cap) break;
        if (t > 0 && ch.blocks.size() < kRecords) {
          ch.records.push_back({pos, ch.blk, {ch.pred[0], ch.pred[1], ch.pred[2]}});
        }
        ch.decode(L, end_bits);
      }
    }
  }, 1);
  // Pass 2: each chunk decodes on into the next ones until it reaches a recorded block start
  // of a later chunk in the same state; from there on that chunk's blocks are the true ones.
  pool.parallel_for(n - 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      Chunk& ch = chunks[t];
      int target = static_cast<int>(t) + 1;
      size_t j = 0;
      for (;;) {
        const uint64_t pos = ch.br.pos();
        while (target < n && pos >= bounds[target + 1]) ++target, j = 0;
        if (target >= n || ch.blocks.size() >= cap) break;
        const std::vector<Record>& rec = chunks[target].records;
        while (j < rec.size() && rec[j].pos < pos) ++j;
        if (j < rec.size() && rec[j].pos == pos && rec[j].blk == ch.blk) {
          ch.sync_chunk = target;
          ch.sync_record = static_cast<int64_t>(j);
          ch.sync_blocks = ch.blocks.size();
          std::copy(ch.pred, ch.pred + 3, ch.sync_pred);
          break;
        }
        ch.decode(L, end_bits);
      }
    }
  }, 1);
  // Follow the chain of owners from chunk 0.
  int owner = 0;
  int64_t first = 0, start = 0;
  uint32_t add[3] = {0, 0, 0};
  for (;;) {
    const Chunk& ch = chunks[owner];
    const int64_t end = ch.sync_chunk >= 0 ? ch.sync_blocks : ch.blocks.size();
    const int64_t count = std::min(end - first, L.blocks - start);
    if (count < 0) return "chunk chain broken";
    if (!no_anomaly_in(ch, first, count)) return "corrupt entropy-coded data";
    runs.push_back({&ch, first, start, count,
                    {static_cast<int16_t>(add[0]), static_cast<int16_t>(add[1]), static_cast<int16_t>(add[2])}});
    start += count;
    if (start == L.blocks) break;
    if (ch.sync_chunk < 0) return "entropy-coded data ends early";
    const Chunk& next = chunks[ch.sync_chunk];
    const Record& r = next.records[ch.sync_record];
    for (int c = 0; c < 3; ++c) add[c] = ch.sync_pred[c] + add[c] - r.pred[c];
    stats.resync_blocks += ch.sync_record;
    stats.skipped_chunks += ch.sync_chunk - owner - 1;
    first = ch.sync_record;
    owner = ch.sync_chunk;
  }
  return nullptr;
}

// Restart intervals: each chunk decodes whole intervals, predictors reset at each.
const char* decode_restarts(const Segment& seg, const Layout& L, int64_t interval, int n, std::vector<Chunk>& chunks,
                            std::vector<Run>& runs) {
  const int64_t intervals = (L.mcus + interval - 1) / interval;
  if (static_cast<int64_t>(seg.restarts.size()) != intervals - 1) return "restart marker count";
  n = static_cast<int>(std::min<int64_t>(n, intervals));
  chunks.resize(static_cast<size_t>(n));
  std::atomic<bool> bad{false};
  base::ThreadPool::global().parallel_for(n, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      Chunk& ch = chunks[t];
      for (int64_t i = intervals * t / n; i < intervals * (t + 1) / n; ++i) {
        const int64_t begin = i == 0 ? 0 : seg.restarts[i - 1];
        const int64_t end = i + 1 < intervals ? seg.restarts[i] : seg.size;
        ch.br.seek(seg.data.data(), begin);
        std::fill(ch.pred, ch.pred + 3, 0u);
        ch.blk = 0;
        const int64_t blocks = std::min(interval, L.mcus - i * interval) * L.bpm;
        for (int64_t b = 0; b < blocks; ++b) ch.decode(L, static_cast<uint64_t>(end) * 8);
      }
      if (!ch.anomalies.empty()) bad = true;
    }
  }, 1);
  if (bad) return "corrupt entropy-coded data";
  int64_t start = 0;
  for (int t = 0; t < n; ++t) {
    runs.push_back({&chunks[t], 0, start, chunks[t].blocks.size(), {0, 0, 0}});
    start += chunks[t].blocks.size();
  }
  return start == L.blocks ? nullptr : "restart interval block count";
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
  {
    jpeg_decompress_struct c;
    ErrorMgr err;
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = error_exit;
    err.mgr.emit_message = emit_message;
    jpeg_create_decompress(&c);
    const bool ok = read_header(c, err, bytes, h);
    jpeg_destroy_decompress(&c);
    if (!ok) return decline("libjpeg rejects the header");
    if (err.warned) return decline("libjpeg warned about the header");
    if (h.declined) return decline(h.declined);
  }
  const int ncomp = h.components;
  Huffman tables[6];
  jpeg::IdctTable quant[3];
  for (int i = 0; i < ncomp; ++i) {
    if (!tables[2 * i].build(h.dc[i], true) || !tables[2 * i + 1].build(h.ac[i], false)) {
      return decline("invalid Huffman table");
    }
    if (!quant[i].set(h.quant[i])) return decline("quantizer out of range");
  }
  Layout L;
  for (int i = 0; i < ncomp; ++i) {
    for (int by = 0; by < h.v[i]; ++by) {
      for (int bx = 0; bx < h.h[i]; ++bx) {
        L.comp[L.bpm] = static_cast<uint8_t>(i);
        L.bx[L.bpm] = static_cast<uint8_t>(bx), L.by[L.bpm] = static_cast<uint8_t>(by);
        L.dc[L.bpm] = &tables[2 * i], L.ac[L.bpm] = &tables[2 * i + 1];
        ++L.bpm;
      }
    }
  }
  L.mcus = h.mcus_per_row * h.mcu_rows;
  L.blocks = L.mcus * L.bpm;
  stats.blocks = L.blocks;
  // All coefficients are held at once (128 bytes a block); libjpeg streams the huge ones instead.
  if (L.blocks > kMaxBlocks) return decline("too large to hold all coefficients");

  Segment seg;
  if (const char* why = unstuff(bytes.subspan(h.entropy_offset), h.restart_interval > 0, seg)) return decline(why);

  auto& pool = base::ThreadPool::global();
  // By default two chunks per thread (the pool hands them out as threads free up, which evens
  // out uneven chunks and busy cores), of at least 32 KiB: below that the resynchronisation costs
  // more than it saves. An explicit count is only limited to one byte per chunk.
  const int64_t n = chunks > 0 ? std::clamp<int64_t>(seg.size, 1, chunks)
                               : std::clamp<int64_t>(seg.size / 32768, 1, 2 * pool.num_threads());
  std::vector<Chunk> parts;
  std::vector<Run> runs;
  if (h.restart_interval > 0) {
    stats.restart_markers = true;
    if (const char* why = decode_restarts(seg, L, h.restart_interval, static_cast<int>(n), parts, runs)) return decline(why);
  } else {
    parts.resize(static_cast<size_t>(n));
    if (const char* why = decode_speculative(seg, L, static_cast<int>(n), parts, runs, stats)) return decline(why);
  }
  stats.chunks = static_cast<int>(parts.size());
  seg.data = ScratchBuffer();

  // IDCT of every block into the component planes (MCU padding included), MCU row by MCU row.
  auto img = std::make_unique<JpegPlanes>();
  img->width = h.width, img->height = h.height, img->components = ncomp;
  if (ncomp == 1) {
    img->layout = static_cast<int>(Chroma::kNone);
  } else {
    img->layout = static_cast<int>(h.h[0] == 1 ? Chroma::kH1 : h.v[0] == 1 ? Chroma::kH2V1 : Chroma::kH2V2);
  }
  for (int i = 0; i < ncomp; ++i) {
    JpegPlanes::Plane& p = img->planes[i];
    p.stride = h.mcus_per_row * h.h[i] * 8;
    const int64_t rows = h.mcu_rows * h.v[i] * 8;
    p.width = (int64_t{h.width} * h.h[i] + h.h[0] - 1) / h.h[0];
    p.height = (int64_t{h.height} * h.v[i] + h.v[0] - 1) / h.v[0];
    // +64: the row kernels read up to 16 samples past a row's end.
    p.data = ScratchBuffer(static_cast<size_t>(p.stride * rows + 64));
    std::memset(p.data.data() + p.stride * rows, 0, 64);
  }
  std::atomic<bool> out_of_range{false};
  const int64_t mcu_row_blocks = h.mcus_per_row * L.bpm;
  pool.parallel_for(h.mcu_rows, [&](int64_t r0, int64_t r1) {
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
          JpegPlanes::Plane& p = img->planes[c];
          const Pending block{run.chunk->blocks.at(run.first + (a - run.start)), run.dc_add[c], c,
                              p.data.data() + ((r * h.v[c] + L.by[j]) * 8) * p.stride + (m * h.h[c] + L.bx[j]) * 8};
          if (!holding) {
            held = block, holding = true;
            continue;
          }
          ok &= jpeg::idct_islow2(held.coef, held.dc, quant[held.c], held.out, img->planes[held.c].stride, block.coef,
                                  block.dc, quant[c], block.out, p.stride);
          holding = false;
        }
      }
    }
    if (holding) ok &= jpeg::idct_islow(held.coef, held.dc, quant[held.c], held.out, img->planes[held.c].stride);
    if (!ok) out_of_range = true;
  }, 2);
  if (out_of_range) return decline("coefficients outside the range where libjpeg's IDCTs agree");
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
