#include "ir/graph.h"

#include <algorithm>
#include <unordered_set>

namespace kiln::ir {

Value* Graph::new_value(TensorType t, Node* def, int index) {
  auto v = std::make_unique<Value>();
  v->id = next_id_++;
  v->type = std::move(t);
  v->def = def;
  v->index = index;
  values_.push_back(std::move(v));
  return values_.back().get();
}

Result<std::unique_ptr<Node>> Graph::make_node(Op op, std::vector<Value*> operands, Attrs attrs,
                                               std::vector<TensorType> result_types) {
  KILN_RETURN_IF_ERROR(normalize_attrs(op, attrs));
  auto n = std::make_unique<Node>();
  n->op = op;
  n->operands = std::move(operands);
  n->attrs = std::move(attrs);
  for (size_t i = 0; i < result_types.size(); ++i)
    n->results.push_back(new_value(std::move(result_types[i]), n.get(), int(i)));
  return n;
}

Result<Node*> Graph::add_node(Op op, std::vector<Value*> operands, Attrs attrs,
                              std::vector<TensorType> result_types) {
  KILN_ASSIGN_OR_RETURN(
      auto n, make_node(op, std::move(operands), std::move(attrs), std::move(result_types)));
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

Result<Node*> Graph::insert_node(Node* pos, Op op, std::vector<Value*> operands, Attrs attrs,
                                 std::vector<TensorType> result_types) {
  KILN_ASSIGN_OR_RETURN(
      auto n, make_node(op, std::move(operands), std::move(attrs), std::move(result_types)));
  auto it =
      std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == pos; });
  Node* raw = n.get();
  nodes_.insert(it, std::move(n));
  return raw;
}

void Graph::replace_all_uses(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& o : n->operands)
      if (o == from) o = to;
}

std::unordered_map<const Value*, std::vector<Node*>> Graph::users() const {
  std::unordered_map<const Value*, std::vector<Node*>> u;
  for (const auto& n : nodes_)
    for (Value* o : n->operands) {
      auto& list = u[o];
      if (list.empty() || list.back() != n.get()) list.push_back(n.get());
    }
  return u;
}

std::unordered_map<const Node*, size_t> Graph::positions() const {
  std::unordered_map<const Node*, size_t> p;
  for (size_t i = 0; i < nodes_.size(); ++i) p[nodes_[i].get()] = i;
  return p;
}

// A node has a side effect when its op does or, for a region, when anything in its body does
// (a fused kv_write keeps its region alive even when nobody reads the region's results).
static bool has_side_effect(const Node& n) {
  if (n.has(kSideEffect)) return true;
  if (n.body)
    for (const auto& b : n.body->nodes())
      if (has_side_effect(*b)) return true;
  return false;
}

int Graph::remove_dead_nodes() {
  int removed = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    auto u = users();
    for (size_t i = nodes_.size(); i-- > 0;) {
      Node* n = nodes_[i].get();
      if (has_side_effect(*n) || n->has(kSink)) continue;
      // Inputs and states are part of the graph's interface even when unused.
      if (n->op == Op::Input || n->op == Op::State || n->op == Op::Arg) continue;
      bool used = false;
      for (Value* r : n->results) used |= u.count(r) > 0;
      if (used) continue;
      erase(n);
      ++removed;
      changed = true;
    }
  }
  return removed;
}

void Graph::erase(Node* n) {
  for (Value* r : n->results)
    if (!r->name.empty()) by_name_.erase(r->name);
  std::unordered_set<const Value*> dead(n->results.begin(), n->results.end());
  nodes_.erase(
      std::remove_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == n; }),
      nodes_.end());
  values_.erase(std::remove_if(values_.begin(), values_.end(),
                               [&](const auto& v) { return dead.count(v.get()) > 0; }),
                values_.end());
}

Status Graph::topo_sort() {
  // Kahn's algorithm, taking ready nodes in their current order so the sort is stable.
  std::unordered_map<const Node*, int> pending;
  std::unordered_map<const Value*, std::vector<Node*>> u = users();
  for (auto& n : nodes_) {
    std::unordered_set<const Node*> deps;
    for (Value* o : n->operands) deps.insert(o->def);
    pending[n.get()] = int(deps.size());
  }
  std::vector<std::unique_ptr<Node>> out;
  std::vector<std::unique_ptr<Node>> rest = std::move(nodes_);
  nodes_.clear();
  while (!rest.empty()) {
    auto it = std::find_if(rest.begin(), rest.end(),
                           [&](const auto& n) { return pending[n.get()] == 0; });
    if (it == rest.end()) {
      nodes_ = std::move(out);
      for (auto& r : rest) nodes_.push_back(std::move(r));
      return make_error("graph ", name_, ": cycle in the dataflow graph");
    }
    Node* n = it->get();
    std::unordered_set<const Node*> released;
    for (Value* r : n->results)
      for (Node* user : u[r])
        if (released.insert(user).second) pending[user]--;
    out.push_back(std::move(*it));
    rest.erase(it);
  }
  nodes_ = std::move(out);
  return Status::Ok();
}

Value* Graph::find_value(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  if (!name.empty() && name[0] == '%') {
    for (const auto& v : values_)
      if ("%" + std::to_string(v->id) == name) return v.get();
  }
  return nullptr;
}

void Graph::set_value_name(Value* v, const std::string& base) {
  if (!v->name.empty()) by_name_.erase(v->name);
  std::string name = base;
  for (int k = 1; by_name_.count(name) || name.empty(); ++k) name = base + "." + std::to_string(k);
  v->name = name;
  by_name_[name] = v;
}

std::vector<Node*> Graph::nodes_of(Op op) const {
  std::vector<Node*> out;
  for (const auto& n : nodes_)
    if (n->op == op) out.push_back(n.get());
  return out;
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>(name_);
  std::unordered_map<const Value*, Value*> map;
  for (const auto& n : nodes_) {
    auto c = std::make_unique<Node>();
    c->op = n->op;
    c->attrs = n->attrs;
    for (Value* o : n->operands) c->operands.push_back(map.count(o) ? map[o] : o);
    for (Value* r : n->results) {
      Value* nv = g->new_value(r->type, c.get(), r->index);
      nv->id = r->id;
      if (!r->name.empty()) {
        nv->name = r->name;
        g->by_name_[r->name] = nv;
      }
      map[r] = nv;
    }
    if (n->body) c->body = n->body->clone();
    g->nodes_.push_back(std::move(c));
  }
  g->next_id_ = next_id_;
  return g;
}

}  // namespace kiln::ir
