// fuse: groups the compute nodes of the top-level graph into regions, one kernel each, by op
// traits alone (docs/passes.md has the rules and the reasons). Every op is classified from its
// traits; nodes are visited in schedule order and each joins the group of one of its producers
// when the producer's kernel can compute it without a second pass over memory:
//
//   pointwise / data movement / store  -> joins any non-opaque producer (an epilogue)
//   row-local (rope) / reduction        -> joins a data-parallel or reduction producer; joins a
//                                          contraction only when its rows (a head) fit a tile
//   contraction                         -> starts a group; takes its activation's producer as a
//                                          prologue when that is a row normalization (O(K) per
//                                          row and tile to recompute), copied into every
//                                          contraction that reads it
//   opaque (attention)                  -> starts a group; takes producers that only move data
//                                          for it
//   gather (data movement by index)     -> starts a group
//   free (reshape, view)                -> no kernel: stays at the top level, and is copied
//                                          into a body that needs it between two member ops
//
// A join is refused when it would make the group graph cyclic. Every group becomes a `region`
// node whose body holds its ops (args, body, yield); after fuse, kernels = regions.
#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <unordered_map>

#include "passes/graph_util.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Op;
using ir::Value;

enum class Kind : uint8_t {
  kTop,  // sources, sinks, regions, derived constants: not fused
  kFree,
  kPointwise,
  kRowLocal,
  kMovement,
  kGather,
  kReduction,
  kContraction,
  kStore,
  kOpaque,
};

// What a group's kernel iterates over; a consumer joins according to it.
enum class Anchor : uint8_t { kParallel, kReduction, kContraction, kOpaque };

struct Group {
  Anchor anchor = Anchor::kParallel;
  Node* anchor_node = nullptr;
  std::vector<Node*> nodes;    // own nodes, schedule order
  std::vector<int> prologues;  // absorbed groups whose nodes are copied in
  std::set<int> preds;         // groups this one reads from
  int64_t row = 0;             // longest whole row the kernel holds
  bool alive = true;
  bool absorbed = false;  // a prologue copied into its consumers
  std::string scope;
};

int64_t row_of(const Node& n) {
  return n.operand(0)->type.rank() ? n.operand(0)->type.dim(-1) : 1;
}

bool is_blk_scope(const std::string& s) {
  return s.rfind("blk", 0) == 0 && s.size() > 3 && std::isdigit(static_cast<unsigned char>(s[3]));
}

// "blk.12.attn_q.weight" -> "blk12"; "blk12.q" -> "blk12"; else "".
std::string layer_scope(const std::string& name) {
  size_t i = 0;
  if (name.rfind("blk.", 0) == 0)
    i = 4;
  else if (name.rfind("blk", 0) == 0)
    i = 3;
  else
    return "";
  size_t j = i;
  while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
  if (j == i || j >= name.size() || name[j] != '.') return "";
  return "blk" + name.substr(i, j - i);
}

class Fuser {
 public:
  Fuser(Graph& g, PassContext& ctx) : g_(g), ctx_(ctx), opt_(ctx.options) {}

  Status run() {
    consts_ = constant_values(g_);
    users_ = g_.users();
    for (const auto& n : g_.nodes()) {
      pos_[n.get()] = int(order_.size());
      order_.push_back(n.get());
    }
    for (Node* n : order_) visit(*n);
    return build();
  }

 private:
  Kind kind(const Node& n) const {
    if (n.has(ir::kSource) || n.has(ir::kSink) || n.body || n.results.empty()) return Kind::kTop;
    if (consts_.count(n.result())) return Kind::kTop;
    if (is_free(n)) return Kind::kFree;
    if (is_store(n)) return Kind::kStore;
    if (n.has(ir::kOpaque)) return Kind::kOpaque;
    if (n.has(ir::kContraction)) return Kind::kContraction;
    if (n.has(ir::kReduction)) return Kind::kReduction;
    if (n.has(ir::kElementwise)) return n.has(ir::kRowLocal) ? Kind::kRowLocal : Kind::kPointwise;
    if (n.has(ir::kDataMovement)) {
      for (const Value* o : n.operands)
        if (is_integer(o->type.dtype)) return Kind::kGather;  // positions depend on data
      return Kind::kMovement;
    }
    return Kind::kOpaque;  // traits we do not know how to fuse: a kernel of its own
  }

