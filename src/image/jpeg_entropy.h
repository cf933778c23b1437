// Entropy decoding for the parallel JPEG decoder (jpeg_parallel.h): the scan's byte unstuffing,
// Huffman tables and decoding (libjpeg-turbo's jdhuff.c: jpeg_make_d_derived_tbl, jpeg_huff_decode,
// decode_mcu_slow, table-driven), and its split into chunks decoded over the thread pool -- whole
// restart intervals, or, without restart markers, speculative chunks that resynchronise with the
// previous one (Weissenberger & Schmidt, ICPP 2018), their DC values fixed up at the joints.
// Data libjpeg would warn about or reject is reported as a reason to decline, never decoded.
// ref: spec/inputs.md §5.1 step 1
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "image/jpeg_parallel.h"  // ScratchBuffer, JpegDecodeStats

namespace pixtral::image::detail::jpeg {

// ---- Entropy-coded segment ----------------------------------------------------------------------

constexpr size_t kPad = 1024;  // zero bytes after the data: a garbage block reads at most ~250 bytes on

// The scan's data with byte stuffing removed, and where each restart interval begins in it.
struct Segment {
  ScratchBuffer data;  // size data bytes, then kPad zeros
  std::vector<int64_t> restarts;
  int64_t size = 0;
};

// libjpeg's fill_bit_buffer rules: FF (FF...) 00 is one FF data byte; FF (FF...) xx is marker xx.
// The segment must end with EOI (or, with a restart interval, run through RST0..7 in sequence).
// Returns null, or why the file must go to libjpeg.
const char* unstuff(std::span<const uint8_t> raw, bool restarts, Segment& s);

// ---- Huffman tables and bit reader ------------------------------------------------------------

constexpr int kFastBits = 10;

struct Huffman {
  uint16_t fast[1 << kFastBits];     // codes of <= kFastBits bits: (length << 8) | symbol; 0: longer
  int32_t combined[1 << kFastBits];  // AC: value << 16 | run << 8 | code+magnitude length, when it fits
  int32_t maxcode[18];
  int32_t valoffset[18];
  uint8_t huffval[256];

  // jpeg_make_d_derived_tbl, with its checks (a table it rejects makes us decline). bits[l]: the
  // number of codes of length l (1..16); values: the symbols in code order. As in a DHT segment
  // (libjpeg's JHUFF_TBL).
  bool build(std::span<const uint8_t, 17> bits, std::span<const uint8_t, 256> values, bool dc);
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

// ---- Decoded blocks and chunks ----------------------------------------------------------------

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

// The blocks of one MCU, in scan order (filled from the frame header by the caller).
struct Layout {
  int bpm = 0;               // blocks per MCU
  uint8_t comp[10] = {};     // component of each block of an MCU
  uint8_t bx[10] = {}, by[10] = {};  // its block position inside the component's part of the MCU
  const Huffman* dc[10] = {};
  const Huffman* ac[10] = {};
  int64_t mcus = 0, blocks = 0;
};

// Block starts a chunk records for the previous chunk to synchronise with.
constexpr int64_t kRecords = 4096;
struct Record {
  uint64_t pos;
  int32_t blk;
  uint32_t pred[3];
};

// One chunk's decoder state and output. pred: DC predictors (wrapping like libjpeg's int,
// stored truncated to 16 bits).
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
};

// A run of blocks of the scan, in decoding order, held by one chunk.
struct Run {
  const Chunk* chunk;
  int64_t first;   // index in chunk->blocks
  int64_t start;   // index in the scan
  int64_t count;
  int16_t dc_add[3];  // DC correction (the chunk's predictors started from a guess)
};

// The decoded scan: the chunks, and the runs that cover blocks [0, Layout::blocks) in scan order.
// Runs point into chunks (moving this struct keeps them valid).
struct ScanBlocks {
  std::vector<Chunk> chunks;
  std::vector<Run> runs;
};

// Decodes the whole scan in `chunks` pieces over the global thread pool: whole restart intervals
// when restart_interval > 0 (in MCUs), else speculative chunks. Fills stats' chunk and
// resynchronisation fields. Returns null, or why the file must go to libjpeg.
const char* decode_scan(const Segment& seg, const Layout& L, int64_t restart_interval, int chunks, ScanBlocks& out,
                        JpegDecodeStats& stats);

}  // namespace pixtral::image::detail::jpeg
