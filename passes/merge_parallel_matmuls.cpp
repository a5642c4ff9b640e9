// merge-parallel-matmuls: contractions that read the same activation value with 2-D constant
// weights of one dtype and the same attributes (Q/K/V, gate/up) become one contraction over the
// weights concatenated along axis 0 (N), followed by a slice of the last axis per original result.
//
// The concat of weights is a derived constant (docs/ir.md): the runtime evaluates it once at load,
// so a token pays one pass over the activations and one kernel launch instead of three. Quantized
// weights concatenate whole rows, so they keep their format. Weights of different dtypes are not
// merged (one kernel reads one format); batched (3-D+) weights are not merged (attention's
// mul_mats read activations on both sides).
#include <map>
#include <string>
#include <tuple>

#include "ir/builder.h"
#include "passes/graph_util.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Value;

// "blk0.q", "blk0.k", "blk0.v" -> "blk0.q_k_v"; "" when any is unnamed or prefixes differ.
std::string merged_name(const std::vector<Node*>& group) {
  std::string prefix, suffixes;
  for (Node* n : group) {
    const std::string& s = n->result()->name;
    size_t dot = s.rfind('.');
    if (s.empty() || dot == std::string::npos) return "";
    std::string p = s.substr(0, dot + 1);
    if (!prefix.empty() && p != prefix) return "";
    prefix = p;
    suffixes += (suffixes.empty() ? "" : "_") + s.substr(dot + 1);
  }
  return prefix + suffixes;
}

}  // namespace

Status run_merge_parallel_matmuls(Graph& g, PassContext& ctx) {
  auto consts = constant_values(g);
  // (activation value, weight dtype, attributes) -> contractions in schedule order.
  using Key = std::tuple<int, int, std::string>;
  std::map<Key, std::vector<Node*>> groups;
  std::vector<Key> order;
  for (const auto& np : g.nodes()) {
    Node& n = *np;
    if (!n.has(ir::kContraction) || n.num_operands() != 2 || n.results.size() != 1) continue;
    Value* w = n.operand(1);
    if (!consts.count(w) || w->type.rank() != 2 || consts.count(n.operand(0))) continue;
    std::string attrs;  // e.g. the activations' precision: one kernel computes one way
    for (const ir::Attr& a : n.attrs.list())
      attrs += a.name + "=" + ir::attr_value_str(a.value) + ";";
    Key key{n.operand(0)->id, int(w->type.dtype), attrs};
    auto& list = groups[key];
    if (list.empty()) order.push_back(key);
    list.push_back(&n);
  }
  bool changed = false;
  for (const auto& key : order) {
    std::vector<Node*>& group = groups[key];
    if (group.size() < 2) continue;
    Node* last = group.back();
    Value* x = last->operand(0);
    ir::Builder b(g);
    b.insert_before(last);
    std::vector<Value*> ws;
    for (Node* n : group) ws.push_back(n->operand(1));
    Value* wcat = b.concat(ws, 0);
    std::string name = merged_name(group);
    if (!name.empty()) b.named(name);
    Value* y = b.op(last->op, {x, wcat}, last->attrs);
    if (!b.ok())
      return b.status().error().wrap("merging " + std::to_string(group.size()) + " mul_mats");
    int64_t start = 0;
    const int64_t axis = y->type.rank() - 1;
    for (Node* n : group) {
      int64_t size = n->result()->type.dim(-1);
      Value* s = b.slice(y, axis, start, size);
      if (!b.ok()) return b.status().error();
      start += size;
      g.replace_all_uses(n->result(), s);
      move_name(g, n->result(), s);
    }
    for (Node* n : group) g.erase(n);
    ctx.bump("merge-parallel-matmuls.groups");
    ctx.bump("merge-parallel-matmuls.merged", int64_t(group.size()));
    changed = true;
  }
  // Earlier consumers of the merged results now precede the slices: restore a topological order.
  if (changed) KILN_RETURN_IF_ERROR(g.topo_sort());
  return Status::Ok();
}

}  // namespace kiln::passes