  int group_of(Value* v) const {
    Value* r = free_root(v);
    if (!r || !r->def) return -1;
    auto it = group_of_.find(r->def);
    return it == group_of_.end() ? -1 : it->second;
  }

  // Whether group `from` reads (transitively) from group `to`.
  bool depends_on(int from, int to) const {
    std::vector<int> work = {from};
    std::set<int> seen;
    while (!work.empty()) {
      int x = work.back();
      work.pop_back();
      if (x == to) return true;
      if (!seen.insert(x).second) continue;
      for (int p : groups_[size_t(x)].preds) work.push_back(p);
    }
    return false;
  }

  bool accepts(const Group& gr, const Node& c, Kind k) const {
    if (gr.anchor == Anchor::kOpaque) return false;
    switch (k) {
      case Kind::kPointwise:
      case Kind::kMovement:
      case Kind::kStore:
        return true;
      case Kind::kRowLocal:
        return gr.anchor != Anchor::kContraction || row_of(c) <= opt_.epilogue_max_row;
      case Kind::kReduction:
        if (gr.anchor == Anchor::kContraction) return row_of(c) <= opt_.epilogue_max_row;
        if (gr.anchor == Anchor::kReduction) {
          int64_t r = row_of(c);
          return gr.row <= 0 || gr.row % r == 0 || r % gr.row == 0;
        }
        return true;
      default:
        return false;
    }
  }

  std::set<int> operand_groups(const Node& n) const {
    std::set<int> s;
    for (Value* o : n.operands) {
      int h = group_of(o);
      if (h >= 0) s.insert(h);
    }
    return s;
  }

  void add_preds(int gid, const std::set<int>& from) {
    for (int h : from) {
      if (h == gid) continue;
      const Group& p = groups_[size_t(h)];
      if (p.absorbed)
        groups_[size_t(gid)].preds.insert(p.preds.begin(), p.preds.end());
      else
        groups_[size_t(gid)].preds.insert(h);
    }
  }

  int new_group(Node& n, Anchor a) {
    int gid = int(groups_.size());
    groups_.push_back(Group{});
    Group& gr = groups_.back();
    gr.anchor = a;
    gr.anchor_node = &n;
    gr.nodes.push_back(&n);
    if (n.has(ir::kReduction) || n.has(ir::kRowLocal)) gr.row = row_of(n);
    group_of_[&n] = gid;
    add_preds(gid, operand_groups(n));
    return gid;
  }

  void join(int gid, Node& n, Kind k) {
    Group& gr = groups_[size_t(gid)];
    gr.nodes.push_back(&n);
    group_of_[&n] = gid;
    if (k == Kind::kReduction && gr.anchor == Anchor::kParallel) gr.anchor = Anchor::kReduction;
    if (k == Kind::kReduction || k == Kind::kRowLocal) gr.row = std::max(gr.row, row_of(n));
    add_preds(gid, operand_groups(n));
  }

  // Values of the group's own nodes read outside `members` (through free ops), schedule order.
  std::vector<Value*> exports(const Group& gr, const std::set<const Node*>& members) const {
    std::vector<Value*> out;
    for (Node* n : gr.nodes)
      for (Value* r : n->results)
        for (Node* u : final_users(r, users_))
          if (!members.count(u)) {
            out.push_back(r);
            break;
          }
    return out;
  }

  std::set<const Node*> members(const Group& gr) const {
    std::set<const Node*> m(gr.nodes.begin(), gr.nodes.end());
    for (int p : gr.prologues)
      m.insert(groups_[size_t(p)].nodes.begin(), groups_[size_t(p)].nodes.end());
    return m;
  }

