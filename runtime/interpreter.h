// The reference interpreter: runs any graph of the IR (fused regions included) with plain scalar
// C++ and the reference dequantizers. It is the oracle every backend is tested against, so it is
// written to be obviously correct: every value gets its own buffer (views alias), reductions and
// dot products accumulate in double, and every op follows docs/ir.md to the letter.
//
//   runtime::StateStore states;                       // KV caches, shared by decode and prefill
//   runtime::GgufWeights weights(*file);
//   auto it = runtime::Interpreter::create(*graph, weights, states);
//   (*it)->set_input("tokens", tokens);  ... "pos", "seq", "rows"
//   (*it)->run();
//   auto logits = (*it)->output("logits");             // f32, [R, vocab]
//
// The graph, the weight source, the state store and the constant cache must outlive the
// interpreter. Not thread-safe; one run at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "runtime/buffer.h"
#include "runtime/weights.h"

namespace kiln::runtime {

// Persistent buffers (`state` nodes: the KV caches), by name, outside any one run. Several graphs
// of one model (the decode graph and each prefill graph) share one store, so they share
// `cache_k.L` and `cache_v.L`. A state is created zeroed the first time a graph uses it; every
// later use must declare the same type. Buffers never move once created.
class StateStore {
 public:
  // The buffer of state `name`, created zeroed on first use.
  Result<Tensor> get(const std::string& name, const ir::TensorType& type);
  // The state, or an error when no graph has used it yet.
  Result<TensorView> find(const std::string& name) const;
  // Zeroes every state (a new session). Buffers stay where they are.
  void reset();
  size_t size() const { return states_.size(); }
  size_t bytes() const;

 private:
  struct Entry {
    ir::TensorType type;
    std::vector<uint8_t> bytes;
  };
  std::unordered_map<std::string, std::unique_ptr<Entry>> states_;
};

// Derived constants (docs/ir.md): nodes whose operands are all constants, such as the `concat`
// of weights that merge-parallel-matmuls builds. Each is evaluated once, the first time an
// interpreter over its graph is created, and kept here by node. Pass one cache to several
// interpreters over the same graph to share the work; an interpreter without one owns its own.
class ConstantCache {
 public:
  // How many constant nodes were evaluated (materialized) so far.
  int64_t evaluations() const { return evaluations_; }
  size_t size() const { return entries_.size(); }
  size_t bytes() const;

  // For the interpreter: the stored results of `node`, or nullptr.
  std::vector<std::vector<uint8_t>>* find(const ir::Node* node);
  std::vector<std::vector<uint8_t>>& insert(const ir::Node* node,
                                            std::vector<std::vector<uint8_t>> results);

 private:
  std::unordered_map<const ir::Node*, std::vector<std::vector<uint8_t>>> entries_;
  int64_t evaluations_ = 0;
};

class Interpreter {
 public:
  // Verifies the graph, binds every weight (checked against the source), state (created in
  // `states` if new) and input buffer, and evaluates derived constants into `constants` (nullptr:
  // a cache of this interpreter's own).
  static Result<std::unique_ptr<Interpreter>> create(const ir::Graph& graph,
                                                     const WeightSource& weights,
                                                     StateStore& states,
                                                     ConstantCache* constants = nullptr);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Fills input `name`: the count and dtype must match its declared type. Inputs keep their
  // values across runs.
  Status set_input(const std::string& name, std::span<const int32_t> values);
  Status set_input(const std::string& name, std::span<const float> values);
  Status set_input_bytes(const std::string& name, std::span<const uint8_t> bytes);
  // Names of the graph's inputs and outputs, in graph order.
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
  // Type of input `name` (nullptr if there is none).
  const ir::TensorType* input_type(const std::string& name) const;

  // Runs the graph once. Fails if an input was never set, or on a bad runtime value (an index
  // out of range, a sequence slot outside the cache); the message names the node.
  Status run();

  // Output `name` after a run; it must be f32.
  Result<std::span<const float>> output(const std::string& name) const;
  // Output `name` of any dtype (argmax gives i32).
  Result<TensorView> output_tensor(const std::string& name) const;
  // Any value of the graph or of a region body inside it, after a run: for debugging, and for
  // tests that compare a region with its unfused ops. Valid until the next run.
  Result<TensorView> value(const ir::Value& v) const;
  // A top-level value by name or "%id" text (ir::Graph::find_value).
  Result<TensorView> value(const std::string& name) const;

  const ir::Graph& graph() const;
  const ConstantCache& constants() const;

 private:
  struct Impl;
  explicit Interpreter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::runtime
