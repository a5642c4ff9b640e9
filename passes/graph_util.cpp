#include "passes/graph_util.h"

#include <algorithm>

namespace kiln::passes {

using ir::Graph;
using ir::Node;
using ir::Value;

Value* free_root(Value* v) {
  while (v && v->def && is_free(*v->def)) v = v->def->operand(0);
  return v;
}

bool has_side_effect(const Node& n) {
  if (n.has(ir::kSideEffect)) return true;
  if (n.body)
    for (const auto& b : n.body->nodes())
      if (has_side_effect(*b)) return true;
  return false;
}

std::unordered_set<const Value*> constant_values(const Graph& g) {
  std::unordered_set<const Value*> out;
  for (const auto& n : g.nodes()) {
    bool c = false;
    if (n->has(ir::kConstant)) {
      c = true;
    } else if (!n->has(ir::kSource) && !n->has(ir::kSink) && !has_side_effect(*n) &&
               !n->operands.empty()) {
      c = std::all_of(n->operands.begin(), n->operands.end(),
                      [&](const Value* o) { return out.count(o) > 0; });
    }
    if (c)
      for (const Value* r : n->results) out.insert(r);
  }
  return out;
}

std::string weight_name(const Value* v) {
  if (!v || !v->def) return "";
  const Node& n = *v->def;
  if (n.has(ir::kConstant) && n.has(ir::kSource)) {
    const ir::AttrValue* a = n.attrs.find("name");
    return a && std::holds_alternative<std::string>(*a) ? std::get<std::string>(*a) : "";
  }
  for (const Value* o : n.operands) {
    std::string s = weight_name(o);
    if (!s.empty()) return s;
  }
  return "";
}

std::vector<Node*> final_users(const Value* v, const UserMap& users) {
  std::vector<Node*> out;
  std::vector<const Value*> work = {v};
  while (!work.empty()) {
    const Value* x = work.back();
    work.pop_back();
    auto it = users.find(x);
    if (it == users.end()) continue;
    for (Node* u : it->second) {
      if (is_free(*u)) {
        work.push_back(u->result());
      } else if (std::find(out.begin(), out.end(), u) == out.end()) {
        out.push_back(u);
      }
    }
  }
  return out;
}

int remove_dead(Graph& g) {
  int removed = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    UserMap users = g.users();
    for (size_t i = g.size(); i-- > 0;) {
      Node* n = g.nodes()[i].get();
      if (n->has(ir::kSink) || has_side_effect(*n)) continue;
      if (n->op == ir::Op::Input || n->op == ir::Op::State || n->op == ir::Op::Arg) continue;
      bool used = false;
      for (Value* r : n->results) used |= users.count(r) > 0;
      if (used) continue;
      g.erase(n);
      ++removed;
      changed = true;
    }
  }
  return removed;
}

void move_name(Graph& g, Value* from, Value* to) {
  if (from->name.empty() || !to->name.empty()) return;
  std::string name = from->name;
  // Free the name first: set_value_name keeps names unique across the graph.
  g.set_value_name(from, name + ".old");
  g.set_value_name(to, name);
}

}  // namespace kiln::passes

namespace kiln::passes {

static uint64_t element_offset_bytes(const ir::TensorType& t, int64_t elems) {
  if (elems <= 0) return 0;
  return row_bytes(t.dtype, uint64_t(elems)).value_or(0);
}

// Traces a body value back to an arg through free ops and stores.
static std::optional<AliasOf> trace_to_arg(const Value* v) {
  uint64_t off = 0;
  while (v && v->def) {
    const Node& d = *v->def;
    if (d.op == ir::Op::Arg) return AliasOf{int(d.attrs.i("index")), off};
    if (is_free(d)) {
      if (const ir::AttrValue* a = d.attrs.find("offset"))
        off += element_offset_bytes(d.operand(0)->type, std::get<int64_t>(*a));
      v = d.operand(0);
    } else if (is_store(d)) {
      v = d.operand(0);
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<AliasOf> alias_of(const Node& n, int result) {
  if (is_free(n)) {
    uint64_t off = 0;
    if (const ir::AttrValue* a = n.attrs.find("offset"))
      off = element_offset_bytes(n.operand(0)->type, std::get<int64_t>(*a));
    return AliasOf{0, off};
  }
  if (is_store(n)) return AliasOf{0, 0};
  if (n.body) {
    std::vector<Node*> y = n.body->nodes_of(ir::Op::Yield);
    if (y.size() != 1 || result >= y[0]->num_operands()) return std::nullopt;
    return trace_to_arg(y[0]->operand(result));
  }
  return std::nullopt;
}

// Whether `u` may write its result over its operand slot `slot`.
static bool writes_over(const Node& u, int slot) {
  if (u.results.size() != 1) return false;
  const ir::TensorType& in = u.operand(slot)->type;
  const ir::TensorType& out = u.result()->type;
  if (in.shape != out.shape || in.bytes() != out.bytes()) return false;
  if (u.has(ir::kInPlace) && slot == 0) return true;
  return u.has(ir::kElementwise);
}

static int count_uses(const Value* v, const Node& u) {
  return int(std::count(u.operands.begin(), u.operands.end(), v));
}

std::vector<int> inplace_operands(const Node& n, int result) {
  std::vector<int> out;
  if (!n.body) {
    for (int i = 0; i < n.num_operands(); ++i)
      if (count_uses(n.operand(i), n) == 1 && writes_over(n, i)) out.push_back(i);
    return out;
  }
  std::vector<Node*> y = n.body->nodes_of(ir::Op::Yield);
  if (y.size() != 1 || result >= y[0]->num_operands()) return out;
  const Value* target = y[0]->operand(result);
  UserMap users = n.body->users();
  for (Node* a : n.body->nodes_of(ir::Op::Arg)) {
    const Value* v = a->result();
    bool ok = false;
    while (true) {
      auto it = users.find(v);
      if (it == users.end() || it->second.size() != 1) break;
      Node* u = it->second[0];
      if (count_uses(v, *u) != 1) break;
      if (u->op == ir::Op::Yield) {
        ok = v == target && v != a->result();
        break;
      }
      int slot = int(std::find(u->operands.begin(), u->operands.end(), v) - u->operands.begin());
      if (!writes_over(*u, slot)) break;
      v = u->result();
    }
    if (ok) out.push_back(int(a->attrs.i("index")));
  }
  return out;
}

}  // namespace kiln::passes