  // A row normalization (or any O(1)-per-element chain) that every reader takes as the
  // activation of a contraction can be recomputed in each contraction's prologue.
  bool prologue_ok(int pid) const {
    const Group& p = groups_[size_t(pid)];
    if (!p.alive || p.anchor == Anchor::kContraction || p.anchor == Anchor::kOpaque) return false;
    std::vector<int64_t> rows;
    for (Node* n : p.nodes) {
      Kind k = kind(*n);
      if (k == Kind::kReduction)
        rows.push_back(row_of(*n));
      else if (k != Kind::kPointwise && k != Kind::kRowLocal && k != Kind::kGather)
        return false;
    }
    std::vector<Value*> ex = exports(p, members(p));
    if (ex.size() != 1) return false;
    Value* x = ex[0];
    for (Node* u : final_users(x, users_)) {
      if (kind(*u) != Kind::kContraction || free_root(u->operand(0)) != x ||
          free_root(u->operand(1)) == x)
        return false;
      int64_t k = u->operand(0)->type.dim(-1);
      for (int64_t r : rows)
        if (r <= 0 || k % r) return false;  // normalized rows must tile the K axis
      for (Value* v = u->operand(0); v != x; v = v->def->operand(0))
        if (const ir::AttrValue* off = v->def->attrs.find("offset"))
          if (std::get<int64_t>(*off) % k) return false;
      int64_t m = u->operand(0)->type.numel() / k;
      if (opt_.prologue_max_rows > 0 && m > opt_.prologue_max_rows) return false;
    }
    return true;
  }

  // Whether a reduction's result, after a chain of pointwise and row-local ops that would join
  // it, is read only as the activation of contractions.
  bool prologue_bound(const Node& n) const {
    Value* v = n.result();
    for (int steps = 0; steps < 64; ++steps) {
      std::vector<Node*> us = final_users(v, users_);
      if (us.empty()) return false;
      bool all = std::all_of(us.begin(), us.end(), [&](Node* u) {
        return kind(*u) == Kind::kContraction && free_root(u->operand(0)) == v &&
               free_root(u->operand(1)) != v;
      });
      if (all) return true;
      if (us.size() != 1) return false;
      Kind k = kind(*us[0]);
      if (k != Kind::kPointwise && k != Kind::kRowLocal) return false;
      v = us[0]->result();
    }
    return false;
  }

  void absorb(int gid, int pid) {
    Group& p = groups_[size_t(pid)];
    p.alive = false;
    p.absorbed = true;
    Group& gr = groups_[size_t(gid)];
    gr.prologues.push_back(pid);
    gr.preds.erase(pid);
    gr.preds.insert(p.preds.begin(), p.preds.end());
  }

  bool cycle_free(int pid, const Node& c) const {
    for (int h : operand_groups(c))
      if (h != pid && !groups_[size_t(h)].absorbed && depends_on(h, pid)) return false;
    return true;
  }

  void visit(Node& n) {
    Kind k = kind(n);
    switch (k) {
      case Kind::kTop:
      case Kind::kFree:
        return;
      case Kind::kGather:
        new_group(n, Anchor::kParallel);
        return;
      case Kind::kContraction: {
        int gid = new_group(n, Anchor::kContraction);
        int pid = group_of(n.operand(0));
        if (pid < 0 || pid == gid) return;
        if (groups_[size_t(pid)].absorbed || (prologue_ok(pid) && cycle_free(pid, n))) {
          if (!groups_[size_t(pid)].absorbed) ctx_.bump("fuse.prologues");
          absorb(gid, pid);
        }
        return;
      }
      case Kind::kOpaque: {
        int gid = new_group(n, Anchor::kOpaque);
        for (int pid : operand_groups(n)) {
          if (pid == gid) continue;
          Group& p = groups_[size_t(pid)];
          if (!p.alive || p.anchor != Anchor::kParallel) continue;
          bool moves_only = std::all_of(p.nodes.begin(), p.nodes.end(), [&](Node* m) {
            return kind(*m) == Kind::kMovement || kind(*m) == Kind::kGather;
          });
          bool only_here = true;
          for (Value* x : exports(p, members(p)))
            for (Node* u : final_users(x, users_)) only_here &= u == &n;
          if (!moves_only || !only_here || !cycle_free(pid, n)) continue;
          // The data movement becomes part of this kernel (not a copy: nothing else reads it).
          Group& gr = groups_[size_t(gid)];
          for (Node* m : p.nodes) group_of_[m] = gid;
          gr.nodes.insert(gr.nodes.begin(), p.nodes.begin(), p.nodes.end());
          gr.preds.erase(pid);
          gr.preds.insert(p.preds.begin(), p.preds.end());
          p.alive = false;
          p.nodes.clear();
          ctx_.bump("fuse.opaque_prologues");
        }
        return;
      }
      default:
        break;
    }
    // A normalization headed for contractions' prologues does not join a producer whose value
    // others read too (the embedding feeding both the first norm and the residual): that would
    // make the producer write two vectors where the prologue needs none.
    if (k == Kind::kReduction && prologue_bound(n) &&
        final_users(free_root(n.operand(0)), users_).size() > 1) {
      new_group(n, Anchor::kReduction);
      return;
    }
    std::set<int> cands = operand_groups(n);
    for (auto it = cands.rbegin(); it != cands.rend(); ++it) {
      int h = *it;
      const Group& gr = groups_[size_t(h)];
      if (!gr.alive || !accepts(gr, n, k)) continue;
      bool cyclic = false;
      for (int other : cands)
        if (other != h && depends_on(other, h)) cyclic = true;
      if (cyclic) continue;
      join(h, n, k);
      return;
    }
    new_group(n, k == Kind::kReduction ? Anchor::kReduction : Anchor::kParallel);
  }

