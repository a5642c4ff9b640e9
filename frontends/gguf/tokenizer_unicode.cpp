#include "frontends/gguf/tokenizer_unicode.h"

#include <array>
#include <map>

#include "frontends/gguf/unicode_data.h"

namespace kiln::gguf::unicode {
namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr uint32_t kBlockBits = 8;
constexpr uint32_t kBlockSize = 1u << kBlockBits;
constexpr uint32_t kNumBlocks = (kMaxCodepoint + 1) >> kBlockBits;

// Two-level table built once from the generated ranges: block index per 256 codepoints, then
// the class bytes of each distinct block (about 300 of them, 80 KB in all).
struct Table {
  std::array<uint16_t, kNumBlocks> block_of{};
  std::vector<uint8_t> blocks;
};

Table build_table() {
  Table tab;
  {
    std::vector<uint8_t> flat(kMaxCodepoint + 1, kUndefined);
    for (size_t i = 0; i < kUnicodeRangeCount; ++i) {
      uint32_t first = kUnicodeRanges[i] >> 8;
      uint32_t end = i + 1 < kUnicodeRangeCount ? kUnicodeRanges[i + 1] >> 8 : kMaxCodepoint + 1;
      uint8_t v = uint8_t(kUnicodeRanges[i] & 0xFF);
      for (uint32_t cp = first; cp < end; ++cp) flat[cp] = v;
    }
    std::map<std::string, uint16_t> seen;
    for (uint32_t b = 0; b < kNumBlocks; ++b) {
      std::string block(reinterpret_cast<const char*>(flat.data()) + b * kBlockSize, kBlockSize);
      auto [it, fresh] = seen.emplace(block, uint16_t(seen.size()));
      if (fresh) tab.blocks.insert(tab.blocks.end(), block.begin(), block.end());
      tab.block_of[b] = it->second;
    }
  }
  return tab;
}

const Table& table() {
  static const Table t = build_table();
  return t;
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // codepoints 0..323 cover all 256 images
};

const ByteMap& byte_map() {
  static const ByteMap m = [] {
    ByteMap bm;
    bm.to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      uint32_t cp = printable(b) ? uint32_t(b) : next++;
      bm.to_cp[b] = cp;
      bm.to_byte[cp] = int16_t(b);
    }
    return bm;
  }();
  return m;
}

}  // namespace

uint8_t classify_slow(uint32_t cp) {
  if (cp > kMaxCodepoint) return kUndefined;
  const Table& t = table();
  return t.blocks[size_t(t.block_of[cp >> kBlockBits]) * kBlockSize + (cp & (kBlockSize - 1))];
}

bool decode_utf8(std::string_view s, std::vector<uint32_t>& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  out.reserve(out.size() + n);
  bool lossless = true;
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t need = c < 0xC0 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : c < 0xF8 ? 3 : 0;
    bool ok = need > 0 && i + need < n;
    for (size_t k = 1; ok && k <= need; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    uint32_t cp = 0;
    if (ok) {
      cp = c & (need == 1 ? 0x1F : need == 2 ? 0x0F : 0x07);
      for (size_t k = 1; k <= need; ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
      ok = cp <= kMaxCodepoint;
    }
    if (!ok) {
      out.push_back(0xFFFD);
      lossless = false;
      ++i;
      continue;
    }
    if (utf8_size(cp) != need + 1) lossless = false;  // overlong
    out.push_back(cp);
    i += need + 1;
  }
  return lossless;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | ((cp >> 18) & 0x07));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

int utf8_valid_prefix(std::string_view s) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (no overlongs, surrogates)
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k <= need; ++k) {
    if (size_t(k) >= s.size()) return -1;
    uint8_t b = p[k];
    if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return 0;
  }
  return need + 1;
}

uint32_t byte_to_codepoint(uint8_t b) {
  return byte_map().to_cp[b];
}

int codepoint_to_byte(uint32_t cp) {
  const ByteMap& m = byte_map();
  return cp < m.to_byte.size() ? m.to_byte[cp] : -1;
}

const char* version() {
  return kUnicodeVersion;
}

}  // namespace kiln::gguf::unicode
