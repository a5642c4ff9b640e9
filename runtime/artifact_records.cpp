#include "runtime/artifact_records.h"

#include <charconv>
#include <map>
#include <optional>

namespace kiln::artifact {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

template <typename T>
Result<T> number(std::string_view s, std::string_view what, T lo, T hi) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi)
    return make_error(what, ": '", s, "' is not an integer in [", lo, ", ", hi, "]");
  return v;
}

}  // namespace

std::string encode_spec(const lower::GraphSpec& spec) {
  std::string s;
  s += "batch=" + std::to_string(spec.batch) + "\n";
  s += "tokens=" + std::to_string(spec.tokens) + "\n";
  s += "ctx=" + std::to_string(spec.ctx) + "\n";
  s += "slots=" + std::to_string(spec.slots) + "\n";
  s += std::string("all_logits=") + (spec.all_logits ? "1" : "0") + "\n";
  s += "kv_type=" + std::string(dtype_name(spec.kv_type)) + "\n";
  return s;
}

Result<lower::GraphSpec> decode_spec(std::string_view text) {
  std::map<std::string, std::string, std::less<>> fields;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return make_error("graph spec: line '", line, "' has no '='");
    fields[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  auto field = [&](const char* key) -> Result<std::string_view> {
    auto it = fields.find(key);
    if (it == fields.end()) return make_error("graph spec: '", key, "' is missing");
    return std::string_view(it->second);
  };
  lower::GraphSpec spec;
  constexpr int kMax = 1 << 24;
  KILN_ASSIGN_OR_RETURN(std::string_view b, field("batch"));
  KILN_ASSIGN_OR_RETURN(spec.batch, number<int>(b, "graph spec batch", 1, kMax));
  KILN_ASSIGN_OR_RETURN(std::string_view t, field("tokens"));
  KILN_ASSIGN_OR_RETURN(spec.tokens, number<int>(t, "graph spec tokens", 1, kMax));
  KILN_ASSIGN_OR_RETURN(std::string_view c, field("ctx"));
  KILN_ASSIGN_OR_RETURN(spec.ctx, number<int>(c, "graph spec ctx", 1, kMax));
  KILN_ASSIGN_OR_RETURN(std::string_view sl, field("slots"));
  KILN_ASSIGN_OR_RETURN(spec.slots, number<int>(sl, "graph spec slots", 0, kMax));
  KILN_ASSIGN_OR_RETURN(std::string_view al, field("all_logits"));
  KILN_ASSIGN_OR_RETURN(int all, number<int>(al, "graph spec all_logits", 0, 1));
  spec.all_logits = all != 0;
  KILN_ASSIGN_OR_RETURN(std::string_view kt, field("kv_type"));
  std::optional<DType> kv = dtype_from_name(kt);
  if (!kv) return make_error("graph spec: unknown kv_type '", kt, "'");
  spec.kv_type = *kv;
  return spec;
}

std::string encode_kernels(const std::vector<cpu::KernelInfo>& kernels) {
  std::string s;
  for (const cpu::KernelInfo& k : kernels) {
    std::string packed;
    for (int p : k.packed_operands) packed += (packed.empty() ? "" : ",") + std::to_string(p);
    s += k.name + "\t" + k.symbol + "\t" + std::to_string(k.scratch_bytes) + "\t" +
         std::to_string(k.shared_bytes) + "\t" + std::to_string(k.num_args) + "\t" +
         std::to_string(k.phases) + "\t" + (k.uses_microkernels ? "1" : "0") + "\t" +
         (packed.empty() ? "-" : packed) + "\n";
  }
  return s;
}

Result<std::vector<cpu::KernelInfo>> decode_kernels(std::string_view text) {
  std::vector<cpu::KernelInfo> out;
  int line_no = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    auto f = split(line, '\t');
    auto bad = [&](auto&&... what) {
      return make_error("kernel table line ", line_no, ": ", what...);
    };
    if (f.size() != 8) return bad("expected 8 tab-separated fields, found ", f.size());
    cpu::KernelInfo k;
    k.name = std::string(f[0]);
    k.symbol = std::string(f[1]);
    if (k.name.empty() || k.symbol.empty()) return bad("empty name or symbol");
    constexpr uint64_t kMaxScratch = uint64_t(1) << 40;
    auto sb = number<uint64_t>(f[2], "scratch", 0, kMaxScratch);
    if (!sb.ok()) return bad(sb.message());
    auto sh = number<uint64_t>(f[3], "shared", 0, *sb);
    if (!sh.ok()) return bad(sh.message());
    auto na = number<int>(f[4], "args", 0, 1 << 16);
    if (!na.ok()) return bad(na.message());
    auto ph = number<int>(f[5], "phases", 1, 1 << 16);
    if (!ph.ok()) return bad(ph.message());
    auto mk = number<int>(f[6], "microkernels", 0, 1);
    if (!mk.ok()) return bad(mk.message());
    k.scratch_bytes = *sb;
    k.shared_bytes = *sh;
    k.num_args = *na;
    k.phases = *ph;
    k.uses_microkernels = *mk != 0;
    if (f[7] != "-") {
      for (std::string_view p : split(f[7], ',')) {
        auto op = number<int>(p, "packed operand", 0, k.num_args - 1);
        if (!op.ok()) return bad(op.message());
        k.packed_operands.push_back(*op);
      }
    }
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace kiln::artifact

namespace kiln::artifact {
namespace {

constexpr std::string_view kConstantsMagic = "kiln-constants 1 ";
constexpr size_t kBlobAlignment = 64;

std::string digits20(uint64_t v) {
  std::string s = std::to_string(v);
  return std::string(20 - s.size(), '0') + s;
}

}  // namespace

Result<std::vector<uint8_t>> encode_constants(const std::vector<StoredConstant>& constants) {
  // The index has a fixed width per entry, so its size, and with it every blob's offset, is
  // known before the offsets are written.
  uint64_t index = kConstantsMagic.size() + std::to_string(constants.size()).size() + 1;
  for (const StoredConstant& c : constants) {
    if (c.key.empty() || c.key.find('\n') != std::string::npos)
      return make_error("constant key '", c.key, "' is empty or has a line break");
    index += 20 + 1 + 20 + 1 + c.key.size() + 1;
  }
  auto align = [](uint64_t v) {
    return (v + kBlobAlignment - 1) / kBlobAlignment * kBlobAlignment;
  };
  std::string text = std::string(kConstantsMagic) + std::to_string(constants.size()) + "\n";
  uint64_t pos = align(index);
  std::vector<uint64_t> offsets;
  for (const StoredConstant& c : constants) {
    offsets.push_back(pos);
    text += digits20(pos) + "\t" + digits20(c.bytes.size()) + "\t" + c.key + "\n";
    pos = align(pos + c.bytes.size());
  }
  std::vector<uint8_t> out(pos, 0);
  std::copy(text.begin(), text.end(), out.begin());
  for (size_t i = 0; i < constants.size(); ++i)
    std::copy(constants[i].bytes.begin(), constants[i].bytes.end(), out.begin() + offsets[i]);
  return out;
}

Result<std::vector<StoredConstant>> decode_constants(std::span<const uint8_t> section) {
  std::string_view text(reinterpret_cast<const char*>(section.data()), section.size());
  if (!text.starts_with(kConstantsMagic)) return make_error("constants: bad index header");
  size_t eol = text.find('\n');
  if (eol == std::string_view::npos) return make_error("constants: index header has no end");
  KILN_ASSIGN_OR_RETURN(
      uint64_t count,
      number<uint64_t>(text.substr(kConstantsMagic.size(), eol - kConstantsMagic.size()),
                       "constants: count", 0, section.size() / 44));
  std::vector<StoredConstant> out;
  std::map<std::string, bool> seen;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  size_t pos = eol + 1;
  for (uint64_t i = 0; i < count; ++i) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      return make_error("constants: index entry ", i, " has no end");
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() < 43 || line[20] != '\t' || line[41] != '\t')
      return make_error("constants: index entry ", i, " is malformed");
    KILN_ASSIGN_OR_RETURN(
        uint64_t off, number<uint64_t>(line.substr(0, 20), "constants: offset", 0, section.size()));
    KILN_ASSIGN_OR_RETURN(
        uint64_t size, number<uint64_t>(line.substr(21, 20), "constants: size", 0, section.size()));
    std::string key(line.substr(42));
    if (!seen.emplace(key, true).second)
      return make_error("constants: key '", key, "' appears twice");
    out.push_back(StoredConstant{std::move(key), {}});
    spans.push_back({off, size});
  }
  // Blobs lie after the whole index and inside the section.
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [off, size] = spans[i];
    if (off % kBlobAlignment != 0 || off < pos || size > section.size() - off)
      return make_error("constants: entry ", i, " (", out[i].key, ") [", off, ", +", size,
                        ") is misaligned, overlaps the index or is outside the section (",
                        section.size(), " bytes)");
    out[i].bytes = section.subspan(off, size);
  }
  return out;
}

}  // namespace kiln::artifact
