// The verifier: SSA (each operand defined earlier in the schedule, in the same graph), acyclic,
// attributes match the op's spec, result types equal what inference says, regions well formed.
#pragma once

#include "ir/graph.h"

namespace kiln::ir {

Status verify(const Graph& g);

}  // namespace kiln::ir
