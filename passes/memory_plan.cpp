#include "passes/memory_plan.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <numeric>
#include <unordered_map>

#include "passes/graph_util.h"

namespace kiln::passes {

std::string_view storage_name(Storage s) {
  switch (s) {
    case Storage::kArena:
      return "arena";
    case Storage::kInPlace:
      return "inplace";
    case Storage::kAlias:
      return "alias";
    case Storage::kExternal:
      return "external";
  }
  return "?";
}

const PlanEntry* MemoryPlan::find(int node, int result) const {
  for (const PlanEntry& e : entries)
    if (e.node == node && e.result == result) return &e;
  return nullptr;
}

std::string MemoryPlan::str() const {
  std::string s = "// plan arena=" + std::to_string(arena_bytes) +
                  " naive=" + std::to_string(naive_bytes) +
                  " lower_bound=" + std::to_string(lower_bound_bytes) +
                  " align=" + std::to_string(alignment) + "\n";
  for (const PlanEntry& e : entries) {
    s += "// plan " + std::to_string(e.node) + ":" + std::to_string(e.result) + " " +
         std::string(storage_name(e.storage));
    if (e.storage != Storage::kExternal) s += " offset=" + std::to_string(e.offset);
    s += " bytes=" + std::to_string(e.bytes) + " live=" + std::to_string(e.first) + ":" +
         std::to_string(e.last);
    if (e.of_node >= 0) s += " of=" + std::to_string(e.of_node) + ":" + std::to_string(e.of_result);
    if (!e.name.empty()) s += " " + e.name;
    s += "\n";
  }
  return s;
}

namespace {

bool parse_u64(std::string_view t, uint64_t& out) {
  auto r = std::from_chars(t.data(), t.data() + t.size(), out);
  return r.ec == std::errc() && r.ptr == t.data() + t.size();
}

bool parse_pair(std::string_view t, int& a, int& b) {
  size_t c = t.find(':');
  if (c == std::string_view::npos) return false;
  uint64_t x = 0, y = 0;
  if (!parse_u64(t.substr(0, c), x) || !parse_u64(t.substr(c + 1), y)) return false;
  if (x > (1u << 30) || y > (1u << 30)) return false;
  a = int(x);
  b = int(y);
  return true;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> w;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) w.push_back(s.substr(i, j - i));
    i = j;
  }
  return w;
}

}  // namespace

Result<MemoryPlan> MemoryPlan::parse(std::string_view text) {
  MemoryPlan p;
  bool header = false;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("// plan ", 0) != 0) continue;
    auto bad = [&](std::string_view what) {
      return make_error("line ", line_no, ": memory plan: ", what);
    };
    std::vector<std::string_view> w = words(line.substr(8));
    if (w.empty()) return bad("empty line");
    if (w[0].rfind("arena=", 0) == 0) {
      for (std::string_view kv : w) {
        size_t eq = kv.find('=');
        uint64_t v = 0;
        if (eq == std::string_view::npos || !parse_u64(kv.substr(eq + 1), v))
          return bad("bad header field '" + std::string(kv) + "'");
        std::string_view k = kv.substr(0, eq);
        if (k == "arena")
          p.arena_bytes = v;
        else if (k == "naive")
          p.naive_bytes = v;
        else if (k == "lower_bound")
          p.lower_bound_bytes = v;
        else if (k == "align")
          p.alignment = v;
        else
          return bad("unknown header field '" + std::string(k) + "'");
      }
      header = true;
      continue;
    }
    PlanEntry e;
    if (w.size() < 2 || !parse_pair(w[0], e.node, e.result)) return bad("expected NODE:RESULT");
    if (w[1] == "arena")
      e.storage = Storage::kArena;
    else if (w[1] == "inplace")
      e.storage = Storage::kInPlace;
    else if (w[1] == "alias")
      e.storage = Storage::kAlias;
    else if (w[1] == "external")
      e.storage = Storage::kExternal;
    else
      return bad("unknown storage '" + std::string(w[1]) + "'");
    for (size_t i = 2; i < w.size(); ++i) {
      std::string_view kv = w[i];
      if (kv.front() == '%') {
        e.name = std::string(kv);
        continue;
      }
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos)
        return bad("expected KEY=VALUE, found '" + std::string(kv) + "'");
      std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
      bool ok = true;
      if (k == "offset")
        ok = parse_u64(v, e.offset);
      else if (k == "bytes")
        ok = parse_u64(v, e.bytes);
      else if (k == "live")
        ok = parse_pair(v, e.first, e.last);
      else if (k == "of")
        ok = parse_pair(v, e.of_node, e.of_result);
      else
        return bad("unknown field '" + std::string(k) + "'");
      if (!ok) return bad("bad value in '" + std::string(kv) + "'");
    }
    p.entries.push_back(std::move(e));
  }
  if (!header) return make_error("memory plan: no '// plan arena=...' header");
  return p;
}

