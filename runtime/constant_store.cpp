#include "runtime/constant_store.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "codegen/cpu/microkernels.h"
#include "runtime/interpreter.h"

namespace kiln::runtime {
namespace {

// The nodes `v` depends on, in dependency order (each once).
void closure(const ir::Node* n, std::vector<const ir::Node*>& order,
             std::unordered_map<const ir::Node*, bool>& seen) {
  if (seen[n]) return;
  seen[n] = true;
  for (const ir::Value* o : n->operands) closure(o->def, order, seen);
  order.push_back(n);
}

}  // namespace

void ConstantStore::Free::operator()(uint8_t* p) const {
  std::free(p);
}

Status ConstantStore::allocate(Blob& b, size_t size) {
  b.size = size;
  if (size >= (size_t(64) << 10)) {
    KILN_ASSIGN_OR_RETURN(b.map, Mapping::create(size));
    return Status::Ok();
  }
  b.data.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (size + 63) / 64 * 64)));
  if (!b.data) return make_error("out of memory (", size, " bytes)");
  return Status::Ok();
}

bool ConstantStore::has_packed(const ir::Value& v) const {
  const std::string key = packed_key(v);
  return mapped_.count(key) || by_key_.count(key);
}

Result<std::span<const uint8_t>> ConstantStore::bytes_of(const std::string& key) const {
  if (auto it = by_key_.find(key); it != by_key_.end())
    return std::span<const uint8_t>(it->second.get(), it->second.size);
  if (auto it = mapped_.find(key); it != mapped_.end()) return it->second;
  return make_error("constant ", key, ": not made");
}

Result<const uint8_t*> ConstantStore::get(const ir::Value& v) {
  KILN_ASSIGN_OR_RETURN(const uint8_t* p, peek(v));
  pinned_.insert(constant_key(v));
  return p;
}

void ConstantStore::release_unpinned(const ir::Value& v) {
  std::string key = constant_key(v);
  if (!pinned_.count(key)) by_key_.erase(key);
}

Result<const uint8_t*> ConstantStore::peek(const ir::Value& v) {
  std::string key = constant_key(v);
  if (auto it = by_key_.find(key); it != by_key_.end()) return it->second.get();
  if (auto it = mapped_.find(key); it != mapped_.end()) {
    // A stored constant of another size would let kernels read past it.
    const std::optional<uint64_t> want = v.type.bytes();
    if (!want || it->second.size() != *want)
      return make_error("stored constant ", key, ": ", it->second.size(), " bytes, its type ",
                        v.type.str(), " has ", want.value_or(0));
    ++mapped_uses_;
    return it->second.data();
  }

  // A graph of just this expression, run once by the interpreter.
  std::vector<const ir::Node*> order;
  std::unordered_map<const ir::Node*, bool> seen;
  closure(v.def, order, seen);
  ir::Graph g("constant");
  std::unordered_map<const ir::Value*, ir::Value*> map;
  for (const ir::Node* n : order) {
    if (n->op == ir::Op::Region || n->op == ir::Op::Input || n->op == ir::Op::State ||
        n->op == ir::Op::Arg)
      return make_error("derived constant ", key, ": depends on a ", ir::op_name(n->op),
                        " node, which is not a constant");
    if (n->op == ir::Op::Weight) sources_.insert(n->attrs.s("name"));
    std::vector<ir::Value*> operands;
    for (const ir::Value* o : n->operands) operands.push_back(map.at(o));
    std::vector<ir::TensorType> types;
    for (const ir::Value* r : n->results) types.push_back(r->type);
    KILN_ASSIGN_OR_RETURN(ir::Node * copy, g.add_node(n->op, operands, n->attrs, types));
    for (size_t i = 0; i < n->results.size(); ++i) map[n->results[i]] = copy->results[i];
  }
  KILN_RETURN_IF_ERROR(
      g.add_node(ir::Op::Output, {map.at(&v)}, ir::Attrs{{"name", std::string("c")}}, {}));
  StateStore no_states;
  auto it = Interpreter::create(g, weights_, no_states);
  if (!it.ok()) return it.error().wrap("derived constant");
  KILN_RETURN_IF_ERROR((*it)->run());
  KILN_ASSIGN_OR_RETURN(TensorView out, (*it)->output_tensor("c"));
  ++evaluations_;
  Blob& b = by_key_[key];
  if (Status st = allocate(b, out.bytes.size()); !st.ok()) {
    by_key_.erase(key);
    return st.error().wrap("derived constant " + key);
  }
  std::memcpy(b.get(), out.bytes.data(), b.size);
  if (on_weight_copied_)
    for (const ir::Node* n : order) {
      if (n->op != ir::Op::Weight) continue;
      auto bytes = weights_.get(n->attrs.s("name"), n->result()->type);
      if (bytes.ok()) on_weight_copied_(*bytes);
    }
  return b.get();
}

