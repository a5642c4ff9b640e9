// Internal to codegen/cpu (LLVM builds): regions to object code. llvm_compile.cpp compiles, jit.cpp
// links objects into this process.
#pragma once

#if KILN_WITH_LLVM

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"

namespace kiln::cpu {

// A graph's kernels as object files (one per compile thread) and their descriptions.
struct CompiledGraph {
  std::vector<std::vector<uint8_t>> objects;
  std::vector<KernelInfo> kernels;  // one per region node, schedule order
  size_t distinct = 0;
  double seconds = 0;
  std::vector<std::string> required_features;
};

// `max_objects`: 1 for emit_object (one relocatable file), more to compile in parallel.
Result<CompiledGraph> compile_graph(const ir::Graph& g, const Target& target,
                                    const Options& options, int max_objects);

// Links object files for this host into a JIT program (no compilation).
Result<std::unique_ptr<JitProgram>> link_objects(const std::vector<std::vector<uint8_t>>& objects,
                                                 std::vector<KernelInfo> kernels, double seconds,
                                                 size_t distinct);

void init_llvm_targets();

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
