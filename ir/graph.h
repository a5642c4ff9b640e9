// Graph, Node and Value: an SSA dataflow graph whose node list is also its schedule.
//
// Every value is defined by exactly one node (sources like `input` and `weight` are nodes too),
// so a graph is just its node list. A region node holds a subgraph whose `arg` nodes stand for
// the region's operands and whose `yield` gives its results.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/attrs.h"
#include "ir/op.h"
#include "ir/tensor_type.h"

namespace kiln::ir {

class Node;
class Graph;

class Value {
 public:
  int id = 0;        // unique within its graph
  std::string name;  // optional readable name ("blk0.q"); unique within its graph when set
  TensorType type;
  Node* def = nullptr;
  int index = 0;  // which result of def
};

class Node {
 public:
  Op op;
  std::vector<Value*> operands;
  std::vector<Value*> results;
  Attrs attrs;
  std::unique_ptr<Graph> body;  // region nodes only

  const OpInfo& info() const { return op_info(op); }
  bool has(Trait t) const { return info().has(t); }
  Value* result(int i = 0) const { return results[size_t(i)]; }
  Value* operand(int i) const { return operands[size_t(i)]; }
  int num_operands() const { return int(operands.size()); }
};

class Graph {
 public:
  explicit Graph(std::string name = "main") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  // Nodes in schedule order (a topological order).
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  size_t size() const { return nodes_.size(); }

  // Appends a node with given result types; attrs are normalized against the op spec, so
  // this fails only on bad attributes. Types are not inferred here (see builder.h).
  Result<Node*> add_node(Op op, std::vector<Value*> operands, Attrs attrs,
                         std::vector<TensorType> result_types);
  // Same, but inserts before `pos` (which must be in this graph).
  Result<Node*> insert_node(Node* pos, Op op, std::vector<Value*> operands, Attrs attrs,
                            std::vector<TensorType> result_types);

  // Makes every use of `from` (in this graph, and in region bodies' captured lists) use `to`.
  void replace_all_uses(Value* from, Value* to);
  // Removes nodes whose results are unused and that have no side effect; returns how many.
  int remove_dead_nodes();
  // Removes one node; its results must be unused.
  void erase(Node* n);
  // Reorders nodes by a stable topological sort (after passes that insert out of order).
  Status topo_sort();

  // Users of each value, computed on demand (graphs are small; no use lists to keep in sync).
  std::unordered_map<const Value*, std::vector<Node*>> users() const;
  // Position of each node in the schedule.
  std::unordered_map<const Node*, size_t> positions() const;

  // Finds a value by name or by "%id" text; nullptr if absent.
  Value* find_value(const std::string& name) const;
  // Gives `v` a name unique in this graph, derived from `base` ("q", "q.1", ...).
  void set_value_name(Value* v, const std::string& base);

  // Source nodes of a kind, in order.
  std::vector<Node*> nodes_of(Op op) const;
  // Deep copy (region bodies included). Values keep ids and names.
  std::unique_ptr<Graph> clone() const;

  int next_value_id() const { return next_id_; }

 private:
  friend class Parser;
  Value* new_value(TensorType t, Node* def, int index);
  Result<std::unique_ptr<Node>> make_node(Op op, std::vector<Value*> operands, Attrs attrs,
                                          std::vector<TensorType> result_types);

  std::string name_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  int next_id_ = 0;
};

}  // namespace kiln::ir
