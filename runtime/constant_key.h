// Keys of derived constants: the expression a constant value computes, as text. The constant
// store (runtime/constant_store.h), the artifact's constants section and the AArch64 artifact
// harness (tests/aarch64) all name constants by it, so it depends on the IR only.
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln::runtime {

// The expression a constant value computes, as text: the same for the same computation in any
// graph of the model.
std::string constant_key(const ir::Value& v);
// The key of `v`'s copy in the microkernels' packed layout.
std::string packed_key(const ir::Value& v);

}  // namespace kiln::runtime
