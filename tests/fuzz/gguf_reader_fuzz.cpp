// libFuzzer target over the GGUF reader. Whatever the bytes, GgufFile::parse must return (no
// crash, hang or giant allocation); when it accepts a file, every tensor's bytes and every
// metadata value must be readable, and writing the file back out must give a file that parses
// to the same thing.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"

namespace {

using namespace kiln;
using namespace kiln::gguf;

// Folds a value into a checksum through every typed getter, so each path is exercised.
uint64_t touch(const Metadata& md, const std::string& key, const Value& v) {
  uint64_t h = v.array_size() + uint64_t(v.type);
  if (auto r = md.get_uint(key); r.ok()) h += *r;
  if (auto r = md.get_int(key); r.ok()) h += uint64_t(*r);
  if (auto r = md.get_float(key); r.ok()) h += uint64_t(*r != 0);
  if (auto r = md.get_bool(key); r.ok()) h += *r;
  if (auto r = md.get_string(key); r.ok()) h += r->size();
  if (auto r = md.get_string_array(key); r.ok())
    for (const std::string& s : **r) h += s.size();
  if (auto r = md.get_int_array(key); r.ok())
    for (int64_t x : *r) h += uint64_t(x);
  if (auto r = md.get_float_array(key); r.ok()) h += r->size();
  h += v.describe().size();
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = GgufFile::parse(std::span<const uint8_t>(data, size));
  if (!f.ok()) {
    if (f.message().find("at byte ") == std::string::npos) std::abort();  // errors say where
    return 0;
  }
  const GgufFile& g = **f;
  uint64_t h = 0;
  for (const auto& [k, v] : g.metadata().entries()) h += touch(g.metadata(), k, v);
  h += g.architecture().size();
  GgufWriter w;
  w.metadata() = g.metadata();
  w.set_alignment(g.alignment());
  for (const TensorInfo& t : g.tensors()) {
    if (g.data_offset() + t.offset + t.bytes > g.file_size()) std::abort();
    auto bytes = g.span(t);
    for (uint8_t b : bytes) h += b;  // every byte must be readable
    h += t.elements() + t.rows() + t.shape_string().size();
    if (g.find_tensor(t.name) != &t) std::abort();
    if (!w.add_tensor(t.name, t.type, t.dims, bytes).ok()) std::abort();
  }
  // Round trip: what was accepted writes back out and parses to the same shape.
  std::vector<uint8_t> out;
  if (!w.to_bytes(&out).ok()) std::abort();
  auto again = GgufFile::parse(out);
  if (!again.ok()) std::abort();
  // (A non-default alignment can only come from general.alignment, so no key is added.)
  if ((*again)->tensors().size() != g.tensors().size() ||
      (*again)->metadata().size() != g.metadata().size() || (*again)->alignment() != g.alignment())
    std::abort();
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const TensorInfo& a = g.tensors()[i];
    const TensorInfo& b = (*again)->tensors()[i];
    if (a.name != b.name || a.dims != b.dims || a.type != b.type || a.bytes != b.bytes)
      std::abort();
  }
  volatile uint64_t sink = h;
  (void)sink;
  return 0;
}
