// CRC32C (Castagnoli), our own code: slicing-by-8 in software, the SSE4.2 crc32 instruction in
// three interleaved streams where the CPU has it, and a multi-threaded checker for the sections
// of an artifact (docs/artifact.md, "Checksums").
//
// The three streams and the threads each checksum a piece of the data from a zero register and
// are then combined: the CRC register is linear over GF(2), so the register after A‖B is the
// register after A advanced over |B| zero bytes, xor the register of B alone. Advancing over a
// fixed number of zero bytes is itself a linear map of the 32-bit register, applied with four
// 256-entry tables (ShiftOp).
#include "runtime/crc32c.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

namespace kiln::artifact {
namespace {

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian on every target kiln supports
  return v;
}

struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};
const CrcTables& crc_tables() {
  static const CrcTables tables;
  return tables;
}

// The raw register update (no pre- or post-inversion), slicing-by-8: ~1-2 GB/s, for hosts
// without SSE4.2 and for AArch64 builds.
uint32_t update_soft(uint32_t crc, const uint8_t* p, size_t n) {
  const CrcTables& T = crc_tables();
  while (n >= 8) {
    uint64_t v = load64(p) ^ crc;
    crc = T.t[7][v & 0xff] ^ T.t[6][(v >> 8) & 0xff] ^ T.t[5][(v >> 16) & 0xff] ^
          T.t[4][(v >> 24) & 0xff] ^ T.t[3][(v >> 32) & 0xff] ^ T.t[2][(v >> 40) & 0xff] ^
          T.t[1][(v >> 48) & 0xff] ^ T.t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ T.t[0][(crc ^ *p++) & 0xff];
  return crc;
}

// A linear map of the register: advancing it over a fixed number of zero bytes.
struct ShiftOp {
  uint32_t t[4][256];
  uint32_t operator()(uint32_t s) const {
    return t[0][s & 0xff] ^ t[1][(s >> 8) & 0xff] ^ t[2][(s >> 16) & 0xff] ^ t[3][s >> 24];
  }
  // From the map's values on the 32 unit vectors.
  template <typename F>
  static ShiftOp of(F f) {
    ShiftOp op;
    uint32_t unit[32];
    for (int b = 0; b < 32; ++b) unit[b] = f(uint32_t(1) << b);
    for (int k = 0; k < 4; ++k)
      for (uint32_t v = 0; v < 256; ++v) {
        uint32_t r = 0;
        for (int b = 0; b < 8; ++b)
          if (v >> b & 1) r ^= unit[8 * k + b];
        op.t[k][v] = r;
      }
    return op;
  }
};

// One stream's length in the interleaved loop, and the threads' chunk (a multiple of it).
constexpr size_t kStream = 4096;
constexpr size_t kChunk = size_t(4) << 20;

const ShiftOp& shift_stream() {
  static const ShiftOp op = ShiftOp::of([](uint32_t s) {
    static const uint8_t zeros[kStream] = {};
    return update_soft(s, zeros, kStream);
  });
  return op;
}
const ShiftOp& shift_chunk() {
  static const ShiftOp op = ShiftOp::of([](uint32_t s) {
    for (size_t i = 0; i < kChunk / kStream; ++i) s = shift_stream()(s);
    return s;
  });
  return op;
}

#if defined(__x86_64__)
// The crc32 instruction has a latency of 3 cycles and a throughput of 1: three independent
// streams of kStream bytes keep it busy (~3x one stream), then are combined.
__attribute__((target("sse4.2"))) uint32_t update_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  if (n >= 3 * kStream) {
    const ShiftOp& shift = shift_stream();
    while (n >= 3 * kStream) {
      uint64_t b = 0, d = 0;
      for (size_t i = 0; i < kStream; i += 8) {
        c = __builtin_ia32_crc32di(c, load64(p + i));
        b = __builtin_ia32_crc32di(b, load64(p + kStream + i));
        d = __builtin_ia32_crc32di(d, load64(p + 2 * kStream + i));
      }
      c = shift(shift(uint32_t(c)) ^ uint32_t(b)) ^ uint32_t(d);
      p += 3 * kStream;
      n -= 3 * kStream;
    }
  }
  while (n >= 8) {
    c = __builtin_ia32_crc32di(c, load64(p));
    p += 8;
    n -= 8;
  }
  uint32_t c32 = uint32_t(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
bool has_sse42() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}
#endif

uint32_t update(uint32_t crc, const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  if (has_sse42()) return update_hw(crc, p, n);
#endif
  return update_soft(crc, p, n);
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc) {
  return ~update(~crc, bytes.data(), bytes.size());
}

std::vector<uint32_t> crc32c_ranges(std::span<const std::span<const uint8_t>> ranges, int threads,
                                    const ChunkDone& done) {
  // Chunks of kChunk bytes; a range's first chunk takes the remainder, so that combining always
  // advances by exactly kChunk.
  struct Chunk {
    size_t range;
    std::span<const uint8_t> bytes;
    uint32_t reg = 0;
  };
  std::vector<Chunk> chunks;
  std::vector<size_t> first(ranges.size());
  for (size_t r = 0; r < ranges.size(); ++r) {
    first[r] = chunks.size();
    const std::span<const uint8_t> b = ranges[r];
    size_t at = 0, len = b.size() % kChunk;
    if (len == 0) len = std::min(b.size(), kChunk);
    do {
      chunks.push_back(Chunk{r, b.subspan(at, len)});
      at += len;
      len = kChunk;
    } while (at < b.size());
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < chunks.size();) {
      Chunk& c = chunks[i];
      c.reg = update(i == first[c.range] ? ~0u : 0u, c.bytes.data(), c.bytes.size());
      if (done) done(c.range, c.bytes);
    }
  };
  size_t total = 0;
  for (const auto& r : ranges) total += r.size();
  // Threads only pay off for tens of megabytes (a weights section), not for a fuzzer's input.
  const int n = total < 4 * kChunk ? 1 : std::max(1, std::min<int>(threads, int(chunks.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();

  std::vector<uint32_t> out(ranges.size());
  for (size_t r = 0; r < ranges.size(); ++r) {
    const size_t end = r + 1 < ranges.size() ? first[r + 1] : chunks.size();
    uint32_t reg = chunks[first[r]].reg;
    for (size_t i = first[r] + 1; i < end; ++i) reg = shift_chunk()(reg) ^ chunks[i].reg;
    out[r] = ~reg;
  }
  return out;
}

}  // namespace kiln::artifact