  // Names: "<output name>.kJ" for a kernel that makes a graph result ("logits.k0"), else
  // "blkN.kJ" for a layer's kernels (N from a "blk.N." weight or a "blkN." value the kernel
  // touches), else
  // "<anchor weight>.kJ" ("token_embd.k0"), else the layer of the kernel that feeds it, else
  // "<anchor op>.kJ".
  std::string scope(int gid) {
    Group& gr = groups_[size_t(gid)];
    if (!gr.scope.empty()) return gr.scope;
    // A kernel that makes a graph result is named after it ("logits": the head, whichever
    // weight it reads, and whatever layer ops ride in its prologue).
    for (Node* n : gr.nodes)
      for (Value* r : n->results)
        for (Node* u : final_users(r, users_))
          if (u->has(ir::kSink))
            if (const ir::AttrValue* a = u->attrs.find("name");
                a && std::holds_alternative<std::string>(*a))
              if (std::string s = std::get<std::string>(*a);
                  !s.empty() && s.find_first_of(" \"") == std::string::npos)
                return gr.scope = s;
    std::vector<Node*> all(gr.nodes);
    for (int p : gr.prologues)
      all.insert(all.end(), groups_[size_t(p)].nodes.begin(), groups_[size_t(p)].nodes.end());
    for (Node* n : all)
      for (Value* o : n->operands)
        if (consts_.count(o))
          if (std::string s = layer_scope(weight_name(o)); !s.empty()) return gr.scope = s;
    for (Node* n : all)
      for (Value* r : n->results)
        if (std::string s = layer_scope(r->name); !s.empty()) return gr.scope = s;
    for (Value* o : gr.anchor_node->operands)
      if (consts_.count(o)) {
        std::string w = weight_name(o);
        if (!w.empty()) return gr.scope = w.substr(0, w.find('.'));
      }
    for (int p : gr.preds)
      if (groups_[size_t(p)].alive)
        if (std::string s = scope(p); is_blk_scope(s)) return gr.scope = s;
    return gr.scope = std::string(gr.anchor_node->info().name);
  }

  Status build();

  Graph& g_;
  PassContext& ctx_;
  const PassOptions& opt_;
  std::unordered_set<const Value*> consts_;
  UserMap users_;
  std::vector<Node*> order_;
  std::unordered_map<const Node*, int> pos_;
  std::unordered_map<const Node*, int> group_of_;
  std::vector<Group> groups_;
};

