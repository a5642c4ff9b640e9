#include "passes/stats.h"

#include <algorithm>
#include <cstdio>

#include "passes/graph_util.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Value;

uint64_t bytes_of(const ir::TensorType& t) {
  return t.bytes().value_or(0);
}

// What a store writes: its data operand's elements in the destination's format.
uint64_t store_bytes(const Node& s) {
  ir::TensorType t{s.operand(0)->type.dtype, s.operand(1)->type.shape};
  return bytes_of(t);
}

// Arithmetic of one op (not a region); a rough count, by traits.
double op_flops(const Node& n) {
  if (n.has(ir::kSource) || n.has(ir::kSink) || is_free(n) || n.results.empty()) return 0;
  const ir::TensorType& out = n.result()->type;
  if (n.has(ir::kContraction))
    return 2.0 * double(out.numel()) * double(n.operand(0)->type.dim(-1));
  if (n.op == ir::Op::Attention) {  // q·k and p·v over the whole context
    const auto &q = n.operand(0)->type, &k = n.operand(1)->type, &v = n.operand(2)->type;
    return 2.0 * double(q.dim(0) * q.dim(1) * q.dim(2)) * double(k.dim(1)) *
           double(q.dim(3) + v.dim(3));
  }
  if (n.has(ir::kReduction) || n.has(ir::kRowLocal))
    return 3.0 * double(n.operand(0)->type.numel());
  if (n.has(ir::kElementwise)) return double(out.numel());
  return 0;
}

double body_flops(const Graph& g) {
  double f = 0;
  for (const auto& n : g.nodes()) f += n->body ? body_flops(*n->body) : op_flops(*n);
  return f;
}

}  // namespace

int64_t GraphStats::layers() const {
  int64_t n = 0;
  for (const auto& [s, k] : kernels_by_scope) n += s.rfind("blk", 0) == 0;
  return n;
}

int64_t GraphStats::max_kernels_per_layer() const {
  int64_t m = 0;
  for (const auto& [s, k] : kernels_by_scope)
    if (s.rfind("blk", 0) == 0) m = std::max(m, k);
  return m;
}

int64_t GraphStats::min_kernels_per_layer() const {
  int64_t m = -1;
  for (const auto& [s, k] : kernels_by_scope)
    if (s.rfind("blk", 0) == 0) m = m < 0 ? k : std::min(m, k);
  return std::max<int64_t>(m, 0);
}

GraphStats graph_stats(const Graph& g) {
  GraphStats s;
  auto consts = constant_values(g);
  std::unordered_set<const Value*> weights_read;
  for (const auto& np : g.nodes()) {
    const Node& n = *np;
    ++s.nodes;
    if (n.body) s.body_nodes += int64_t(n.body->size());
    if (n.op == ir::Op::Input && n.attrs.s("name") == "tokens")
      s.tokens = std::max<int64_t>(1, n.result()->type.numel());
    bool kernel = n.body || !(n.has(ir::kSource) || n.has(ir::kSink) || is_free(n) ||
                              (!n.results.empty() && consts.count(n.result())));
    if (!kernel) continue;
    ++s.kernels;
    std::string scope;
    if (n.body) {
      const std::string& name = n.attrs.s("name");
      size_t k = name.rfind(".k");
      scope = k == std::string::npos ? name : name.substr(0, k);
    }
    s.kernels_by_scope[scope]++;
    s.flops += n.body ? body_flops(*n.body) : op_flops(n);

    // Reads: constants once per graph; activations per kernel, except a store's destination.
    for (int i = 0; i < n.num_operands(); ++i) {
      const Value* o = n.operand(i);
      if (consts.count(o)) {
        if (weights_read.insert(o).second) s.weight_bytes += bytes_of(o->type);
        continue;
      }
      bool dest_only = false;
      if (is_store(n)) dest_only = i == 0;
      if (n.body) {
        for (Node* a : n.body->nodes_of(ir::Op::Arg)) {
          if (a->attrs.i("index") != i) continue;
          auto users = n.body->users();
          auto it = users.find(a->result());
          dest_only =
              it != users.end() && std::all_of(it->second.begin(), it->second.end(), [&](Node* u) {
                return is_store(*u) && u->operand(0) == a->result() &&
                       std::count(u->operands.begin(), u->operands.end(), a->result()) == 1;
              });
        }
      }
      if (!dest_only) s.activation_bytes += bytes_of(o->type);
    }
    // Writes: results, except that a store writes only its data.
    for (int r = 0; r < int(n.results.size()); ++r) {
      if (is_store(n)) {
        s.activation_bytes += store_bytes(n);
      } else if (n.body && alias_of(n, r)) {
        for (const auto& b : n.body->nodes())
          if (is_store(*b)) s.activation_bytes += store_bytes(*b);
      } else {
        s.activation_bytes += bytes_of(n.results[size_t(r)]->type);
      }
    }
  }
  return s;
}

static std::string human(double b) {
  char buf[48];
  if (b >= double(1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
  else if (b >= double(1ull << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string format_stats(const GraphStats& s, const MemoryPlan* plan) {
  char buf[256];
  std::string out;
  std::snprintf(buf, sizeof buf, "nodes: %lld top-level, %lld inside regions\n", (long long)s.nodes,
                (long long)s.body_nodes);
  out += buf;
  std::snprintf(buf, sizeof buf, "kernels: %lld", (long long)s.kernels);
  out += buf;
  if (s.layers() > 0) {
    std::snprintf(buf, sizeof buf, " (%lld layers, %lld..%lld kernels per layer",
                  (long long)s.layers(), (long long)s.min_kernels_per_layer(),
                  (long long)s.max_kernels_per_layer());
    out += buf;
    std::string rest;
    for (const auto& [scope, k] : s.kernels_by_scope)
      if (scope.rfind("blk", 0) != 0)
        rest += ", " + (scope.empty() ? std::string("unnamed") : scope) + " " + std::to_string(k);
    out += rest + ")";
  }
  out += "\n";
  if (plan) {
    std::snprintf(buf, sizeof buf,
                  "arena: %llu bytes (%s); naive %llu (%s); lower bound %llu (%s)\n",
                  (unsigned long long)plan->arena_bytes, human(double(plan->arena_bytes)).c_str(),
                  (unsigned long long)plan->naive_bytes, human(double(plan->naive_bytes)).c_str(),
                  (unsigned long long)plan->lower_bound_bytes,
                  human(double(plan->lower_bound_bytes)).c_str());
    out += buf;
  }
  double t = double(s.tokens);
  std::snprintf(
      buf, sizeof buf,
      "per token (%lld tokens per run): %.4g FLOPs; %s moved (weights %s, activations %s)\n",
      (long long)s.tokens, s.flops / t,
      human(double(s.weight_bytes + s.activation_bytes) / t).c_str(),
      human(double(s.weight_bytes) / t).c_str(), human(double(s.activation_bytes) / t).c_str());
  out += buf;
  return out;
}

}  // namespace kiln::passes
