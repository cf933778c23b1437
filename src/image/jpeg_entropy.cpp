// Entropy decoding of a baseline JPEG scan, split into chunks over the thread pool (jpeg_entropy.h).
// decode_block is the hot loop: it and everything it calls stay in this file, inlined.
// ref: spec/inputs.md §5.1 step 1
#include "image/jpeg_entropy.h"

#include <algorithm>
#include <atomic>

#include "base/thread_pool.h"

namespace pixtral::image::detail::jpeg {

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

namespace {

// jpeg_natural_order plus 16 extra entries: a run past the block end writes coefficient 63,
// as libjpeg does with corrupt data.
constexpr uint8_t kNaturalOrder[80] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13,
    6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
    39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

inline int32_t extend(uint32_t v, int s) {  // HUFF_EXTEND
  return v < (1u << (s - 1)) ? static_cast<int32_t>(v) - (1 << s) + 1 : static_cast<int32_t>(v);
}

}  // namespace

bool Huffman::build(std::span<const uint8_t, 17> bits, std::span<const uint8_t, 256> values, bool dc) {
  int size[257], code[257], p = 0;
  for (int l = 1; l <= 16; ++l) {
    const int n = bits[l];
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
    if (bits[l]) {
      valoffset[l] = p - code[p];
      p += bits[l];
      maxcode[l] = code[p - 1];
    } else {
      maxcode[l] = -1;
    }
  }
  maxcode[17] = 0xFFFFF;
  std::memcpy(huffval, values.data(), sizeof huffval);
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

namespace {

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

// Decodes the chunk's next block (in its MCU position) and notes it when it is garbage.
inline void decode_next(Chunk& ch, const Layout& L, uint64_t end_bits) {
  const int64_t index = ch.blocks.size();
  int16_t* out = ch.blocks.append();
  const int b = ch.blk;
  if (!decode_block(ch.br, *L.dc[b], *L.ac[b], ch.pred[L.comp[b]], out)) ch.anomalies.push_back(index);
  if (ch.br.pos() > end_bits) ch.anomalies.push_back(index);  // libjpeg would feed zeros and warn
  ch.blk = b + 1 == L.bpm ? 0 : b + 1;
}

bool no_anomaly_in(const Chunk& c, int64_t first, int64_t count) {
  for (int64_t a : c.anomalies) {
    if (a >= first && a < first + count) return false;
  }
  return true;
}

// Blocks a speculative chunk decodes at most: no owner ever needs more.
int64_t block_cap(const Layout& L) { return L.blocks + kRecords; }

// Pass 1: each chunk decodes from its first bit (assumed to start a first block of an MCU) to
// its end, recording its first block starts. bounds: chunk t is bits [bounds[t], bounds[t + 1]).
void decode_from_guess(const Segment& seg, const Layout& L, std::span<const uint64_t> bounds,
                       std::vector<Chunk>& chunks) {
  const uint64_t end_bits = static_cast<uint64_t>(seg.size) * 8;
  const int64_t cap = block_cap(L);
  base::ThreadPool::global().parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t t0, int64_t t1) {
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
        decode_next(ch, L, end_bits);
      }
    }
  }, 1);
}

// Pass 2: each chunk decodes on into the next ones until it reaches a recorded block start
// of a later chunk in the same state; from there on that chunk's blocks are the true ones.
void synchronise(const Segment& seg, const Layout& L, std::span<const uint64_t> bounds, std::vector<Chunk>& chunks) {
  const uint64_t end_bits = static_cast<uint64_t>(seg.size) * 8;
  const int64_t cap = block_cap(L);
  const int n = static_cast<int>(chunks.size());
  base::ThreadPool::global().parallel_for(n - 1, [&](int64_t t0, int64_t t1) {
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
        decode_next(ch, L, end_bits);
      }
    }
  }, 1);
}

// Follows the chain of owners from chunk 0: each owner's blocks up to where it synchronised,
// with the DC predictor difference at each joint carried on (libjpeg's 16-bit wraparound).
const char* chain_runs(const Layout& L, const std::vector<Chunk>& chunks, std::vector<Run>& runs,
                       JpegDecodeStats& stats) {
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

// Speculative chunks without restart markers. Returns the runs covering the scan, or a reason.
const char* decode_speculative(const Segment& seg, const Layout& L, int n, ScanBlocks& out, JpegDecodeStats& stats) {
  std::vector<uint64_t> bounds(static_cast<size_t>(n) + 1);
  for (int t = 0; t <= n; ++t) bounds[t] = static_cast<uint64_t>(seg.size * t / n) * 8;
  out.chunks.resize(static_cast<size_t>(n));
  decode_from_guess(seg, L, bounds, out.chunks);
  synchronise(seg, L, bounds, out.chunks);
  return chain_runs(L, out.chunks, out.runs, stats);
}

// Restart intervals: each chunk decodes whole intervals, predictors reset at each.
const char* decode_restarts(const Segment& seg, const Layout& L, int64_t interval, int n, ScanBlocks& out) {
  const int64_t intervals = (L.mcus + interval - 1) / interval;
  if (static_cast<int64_t>(seg.restarts.size()) != intervals - 1) return "restart marker count";
  n = static_cast<int>(std::min<int64_t>(n, intervals));
  std::vector<Chunk>& chunks = out.chunks;
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
        for (int64_t b = 0; b < blocks; ++b) decode_next(ch, L, static_cast<uint64_t>(end) * 8);
      }
      if (!ch.anomalies.empty()) bad = true;
    }
  }, 1);
  if (bad) return "corrupt entropy-coded data";
  int64_t start = 0;
  for (int t = 0; t < n; ++t) {
    out.runs.push_back({&chunks[t], 0, start, chunks[t].blocks.size(), {0, 0, 0}});
    start += chunks[t].blocks.size();
  }
  return start == L.blocks ? nullptr : "restart interval block count";
}

}  // namespace

const char* decode_scan(const Segment& seg, const Layout& L, int64_t restart_interval, int chunks, ScanBlocks& out,
                        JpegDecodeStats& stats) {
  if (restart_interval > 0) {
    stats.restart_markers = true;
    if (const char* why = decode_restarts(seg, L, restart_interval, chunks, out)) return why;
  } else {
    if (const char* why = decode_speculative(seg, L, chunks, out, stats)) return why;
  }
  stats.chunks = static_cast<int>(out.chunks.size());
  return nullptr;
}

}  // namespace pixtral::image::detail::jpeg