Result<const uint8_t*> ConstantStore::packed(const ir::Value& v, const uint8_t* bytes) {
  std::string key = packed_key(v);
  if (auto it = by_key_.find(key); it != by_key_.end()) return it->second.get();
  const ir::TensorType& t = v.type;
  if (t.rank() != 2 || !mk::packable(t.dtype))
    return make_error("packed weight ", key, ": ", t.str(), " has no packed layout");
  const int N = int(t.dim(0)), K = int(t.dim(1));
  if (auto it = mapped_.find(key); it != mapped_.end()) {
    const size_t want = mk::packed_bytes(t.dtype, N, K);
    if (it->second.size() != want)
      return make_error("stored packed weight ", key, ": ", it->second.size(), " bytes, ", t.str(),
                        " packs to ", want);
    ++mapped_uses_;
    return it->second.data();
  }
  if (!bytes) return make_error("packed weight ", key, ": no bytes to pack");
  const auto rb = row_bytes(t.dtype, uint64_t(K));
  if (!rb) return make_error("packed weight ", key, ": bad row of ", t.str());
  Blob& b = by_key_[key];
  if (Status st = allocate(b, mk::packed_bytes(t.dtype, N, K)); !st.ok()) {
    by_key_.erase(key);
    return st.error().wrap("packed weight " + key);
  }
  // In pieces of about 1 MiB (whole groups of kPackRows rows, which pack independently), each
  // weight piece handed to on_weight_copied_ once packed: the weight is then resident about once
  // while it packs, not as stored and packed (Gemma 3's 178 MB embedding table).
  const size_t row = size_t(*rb);
  const int step =
      std::max(mk::kPackRows, int((size_t(1) << 20) / row) / mk::kPackRows * mk::kPackRows);
  const bool report = on_weight_copied_ && v.def->op == ir::Op::Weight;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  uintptr_t given = uintptr_t(bytes);  // what on_weight_copied_ has had
  for (int n0 = 0; n0 < N; n0 += step) {
    const int rows = std::min(step, N - n0);
    Status st = mk::pack_weights(t.dtype, bytes + size_t(n0) * row, row, rows, K,
                                 b.get() + size_t(n0) * row);
    if (!st.ok()) {
      by_key_.erase(key);
      return st.error().wrap("packed weight " + key);
    }
    if (!report) continue;
    // Up to a page boundary, so that a page is given back once everything in it is packed.
    uintptr_t end = uintptr_t(bytes + size_t(n0 + rows) * row);
    if (n0 + rows < N) end = end / page * page;
    if (end > given) {
      on_weight_copied_(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(given), end - given));
      given = end;
    }
  }
  ++packs_;
  return b.get();
}

size_t ConstantStore::bytes() const {
  size_t n = 0;
  for (const auto& [k, b] : by_key_) n += b.size;
  return n;
}

}  // namespace kiln::runtime
