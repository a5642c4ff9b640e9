// plan-memory: liveness over the scheduled top-level graph, then best-fit offsets in one arena.
//
// Every top-level value the runtime computes or fills per call gets arena memory: inputs are live
// from the start, outputs to the end. A view (and a store's result, and a region result that the
// body yields from an arg) aliases its operand. A result may take over the memory of an operand
// that dies at its node when the op allows it (graph_util.h: inplace_operands). Buffers are then
// placed largest first, each in the smallest gap among the buffers live at the same time (best
// fit, as TFLite's and XLA's heap simulators do), every offset a multiple of the alignment.
#include <algorithm>
#include <unordered_map>

#include "passes/graph_util.h"
#include "passes/memory_plan.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Value;

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

struct Buffer {
  uint64_t bytes = 0;  // aligned
  int first = 0, last = 0;
  bool external = false;
  uint64_t offset = 0;
};

}  // namespace

Result<MemoryPlan> plan_memory(const Graph& g, uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)))
    return make_error("alignment must be a power of two");
  const int n_nodes = int(g.size());
  auto consts = constant_values(g);

  std::unordered_map<const Value*, int> def_pos, first, last;
  for (int i = 0; i < n_nodes; ++i) {
    const Node& n = *g.nodes()[size_t(i)];
    for (const Value* r : n.results) {
      def_pos[r] = i;
      first[r] = n.op == ir::Op::Input ? 0 : i;
      last[r] = i;
    }
    for (const Value* o : n.operands) {
      if (!def_pos.count(o)) return make_error("node ", i, " reads a value not defined before it");
      last[o] = std::max(last[o], n.has(ir::kSink) ? n_nodes : i);
    }
  }

  MemoryPlan plan;
  plan.alignment = alignment;
  std::vector<Buffer> bufs;
  std::unordered_map<const Value*, int> buf_of;       // value -> buffer
  std::unordered_map<const Value*, uint64_t> off_in;  // byte offset inside its buffer
  std::unordered_map<const Value*, size_t> entry_of;  // value -> plan entry

  for (int i = 0; i < n_nodes; ++i) {
    const Node& n = *g.nodes()[size_t(i)];
    std::vector<int> claimed;
    for (int r = 0; r < int(n.results.size()); ++r) {
      const Value* v = n.results[size_t(r)];
      auto bytes = v->type.bytes();
      if (!bytes) return make_error("node ", i, ": cannot size ", v->type.str());
      PlanEntry e;
      e.node = i;
      e.result = r;
      e.bytes = *bytes;
      e.first = first[v];
      e.last = last[v];
      if (!v->name.empty()) e.name = "%" + v->name;

      auto source = [&](const Value* s) {
        e.of_node = def_pos[s];
        e.of_result = s->index;
      };
      if (consts.count(v) || n.op == ir::Op::State) {
        e.storage = Storage::kExternal;
        buf_of[v] = int(bufs.size());
        bufs.push_back({0, e.first, e.last, true, 0});
      } else if (auto a = alias_of(n, r)) {
        const Value* s = n.operand(a->operand);
        Buffer& b = bufs[size_t(buf_of[s])];
        buf_of[v] = buf_of[s];
        off_in[v] = off_in[s] + a->offset;
        b.last = std::max(b.last, e.last);
        e.storage = b.external ? Storage::kExternal : Storage::kAlias;
        source(s);
      } else {
        int reuse = -1;
        for (int slot : inplace_operands(n, r)) {
          const Value* s = n.operand(slot);
          int bi = buf_of[s];
          const Buffer& b = bufs[size_t(bi)];
          if (b.external || b.last != i || s->type.bytes() != bytes) continue;
          if (std::find(claimed.begin(), claimed.end(), bi) != claimed.end()) continue;
          reuse = slot;
          break;
        }
        if (reuse >= 0) {
          const Value* s = n.operand(reuse);
          int bi = buf_of[s];
          claimed.push_back(bi);
          buf_of[v] = bi;
          off_in[v] = off_in[s];
          bufs[size_t(bi)].last = std::max(bufs[size_t(bi)].last, e.last);
          e.storage = Storage::kInPlace;
          source(s);
        } else {
          buf_of[v] = int(bufs.size());
          off_in[v] = 0;
          bufs.push_back({align_up(*bytes, alignment), e.first, e.last, false, 0});
          e.storage = Storage::kArena;
        }
      }
      if (e.storage == Storage::kArena || e.storage == Storage::kInPlace)
        plan.naive_bytes += align_up(e.bytes, alignment);
      entry_of[v] = plan.entries.size();
      plan.entries.push_back(std::move(e));
    }
  }

  // Best-fit placement, largest buffers first.
  std::vector<int> order;
  for (int b = 0; b < int(bufs.size()); ++b)
    if (!bufs[size_t(b)].external) order.push_back(b);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const Buffer &x = bufs[size_t(a)], &y = bufs[size_t(b)];
    if (x.bytes != y.bytes) return x.bytes > y.bytes;
    if (x.first != y.first) return x.first < y.first;
    return a < b;
  });
  std::vector<int> placed;
  for (int bi : order) {
    Buffer& b = bufs[size_t(bi)];
    std::vector<const Buffer*> live;
    for (int p : placed) {
      const Buffer& o = bufs[size_t(p)];
      if (o.first <= b.last && b.first <= o.last) live.push_back(&o);
    }
    std::sort(live.begin(), live.end(),
              [](const Buffer* x, const Buffer* y) { return x->offset < y->offset; });
    uint64_t end = 0, best = 0, best_gap = ~uint64_t(0);
    for (const Buffer* o : live) {
      if (o->offset >= end + b.bytes && o->offset - end < best_gap) {
        best_gap = o->offset - end;
        best = end;
      }
      end = std::max(end, o->offset + o->bytes);
    }
    b.offset = best_gap != ~uint64_t(0) ? best : end;
    plan.arena_bytes = std::max(plan.arena_bytes, b.offset + b.bytes);
    placed.push_back(bi);
  }

  // The largest set of buffers live at one time.
  for (int t = 0; t <= n_nodes; ++t) {
    uint64_t sum = 0;
    for (const Buffer& b : bufs)
      if (!b.external && b.first <= t && t <= b.last) sum += b.bytes;
    plan.lower_bound_bytes = std::max(plan.lower_bound_bytes, sum);
  }

  for (const auto& [v, idx] : entry_of) {
    PlanEntry& e = plan.entries[idx];
    if (e.storage != Storage::kExternal) e.offset = bufs[size_t(buf_of[v])].offset + off_in[v];
  }
  return plan;
}

Status run_plan_memory(Graph& g, PassContext& ctx) {
  KILN_ASSIGN_OR_RETURN(MemoryPlan plan, plan_memory(g, ctx.options.alignment));
  ctx.stats["plan-memory.arena_bytes"] = int64_t(plan.arena_bytes);
  ctx.stats["plan-memory.naive_bytes"] = int64_t(plan.naive_bytes);
  ctx.stats["plan-memory.lower_bound_bytes"] = int64_t(plan.lower_bound_bytes);
  ctx.plan = std::move(plan);
  return Status::Ok();
}

}  // namespace kiln::passes
