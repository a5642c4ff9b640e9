// Small queries over graphs shared by the passes. Everything here reads op traits, never op names.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace kiln::passes {

// A free op (reshape, view) aliases its operand: it costs no kernel and no memory.
inline bool is_free(const ir::Node& n) {
  return n.has(ir::kView);
}

// Follows free ops back to the value that owns the memory.
ir::Value* free_root(ir::Value* v);

// A store (kv_write) is an op with a side effect that is not a sink: it writes its operand 0 (a
// state) and its result is that same buffer.
inline bool is_store(const ir::Node& n) {
  return n.has(ir::kSideEffect) && !n.has(ir::kSink);
}

// True for a node with a side effect, or a region whose body holds one.
bool has_side_effect(const ir::Node& n);

// Values known at compile time: weights and every node whose operands are all such values (a
// "derived constant", docs/ir.md). The runtime evaluates them once at load.
std::unordered_set<const ir::Value*> constant_values(const ir::Graph& g);

// The GGUF name of the first weight a constant is made from ("" when none).
std::string weight_name(const ir::Value* v);

using UserMap = std::unordered_map<const ir::Value*, std::vector<ir::Node*>>;

// The non-free nodes that read `v` directly or through a chain of free ops, in schedule order
// of discovery (sinks included).
std::vector<ir::Node*> final_users(const ir::Value* v, const UserMap& users);

// Removes nodes whose results are unused and that have no side effect (regions with a store
// inside are kept); inputs, states and args stay as the graph's interface. Returns how many.
int remove_dead(ir::Graph& g);

// Where a result's memory comes from when it is not a buffer of its own: a free op's operand (at
// the view's byte offset), a store's destination (operand 0), or, for a region, the operand whose
// arg the body yields through free ops and stores. nullopt: the result needs its own memory.
struct AliasOf {
  int operand = -1;     // operand index of the node
  uint64_t offset = 0;  // bytes into that operand
};
std::optional<AliasOf> alias_of(const ir::Node& n, int result);

// Operands whose memory result `result` of `n` may take over when they die at `n`: operand 0 of a
// kInPlace op; any operand of an elementwise op that has the result's shape (it is read at the
// index it is written); for a region, an arg that the body reads once, along a chain of such ops
// that ends in the yielded result. Sizes in bytes must match (checked by the caller).
std::vector<int> inplace_operands(const ir::Node& n, int result);

// Moves the name of `from` (if any) to `to` (which must be unnamed).
void move_name(ir::Graph& g, ir::Value* from, ir::Value* to);

}  // namespace kiln::passes
