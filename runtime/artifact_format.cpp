#include "runtime/artifact_format.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <thread>

namespace kiln::artifact {
namespace {

// Prefix field offsets (docs/artifact.md).
constexpr size_t kOffVersion = 8, kOffFlags = 12, kOffHeaderOffset = 16, kOffHeaderBytes = 24,
                 kOffTableOffset = 32, kOffNumSections = 40, kOffHeadCrc = 44;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // little-endian on every target kiln supports
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// In bounds without overflow: [off, off + len) inside [0, size).
bool in_bounds(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

// ---- SHA-256 (FIPS 180-4) --------------------------------------------------------------------

constexpr uint32_t kSha[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

void sha_block(uint32_t h[8], const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 |
           uint32_t(p[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 =
        hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kSha[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

bool valid_key(std::string_view k) {
  if (k.empty() || k.size() > 128) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

// Covers the whole head, padding included, except the checksum field itself.
uint32_t head_crc(std::span<const uint8_t> bytes, uint64_t table_end) {
  uint32_t c = crc32c(bytes.subspan(0, kOffHeadCrc));
  return crc32c(bytes.subspan(kOffHeadCrc + 4, table_end - kOffHeadCrc - 4), c);
}

std::string encode_header_text(const Header& h) {
  std::string s;
  for (const auto& [k, v] : h.values) s += k + "=" + v + "\n";
  return s;
}

}  // namespace

namespace {

// Drops the resident pages wholly inside `bytes` (a read-only file mapping: they refault from
// the file when read again).
void release_pages(std::span<const uint8_t> bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (uintptr_t(bytes.data()) + page - 1) / page * page;
  const uintptr_t last = (uintptr_t(bytes.data()) + bytes.size()) / page * page;
  if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

std::string_view section_kind_name(SectionKind k) {
  switch (k) {
    case SectionKind::kGraphSpec:
      return "graph.spec";
    case SectionKind::kGraphIr:
      return "graph.ir";
    case SectionKind::kGraphPlan:
      return "graph.plan";
    case SectionKind::kGraphKernels:
      return "graph.kernels";
    case SectionKind::kGraphObject:
      return "graph.object";
    case SectionKind::kTokenizer:
      return "tokenizer";
    case SectionKind::kWeights:
      return "weights";
    case SectionKind::kWeightsRef:
      return "weights.ref";
    case SectionKind::kConstants:
      return "constants";
    case SectionKind::kCudaCubin:
      return "cuda.cubin";
    case SectionKind::kCudaPtx:
      return "cuda.ptx";
    case SectionKind::kCudaKernels:
      return "cuda.kernels";
  }
  return "unknown";
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> bytes) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t n = bytes.size(), i = 0;
  for (; i + 64 <= n; i += 64) sha_block(h, bytes.data() + i);
  uint8_t tail[128] = {};
  size_t rest = n - i;
  if (rest) std::memcpy(tail, bytes.data() + i, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = uint64_t(n) * 8;
  for (int k = 0; k < 8; ++k) tail[tail_len - 1 - k] = uint8_t(bits >> (8 * k));
  for (size_t o = 0; o < tail_len; o += 64) sha_block(h, tail + o);
  std::array<uint8_t, 32> out;
  for (int k = 0; k < 8; ++k)
    for (int b = 0; b < 4; ++b) out[4 * k + b] = uint8_t(h[k] >> (24 - 8 * b));
  return out;
}

std::string hex(std::span<const uint8_t> bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s += d[b >> 4];
    s += d[b & 15];
  }
  return s;
}

std::string Header::get(const std::string& key, const std::string& fallback) const {
  auto it = values.find(key);
  return it == values.end() ? fallback : it->second;
}

Result<int64_t> Header::get_int(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) return make_error("header key '", key, "' is missing");
  const std::string& v = it->second;
  if (v.empty() || v.size() > 18 ||
      !std::all_of(v.begin() + (v[0] == '-'), v.end(),
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      v == "-")
    return make_error("header key '", key, "' is not an integer: '", v, "'");
  return std::stoll(v);
}

std::vector<std::string> Header::get_list(const std::string& key) const {
  std::vector<std::string> out;
  std::string v = get(key);
  size_t start = 0;
  while (start < v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    if (comma > start) out.push_back(v.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

const SectionEntry* ArtifactView::find(SectionKind kind, std::string_view name) const {
  for (const SectionEntry& s : sections)
    if (s.kind == kind && (name.empty() || s.name == name)) return &s;
  return nullptr;
}

bool has_magic(std::span<const uint8_t> bytes) {
  return bytes.size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), bytes.begin());
}

uint64_t head_bytes(const Header& header, size_t num_sections) {
  uint64_t text = encode_header_text(header).size();
  return align_up(kPrefixBytes + text, 8) + num_sections * kSectionEntryBytes;
}

std::vector<uint8_t> encode_head(const Header& header, const std::vector<SectionEntry>& sections) {
  std::string text = encode_header_text(header);
  uint64_t table_off = align_up(kPrefixBytes + text.size(), 8);
  std::vector<uint8_t> out(table_off + sections.size() * kSectionEntryBytes, 0);
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  store<uint32_t>(&out[kOffVersion], header.format_version);
  store<uint32_t>(&out[kOffFlags], 0);
  store<uint64_t>(&out[kOffHeaderOffset], kPrefixBytes);
  store<uint64_t>(&out[kOffHeaderBytes], text.size());
  store<uint64_t>(&out[kOffTableOffset], table_off);
  store<uint32_t>(&out[kOffNumSections], uint32_t(sections.size()));
  std::memcpy(&out[kPrefixBytes], text.data(), text.size());
  for (size_t i = 0; i < sections.size(); ++i) {
    uint8_t* e = &out[table_off + i * kSectionEntryBytes];
    const SectionEntry& s = sections[i];
    store<uint32_t>(e, uint32_t(s.kind));
    store<uint32_t>(e + 4, s.flags);
    store<uint64_t>(e + 8, s.offset);
    store<uint64_t>(e + 16, s.size);
    store<uint32_t>(e + 24, s.crc32c);
    std::memcpy(e + 32, s.name.data(), std::min(s.name.size(), kSectionNameBytes - 1));
  }
  store<uint32_t>(&out[kOffHeadCrc], head_crc(out, out.size()));
  return out;
}

Status reseal_header(std::span<uint8_t> bytes) {
  if (bytes.size() < kPrefixBytes || !has_magic(bytes)) return make_error("not an artifact");
  uint64_t ho = load<uint64_t>(&bytes[kOffHeaderOffset]);
  uint64_t hb = load<uint64_t>(&bytes[kOffHeaderBytes]);
  uint64_t to = load<uint64_t>(&bytes[kOffTableOffset]);
  uint64_t n = load<uint32_t>(&bytes[kOffNumSections]);
  if (!in_bounds(ho, hb, bytes.size()) || n > kMaxSections || to < kPrefixBytes ||
      !in_bounds(to, n * kSectionEntryBytes, bytes.size()))
    return make_error("artifact head out of bounds");
  store<uint32_t>(&bytes[kOffHeadCrc], head_crc(bytes, to + n * kSectionEntryBytes));
  return Status::Ok();
}

Result<ArtifactView> parse(std::span<const uint8_t> bytes, const std::string& name,
                           const ParseOptions& options) {
  auto err = [&](auto&&... parts) { return make_error(name, ": ", parts...); };
  if (bytes.size() < kPrefixBytes)
    return err("too short for a kiln artifact (", bytes.size(), " bytes, the prefix alone is ",
               kPrefixBytes, "): truncated?");
  if (!has_magic(bytes)) return err("not a kiln artifact (bad magic)");
  ArtifactView v;
  v.bytes = bytes;
  v.header.format_version = load<uint32_t>(&bytes[kOffVersion]);
  if (v.header.format_version != kFormatVersion)
    return err("artifact format version ", v.header.format_version, ", this kiln reads version ",
               kFormatVersion, " (recompile the model with this kiln)");
  if (load<uint32_t>(&bytes[kOffFlags]) != 0)
    return err("unknown header flags 0x", hex(bytes.subspan(kOffFlags, 4)));
  const uint64_t ho = load<uint64_t>(&bytes[kOffHeaderOffset]);
  const uint64_t hb = load<uint64_t>(&bytes[kOffHeaderBytes]);
  const uint64_t to = load<uint64_t>(&bytes[kOffTableOffset]);
  const uint64_t n = load<uint32_t>(&bytes[kOffNumSections]);
  if (ho < kPrefixBytes || hb > kMaxHeaderBytes || !in_bounds(ho, hb, bytes.size()))
    return err("header [", ho, ", +", hb, ") is outside the file (", bytes.size(),
               " bytes): truncated?");
  if (n > kMaxSections) return err("section count ", n, " exceeds the limit ", kMaxSections);
  const uint64_t table_len = n * kSectionEntryBytes;
  if (to < ho + hb || !in_bounds(to, table_len, bytes.size()))
    return err("section table [", to, ", +", table_len, ") is outside the file (", bytes.size(),
               " bytes): truncated?");
  const uint32_t want = load<uint32_t>(&bytes[kOffHeadCrc]);
  const uint32_t got = head_crc(bytes, to + table_len);
  if (want != got)
    return err("header checksum mismatch (stored ", want, ", computed ", got,
               "): the file is corrupted");

  // Header lines.
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + ho), hb);
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return err("header line ", line_no, " has no newline");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return err("header line ", line_no, " has no '='");
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (!valid_key(key)) return err("header line ", line_no, ": bad key");
    if (value.find('\0') != std::string_view::npos)
      return err("header line ", line_no, ": NUL in the value of '", key, "'");
    if (!v.header.values.emplace(std::string(key), std::string(value)).second)
      return err("header key '", key, "' appears twice");
  }

  // Section table.
  std::set<std::pair<uint32_t, std::string>> seen;
  v.sections.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t* e = bytes.data() + to + i * kSectionEntryBytes;
    SectionEntry s;
    s.kind = SectionKind(load<uint32_t>(e));
    s.flags = load<uint32_t>(e + 4);
    s.offset = load<uint64_t>(e + 8);
    s.size = load<uint64_t>(e + 16);
    s.crc32c = load<uint32_t>(e + 24);
    const char* nm = reinterpret_cast<const char*>(e + 32);
    size_t len = strnlen(nm, kSectionNameBytes);
    if (len == kSectionNameBytes) return err("section ", i, ": name is not NUL-terminated");
    s.name.assign(nm, len);
    if (!std::all_of(s.name.begin(), s.name.end(), [](char c) { return c > ' ' && c < 127; }))
      return err("section ", i, ": name has unprintable bytes");
    const std::string label =
        std::string(section_kind_name(s.kind)) + (s.name.empty() ? "" : " '" + s.name + "'");
    if (s.flags != 0) return err("section ", i, " (", label, "): unknown flags ", s.flags);
    const uint64_t align = section_alignment(s.kind);
    if (s.offset % align != 0)
      return err("section ", i, " (", label, "): offset ", s.offset, " is not ", align,
                 "-byte aligned");
    if (s.offset < to + table_len || !in_bounds(s.offset, s.size, bytes.size()))
      return err("section ", i, " (", label, ") [", s.offset, ", +", s.size,
                 ") is outside the file (", bytes.size(), " bytes): truncated?");
    if (!seen.emplace(uint32_t(s.kind), s.name).second)
      return err("section ", label, " appears twice");
    v.sections.push_back(std::move(s));
  }
  if (options.verify_sections) KILN_RETURN_IF_ERROR(verify_sections(v, name, options));
  return v;
}

Status verify_sections(const ArtifactView& v, const std::string& name, const ParseOptions& options,
                       const std::function<bool(const SectionEntry&)>& which) {
  // The chosen sections' CRC32C at once, spread over the cores (crc32c.h).
  std::vector<const SectionEntry*> checked;
  std::vector<std::span<const uint8_t>> ranges;
  for (const SectionEntry& s : v.sections)
    if (!which || which(s)) {
      checked.push_back(&s);
      ranges.push_back(v.data(s));
    }
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<uint32_t> crcs =
      crc32c_ranges(ranges, threads, [&](size_t range, std::span<const uint8_t> piece) {
        // Only the embedded GGUF: kernels read its big tensors (token_embd for an embedding
        // lookup) a few rows at a time, while the constants are read whole by the first step
        // anyway (refaulting them costs time).
        if (options.release_checked_pages && checked[range]->kind == SectionKind::kWeights)
          release_pages(piece);
      });
  for (size_t i = 0; i < checked.size(); ++i) {
    const SectionEntry& s = *checked[i];
    if (crcs[i] != s.crc32c)
      return make_error(name, ": section ", section_kind_name(s.kind),
                        s.name.empty() ? "" : " '" + s.name + "'", ": checksum mismatch (stored ",
                        s.crc32c, ", computed ", crcs[i], "): the file is corrupted");
  }
  return Status::Ok();
}

}  // namespace kiln::artifact
