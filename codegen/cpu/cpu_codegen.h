// CPU code generation: every region of a fused graph becomes one kernel function with the
// kernel ABI (codegen/kernel_abi.h), through LLVM — JIT-compiled for the host, or emitted as an
// object file for a named target (ahead-of-time artifacts, AArch64).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "codegen/kernel_abi.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cpu {

// What to compile for. "host" uses this machine's CPU name and features.
struct Target {
  std::string triple = "host";  // "host", "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"
  std::string cpu = "host";     // "host", "x86-64-v3", "x86-64-v4", "generic", "neoverse-v1", ...
  std::string features;         // extra LLVM features ("+avx512f,..."), usually empty
  static Result<Target> parse(const std::string& text);  // "host", "x86-64-v3", "aarch64"...
  std::string str() const;
};

// The description of one compiled kernel. Arguments are the region node's operands, then its
// results, in order; the runtime binds each to an arena slot, a weight or a state buffer.
struct KernelInfo {
  std::string name;          // the region's name
  std::string symbol;        // function symbol in the object code
  uint64_t scratch_bytes = 0;  // per thread
  int num_args = 0;
  bool uses_microkernels = false;  // reads args->mk
};

// A graph's kernels compiled in this process (ORC JIT).
class JitProgram {
 public:
  virtual ~JitProgram() = default;
  // In the graph's schedule order: one per region node.
  virtual const std::vector<KernelInfo>& kernels() const = 0;
  virtual KilnKernelFn function(size_t i) const = 0;
  // Seconds spent in LLVM (IR generation, optimization, machine code).
  virtual double compile_seconds() const = 0;
};

// Compiles every region of `g` (a graph after fuse: top-level nodes are sources, regions, free
// views and outputs) for the host.
Result<std::unique_ptr<JitProgram>> jit_compile(const ir::Graph& g, const Target& target = {});

// Emits one relocatable object file holding every region's kernel of `g`, for `target`.
struct ObjectCode {
  std::vector<uint8_t> bytes;
  std::vector<KernelInfo> kernels;
  Target target;
  std::vector<std::string> required_features;  // CPU features the code needs (for the loader)
};
Result<ObjectCode> emit_object(const ir::Graph& g, const Target& target);

// Loads object code produced by emit_object for this host (no compilation: linking only).
Result<std::unique_ptr<JitProgram>> load_object(const ObjectCode& code);

// True when this build has the LLVM backend.
bool llvm_available();

}  // namespace kiln::cpu