namespace {

using ir::Graph;
using ir::Node;
using ir::Value;

struct Key {
  int node, result;
  bool operator<(const Key& o) const { return node != o.node ? node < o.node : result < o.result; }
};

}  // namespace

Status validate(const MemoryPlan& plan, const Graph& g) {
  const int n_nodes = int(g.size());
  std::map<Key, const PlanEntry*> by_key;
  for (const PlanEntry& e : plan.entries) {
    if (!by_key.emplace(Key{e.node, e.result}, &e).second)
      return make_error("plan: two entries for ", e.node, ":", e.result);
  }
  if (plan.alignment == 0) return make_error("plan: alignment is 0");

  // Liveness from the graph itself.
  std::unordered_map<const Value*, Key> key_of;
  std::vector<const Value*> values;
  for (int i = 0; i < n_nodes; ++i) {
    const Node& n = *g.nodes()[size_t(i)];
    for (int r = 0; r < int(n.results.size()); ++r) {
      key_of[n.results[size_t(r)]] = Key{i, r};
      values.push_back(n.results[size_t(r)]);
    }
  }
  std::unordered_map<const Value*, int> first, last;
  for (const Value* v : values) {
    int d = key_of[v].node;
    first[v] = v->def->op == ir::Op::Input ? 0 : d;
    last[v] = d;
  }
  for (int i = 0; i < n_nodes; ++i) {
    const Node& n = *g.nodes()[size_t(i)];
    for (const Value* o : n.operands) {
      if (!key_of.count(o)) return make_error("plan: graph operand outside the top level");
      last[o] = std::max(last[o], n.has(ir::kSink) ? n_nodes : i);
    }
  }
  if (by_key.size() != values.size())
    return make_error("plan: ", by_key.size(), " entries for ", values.size(), " values");

  // Each value: its entry, its arena interval (if any), and its version: a value and its aliases
  // hold the same data; an in-place result starts a new version in the same memory.
  std::unordered_map<const Value*, const PlanEntry*> entry;
  std::vector<int> version(values.size());
  std::iota(version.begin(), version.end(), 0);
  std::unordered_map<const Value*, int> index;
  for (size_t i = 0; i < values.size(); ++i) index[values[i]] = int(i);
  std::function<int(int)> find = [&](int x) {
    return version[size_t(x)] == x ? x : version[size_t(x)] = find(version[size_t(x)]);
  };

  for (const Value* v : values) {
    Key k = key_of[v];
    auto it = by_key.find(k);
    if (it == by_key.end()) return make_error("plan: no entry for ", k.node, ":", k.result);
    const PlanEntry& e = *it->second;
    entry[v] = &e;
    auto where = [&] {
      return "plan entry " + std::to_string(k.node) + ":" + std::to_string(k.result) + " ";
    };
    auto bytes = v->type.bytes();
    if (!bytes || *bytes != e.bytes)
      return make_error(where(), "has ", e.bytes, " bytes, the value ", v->type.str());
    const Node& n = *v->def;
    if (e.storage == Storage::kExternal) continue;
    if (e.offset + e.bytes > plan.arena_bytes || e.offset + e.bytes < e.offset)
      return make_error(where(), "ends past the arena (", plan.arena_bytes, " bytes)");
    if (e.storage == Storage::kArena || e.storage == Storage::kInPlace) {
      if (e.storage == Storage::kArena && e.offset % plan.alignment)
        return make_error(where(), "offset ", e.offset, " is not aligned to ", plan.alignment);
      if (n.has(ir::kConstant) || n.op == ir::Op::State)
        return make_error(where(), "puts a weight or state in the arena");
    }
    if (e.storage == Storage::kAlias || e.storage == Storage::kInPlace) {
      if (e.of_node < 0 || e.of_node >= n_nodes) return make_error(where(), "has no source");
      const Node& src_node = *g.nodes()[size_t(e.of_node)];
      if (e.of_result >= int(src_node.results.size()))
        return make_error(where(), "bad source result");
      const Value* src = src_node.results[size_t(e.of_result)];
      int slot = -1;
      for (int i = 0; i < n.num_operands(); ++i)
        if (n.operand(i) == src) slot = i;
      if (slot < 0) return make_error(where(), "aliases a value that is not its operand");
      const PlanEntry* se =
          by_key.count({e.of_node, e.of_result}) ? by_key[{e.of_node, e.of_result}] : nullptr;
      if (!se || se->storage == Storage::kExternal)
        return make_error(where(), "source is not in the arena");
      if (e.storage == Storage::kAlias) {
        auto a = alias_of(n, k.result);
        if (!a || a->operand != slot) return make_error(where(), "is not a view of its source");
        if (e.offset != se->offset + a->offset || e.offset + e.bytes > se->offset + se->bytes)
          return make_error(where(), "lies outside the memory it aliases");
        version[size_t(find(index[v]))] = find(index[src]);
      } else {
        auto ok = inplace_operands(n, k.result);
        if (std::find(ok.begin(), ok.end(), slot) == ok.end())
          return make_error(where(), "reuses an operand the op cannot write over");
        if (e.offset != se->offset || e.bytes != se->bytes)
          return make_error(where(), "does not take exactly its operand's memory");
      }
    }
  }

  // Per version: its live range and byte hull; where an in-place result began.
  struct Version {
    int first = 1 << 30, last = -1;
    uint64_t lo = ~uint64_t(0), hi = 0;
    int inplace_of = -1;  // version whose memory it took over
    int def = -1;
  };
  std::map<int, Version> vers;
  for (const Value* v : values) {
    const PlanEntry& e = *entry[v];
    if (e.storage == Storage::kExternal) continue;
    Version& ver = vers[find(index[v])];
    ver.first = std::min(ver.first, first[v]);
    ver.last = std::max(ver.last, last[v]);
    ver.lo = std::min(ver.lo, e.offset);
    ver.hi = std::max(ver.hi, e.offset + e.bytes);
    if (e.storage == Storage::kInPlace) {
      const Value* src = g.nodes()[size_t(e.of_node)]->results[size_t(e.of_result)];
      ver.inplace_of = find(index[src]);
      ver.def = key_of[v].node;
    }
  }
  for (auto a = vers.begin(); a != vers.end(); ++a) {
    for (auto b = std::next(a); b != vers.end(); ++b) {
      const Version& x = a->second;
      const Version& y = b->second;
      if (x.hi <= y.lo || y.hi <= x.lo) continue;          // disjoint bytes
      if (x.last < y.first || y.last < x.first) continue;  // disjoint lifetimes
      // An in-place result may begin exactly where the version it overwrites is last read.
      if (y.inplace_of == a->first && x.last == y.def && y.first == y.def) continue;
      if (x.inplace_of == b->first && y.last == x.def && x.first == x.def) continue;
      const Value* va = values[size_t(a->first)];
      const Value* vb = values[size_t(b->first)];
      return make_error("plan: ", key_of[va].node, ":", key_of[va].result, " and ", key_of[vb].node,
                        ":", key_of[vb].result, " share arena bytes while both are live (", x.first,
                        "..", x.last, " and ", y.first, "..", y.last, ")");
    }
  }
  return Status::Ok();
}

}  // namespace kiln::passes