Status Fuser::build() {
  std::vector<int> live;
  for (int i = 0; i < int(groups_.size()); ++i)
    if (groups_[size_t(i)].alive) live.push_back(i);
  auto last_pos = [&](int gid) { return pos_[groups_[size_t(gid)].nodes.back()]; };
  for (int gid : live) {
    auto& nodes = groups_[size_t(gid)].nodes;
    std::sort(nodes.begin(), nodes.end(), [&](Node* a, Node* b) { return pos_[a] < pos_[b]; });
  }
  std::sort(live.begin(), live.end(), [&](int a, int b) { return last_pos(a) < last_pos(b); });

  struct Built {
    Node* region;
    std::vector<Value*> exports;
  };
  std::vector<Built> built;
  std::unordered_map<std::string, int> counters;
  for (int gid : live) {
    Group& gr = groups_[size_t(gid)];
    std::set<const Node*> mem = members(gr);
    std::vector<Node*> body_nodes;
    for (const Node* m : mem) body_nodes.push_back(const_cast<Node*>(m));
    std::sort(body_nodes.begin(), body_nodes.end(),
              [&](const Node* a, const Node* b) { return pos_[a] < pos_[b]; });
    std::vector<Value*> ex = exports(gr, mem);
    bool effect = std::any_of(body_nodes.begin(), body_nodes.end(),
                              [](const Node* n) { return has_side_effect(*n); });
    if (ex.empty() && !effect) continue;  // nothing reads it: it simply goes

    // Operands from outside, in first-use order; free ops whose root is inside are copied.
    std::vector<Value*> ext;
    std::unordered_map<const Value*, Value*> vmap;
    std::function<void(Value*)> collect = [&](Value* v) {
      if (mem.count(v->def) || std::find(ext.begin(), ext.end(), v) != ext.end()) return;
      if (is_free(*v->def) && mem.count(free_root(v)->def)) return collect(v->def->operand(0));
      ext.push_back(v);
    };
    for (Node* n : body_nodes)
      for (Value* o : n->operands) collect(o);

    std::string sc = scope(gid);
    std::string name = sc + ".k" + std::to_string(counters[sc]++);
    auto body = std::make_unique<Graph>(name);
    for (size_t i = 0; i < ext.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(Node * a,
                            body->add_node(Op::Arg, {}, {{"index", int64_t(i)}}, {ext[i]->type}));
      vmap[ext[i]] = a->result();
    }
    std::function<Result<Value*>(Value*)> get = [&](Value* v) -> Result<Value*> {
      auto it = vmap.find(v);
      if (it != vmap.end()) return it->second;
      // A free op between two members: copy it into the body.
      Node& f = *v->def;
      KILN_ASSIGN_OR_RETURN(Value * src, get(f.operand(0)));
      KILN_ASSIGN_OR_RETURN(Node * c, body->add_node(f.op, {src}, f.attrs, {v->type}));
      if (!v->name.empty()) body->set_value_name(c->result(), v->name);
      return vmap[v] = c->result();
    };
    for (Node* n : body_nodes) {
      std::vector<Value*> ops;
      for (Value* o : n->operands) {
        KILN_ASSIGN_OR_RETURN(Value * b, get(o));
        ops.push_back(b);
      }
      std::vector<ir::TensorType> types;
      for (Value* r : n->results) types.push_back(r->type);
      KILN_ASSIGN_OR_RETURN(Node * c, body->add_node(n->op, ops, n->attrs, types));
      for (size_t i = 0; i < n->results.size(); ++i) {
        vmap[n->results[i]] = c->results[i];
        if (!n->results[i]->name.empty()) body->set_value_name(c->results[i], n->results[i]->name);
      }
    }
    std::vector<Value*> yields;
    std::vector<ir::TensorType> types;
    for (Value* e : ex) {
      yields.push_back(vmap.at(e));
      types.push_back(e->type);
    }
    KILN_RETURN_IF_ERROR(body->add_node(Op::Yield, yields, {}, {}).status());
    KILN_ASSIGN_OR_RETURN(
        Node * region, g_.insert_node(gr.nodes.back(), Op::Region, ext, {{"name", name}}, types));
    region->body = std::move(body);
    built.push_back({region, ex});
    ctx_.bump("fuse.regions");
    if (mem.size() > 1) ctx_.bump("fuse.fused_ops", int64_t(mem.size()));
  }

  for (const Built& b : built)
    for (size_t i = 0; i < b.exports.size(); ++i)
      g_.replace_all_uses(b.exports[i], b.region->results[i]);
  for (const Built& b : built)
    for (size_t i = 0; i < b.exports.size(); ++i) move_name(g_, b.exports[i], b.region->results[i]);
  std::vector<Node*> dead;
  for (const auto& [n, gid] : group_of_) dead.push_back(const_cast<Node*>(n));
  for (Node* n : dead) g_.erase(n);

  // Free ops that only led from one member to another are now unused at the top level (and read
  // erased values).
  for (bool changed = true; changed;) {
    changed = false;
    UserMap users = g_.users();
    for (size_t i = g_.size(); i-- > 0;) {
      Node* n = g_.nodes()[i].get();
      if (is_free(*n) && !users.count(n->result())) {
        g_.erase(n);
        changed = true;
      }
    }
  }
  return g_.topo_sort();
}

}  // namespace

Status run_fuse(Graph& g, PassContext& ctx) {
  return Fuser(g, ctx).run();
}

}  // namespace kiln::passes
