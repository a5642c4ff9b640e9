// Parses the IR text form (see printer.h). Every error names the line and column; the result
// is verified before it is returned.
#pragma once

#include <memory>
#include <string_view>

#include "ir/graph.h"

namespace kiln::ir {

Result<std::unique_ptr<Graph>> parse(std::string_view text);

}  // namespace kiln::ir
