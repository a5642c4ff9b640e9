// Shape and dtype inference, one rule per op (generated dispatch over ir/ops.def).
#pragma once

#include <vector>

#include "ir/attrs.h"
#include "ir/graph.h"
#include "ir/tensor_type.h"

namespace kiln::ir {

struct InferInput {
  std::vector<const TensorType*> operands;
  const Attrs* attrs;
  const Graph* body;  // region nodes only
};

// Result types of an op applied to operands of these types. Source ops (input, weight, state,
// arg) declare their type, so for them this returns an empty list and the caller keeps the
// declared one.
Result<std::vector<TensorType>> infer_types(Op op, const InferInput& in);

// Convenience for a node already in a graph.
Result<std::vector<TensorType>> infer_types(const Node& n);

}  // namespace kiln::ir
