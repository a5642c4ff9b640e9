// The memory plan: where every intermediate of a scheduled top-level graph lives. One arena holds
// every value the runtime computes or fills per call (inputs and outputs included); weights,
// derived constants and states (the KV cache) live elsewhere and are marked external.
//
// Entries are keyed by (node position in the top-level schedule, result index), so a plan
// printed next to its graph still applies after print -> parse. Text form (docs/passes.md):
//
//   // plan arena=4608 naive=11520 lower_bound=4608 align=64
//   // plan 5:0 arena offset=0 bytes=2304 live=5:9 %x
//   // plan 9:0 inplace offset=0 bytes=2304 live=9:12 of=5:0 %h
//   // plan 6:0 alias offset=0 bytes=2304 live=6:8 of=5:0 %x2d
//   // plan 7:0 external bytes=12288 live=7:10 of=2:0 %kc
//
// The lines are `//` comments, so the IR parser reads a graph with its plan appended unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"

namespace kiln::passes {

enum class Storage : uint8_t {
  kArena,     // its own arena buffer
  kInPlace,   // reuses the arena memory of `of` (an operand that dies at this node)
  kAlias,     // the same memory as `of`, at `offset` within it (views; a store's destination)
  kExternal,  // not in the arena: weights, derived constants, states, and aliases of them
};

std::string_view storage_name(Storage s);

struct PlanEntry {
  int node = 0;    // position in the top-level schedule
  int result = 0;  // result index
  Storage storage = Storage::kArena;
  uint64_t offset = 0;  // absolute arena offset (arena, in-place, alias of arena memory)
  uint64_t bytes = 0;   // bytes of the value
  int first = 0;        // live range: defined (inputs: 0) ..
  int last = 0;         //   last read (outputs: one past the last node)
  int of_node = -1;     // in-place / alias source
  int of_result = 0;
  std::string name;  // printed name, for people; not part of the key
};

struct MemoryPlan {
  uint64_t alignment = 64;
  uint64_t arena_bytes = 0;        // the arena's size
  uint64_t naive_bytes = 0;        // every arena/in-place value in its own buffer, no reuse
  uint64_t lower_bound_bytes = 0;  // the largest set of buffers live at once
  std::vector<PlanEntry> entries;  // in schedule order

  const PlanEntry* find(int node, int result) const;
  // The `// plan` comment block.
  std::string str() const;
  // Reads the `// plan` lines of a text (other lines are ignored); errors give the line.
  static Result<MemoryPlan> parse(std::string_view text);
};

// Plans a scheduled top-level graph (the work of the plan-memory pass, without the pass).
Result<MemoryPlan> plan_memory(const ir::Graph& g, uint64_t alignment = 64);

// Checks a plan against its graph, recomputing liveness from the graph: every top-level result has
// one entry of the right size; arena offsets are aligned and inside the arena; aliases and
// in-place reuse point at an operand of the node; and no two values whose lifetimes overlap share
// arena bytes, except a view with what it views and an in-place result with the operand that dies
// where it is written.
Status validate(const MemoryPlan& plan, const ir::Graph& g);

}  // namespace kiln::passes
