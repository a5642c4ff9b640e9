// canonicalize: the cleanups every other pass can assume.
//
// - Identities are removed: a reshape or view to the operand's own shape, a permute by the
//   identity, a slice of a whole axis, a concat of one operand, a cast to the operand's own type,
//   a scale by exactly 1 that keeps the type. Nothing else is provable from the IR alone (weights
//   are opaque data, so "x * w where w is all ones" is not).
// - Free-op chains fold: reshape/view of a reshape/view is one reshape (offset 0, whole operand)
//   or one view of the root. A permute of a permute is one permute (identity: removed), and a
//   permute that keeps the order of the non-unit axes (decode's [B, 1, H, D] -> [B, H, 1, D]) is a
//   reshape, which is free. A slice of a slice along the same axis is one slice.
// - Common subexpressions merge: same op, operands, attributes and types. Never an input, a state,
//   an arg, a store, a sink, a region, or a node that reads a state or a store's result (reads of
//   the KV cache are ordered by the writes they follow). Weights merge when name and type agree.
// - Dead code goes (nodes with unused results and no side effect).
// Repeats until nothing changes.
#include <unordered_map>

#include "ir/builder.h"
#include "ir/printer.h"
#include "passes/graph_util.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Op;
using ir::Value;

bool is_identity_perm(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != int64_t(i)) return false;
  return true;
}

// Where a free op starts reading its operand, in elements.
int64_t free_offset(const Node& n) {
  const ir::AttrValue* a = n.attrs.find("offset");
  return a ? std::get<int64_t>(*a) : 0;
}

class Canonicalizer {
 public:
  Canonicalizer(Graph& g, PassContext& ctx) : g_(g), ctx_(ctx) {}

  Result<int> fold() {
    int changed = 0;
    // Snapshot: rewrites insert nodes; each inserted node is itself folded on the next round.
    std::vector<Node*> nodes;
    UserMap users = g_.users();
    for (const auto& n : g_.nodes())
      if (n->results.size() == 1 && users.count(n->result())) nodes.push_back(n.get());
    for (Node* n : nodes) {
      KILN_ASSIGN_OR_RETURN(bool c, fold_node(*n));
      changed += c;
    }
    return changed;
  }

  int cse() {
    std::unordered_map<std::string, Node*> seen;
    int merged = 0;
    for (const auto& np : g_.nodes()) {
      Node& n = *np;
      std::string key;
      if (n.has(ir::kSource)) {
        if (!n.has(ir::kConstant)) continue;
        key = std::string(n.info().name) + " " + ir::attr_value_str(*n.attrs.find("name")) + " : " +
              n.result()->type.str();
      } else {
        if (n.has(ir::kSink) || n.body || has_side_effect(n) || reads_state(n)) continue;
        key = std::string(n.info().name);
        for (Value* o : n.operands) key += " " + std::to_string(o->id);
        for (const ir::Attr& a : n.attrs.list())
          key += " " + a.name + "=" + ir::attr_value_str(a.value);
        for (Value* r : n.results) key += " : " + r->type.str();
      }
      auto [it, fresh] = seen.emplace(key, &n);
      if (fresh) continue;
      for (size_t i = 0; i < n.results.size(); ++i)
        g_.replace_all_uses(n.results[i], it->second->results[i]);
      ++merged;
    }
    return merged;
  }

 private:
  static bool reads_state(const Node& n) {
    for (Value* o : n.operands) {
      Value* r = free_root(o);
      if (r->def && (r->def->op == Op::State || is_store(*r->def))) return true;
    }
    return false;
  }

  // Replaces every use of n's result with v.
  bool replace(Node& n, Value* v, const char* what) {
    g_.replace_all_uses(n.result(), v);
    ctx_.bump(std::string("canonicalize.") + what);
    return true;
  }

  // Builds `op` before n and replaces n's result with it; keeps n's name for the new value.
  Result<bool> rewrite(Node& n, Op op, Value* operand, ir::Attrs attrs, const char* what) {
    ir::Builder b(g_);
    b.insert_before(&n);
    Value* v = b.op(op, {operand}, std::move(attrs));
    if (!v) return false;  // not expressible (e.g. a quantized view off whole rows): leave it
    move_name(g_, n.result(), v);
    return replace(n, v, what);
  }

  Result<bool> fold_node(Node& n) {
    if (n.results.size() != 1 || n.operands.empty()) return false;
    Value* x = n.operand(0);
    const ir::TensorType& out = n.result()->type;
    // Identities.
    if (n.num_operands() == 1 && out == x->type) {
      if (is_free(n) && free_offset(n) == 0) return replace(n, x, "identity");
      switch (n.op) {
        case Op::Permute:
          if (is_identity_perm(n.attrs.ints("perm"))) return replace(n, x, "identity");
          break;
        case Op::Slice:
        case Op::Concat:
        case Op::Cast:
          return replace(n, x, "identity");
        case Op::Scale:
          if (n.attrs.f("scale") == 1.0) return replace(n, x, "identity");
          break;
        default:
          break;
      }
    }
    Node* d = x->def;
    // Free-op chains: one free op on the root.
    if (is_free(n) && d && is_free(*d)) {
      Value* root = d->operand(0);
      int64_t off = free_offset(n) + free_offset(*d);
      if (off == 0 && out.numel() == root->type.numel())
        return rewrite(n, Op::Reshape, root, {{"shape", out.shape}}, "fold_free");
      return rewrite(n, Op::View, root, {{"offset", off}, {"shape", out.shape}}, "fold_free");
    }
    if (n.op == Op::Permute) {
      const auto& p2 = n.attrs.ints("perm");
      if (d && d->op == Op::Permute) {
        const auto& p1 = d->attrs.ints("perm");
        std::vector<int64_t> c(p2.size());
        for (size_t j = 0; j < p2.size(); ++j) c[j] = p1[size_t(p2[j])];
        if (is_identity_perm(c)) return replace(n, d->operand(0), "fold_permute");
        return rewrite(n, Op::Permute, d->operand(0), {{"perm", c}}, "fold_permute");
      }
      // Moving only unit axes keeps the element order: a reshape.
      int64_t prev = -1;
      bool ordered = true;
      for (int64_t a : p2) {
        if (x->type.shape[size_t(a)] == 1) continue;
        ordered &= a > prev;
        prev = a;
      }
      if (ordered) return rewrite(n, Op::Reshape, x, {{"shape", out.shape}}, "permute_to_reshape");
    }
    if (n.op == Op::Slice && d && d->op == Op::Slice && d->attrs.i("axis") == n.attrs.i("axis")) {
      return rewrite(n, Op::Slice, d->operand(0),
                     {{"axis", n.attrs.i("axis")},
                      {"start", n.attrs.i("start") + d->attrs.i("start")},
                      {"size", n.attrs.i("size")}},
                     "fold_slice");
    }
    return false;
  }

  Graph& g_;
  PassContext& ctx_;
};

}  // namespace

Status run_canonicalize(Graph& g, PassContext& ctx) {
  Canonicalizer c(g, ctx);
  for (int round = 0; round < 64; ++round) {
    KILN_ASSIGN_OR_RETURN(int folded, c.fold());
    int merged = c.cse();
    ctx.bump("canonicalize.cse", merged);
    int dead = remove_dead(g);
    ctx.bump("canonicalize.dead", dead);
    if (folded + merged + dead == 0) return Status::Ok();
  }
  return Status::Ok();  // a fixpoint not reached in 64 rounds is still a valid graph
}

}  // namespace kiln::passes
