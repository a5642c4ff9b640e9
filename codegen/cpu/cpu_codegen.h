// CPU code generation: every region of a fused graph becomes one kernel function with the
// kernel ABI (codegen/kernel_abi.h), through LLVM — JIT-compiled for the host, or emitted as an
// object file for a named target (ahead-of-time artifacts, AArch64). docs/codegen-cpu.md has the
// design: region kinds, the kernel library, scratch and threading.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "codegen/kernel_abi.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cpu {

// What to compile for. "host" uses this machine's CPU name and features.
struct Target {
  std::string triple = "host";  // "host", "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"
  std::string cpu = "host";     // "host", "x86-64-v3", "x86-64-v4", "generic", "neoverse-v1", ...
  std::string features;         // extra LLVM features ("+avx512f,..."), usually empty
  // "host", "x86-64-v3", "x86-64-v4", "aarch64" (NEON), "aarch64+sve", or
  // "TRIPLE[:CPU[:FEATURES]]".
  static Result<Target> parse(const std::string& text);
  std::string str() const;
  // The architecture after resolving "host": "x86_64" or "aarch64" (others are not supported).
  std::string arch() const;
};

// Choices of the code generator that tests and benchmarks vary; the defaults are the fast ones.
struct Options {
  // x86-64: products with weights of a microkernel type (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K)
  // quantize activations to 8 bits and call the xbyak microkernels through args->mk. false: the
  // kernel library's dot products with f32 activations (the only path on AArch64).
  bool microkernels = true;
  // With microkernels: weights of a packable type (mk::packable: Q4_0, Q4_1, Q5_0, Q8_0, Q4_K,
  // Q6_K) that a kernel reads only as a product's weight are read in the microkernels' packed
  // layout, 2-3x faster; the executor binds those operands (KernelInfo::packed_operands) to
  // repacked copies.
  bool packed_weights = true;
  // Threads that compile distinct kernels in parallel (0: hardware threads, at most 4).
  int compile_threads = 0;
};

// The description of one compiled kernel. Arguments are the region node's operands, then its
// results, in order; the runtime binds each to an arena slot, a weight or a state buffer. A
// result that the memory plan aliases to an operand (a kv_write's cache, an operand yielded
// through reshapes) must be bound to that operand's memory: the kernel never writes it itself.
//
// Scratch: the executor gives a kernel one block of nth * scratch_bytes bytes (64-byte aligned)
// and thread t the pointer block + t * scratch_bytes. Kernels with several phases (phases > 1)
// share intermediates across their threads in the first shared_bytes of that block (thread 0's
// part), with args->barrier between phases; every thread's private scratch follows at offset
// shared_bytes of its own part.
struct KernelInfo {
  std::string name;            // the region's name
  std::string symbol;          // function symbol in the object code (shared by identical regions)
  uint64_t scratch_bytes = 0;  // per thread, a multiple of 64
  uint64_t shared_bytes = 0;   // the shared part at the start of scratch_bytes
  int num_args = 0;
  int phases = 1;                  // barriers inside the kernel: phases - 1 (or more, attention)
  bool uses_microkernels = false;  // reads args->mk (microkernel_table())
  // Operands to bind to weights repacked once (at load or compile time) with
  // mk::pack_weights(type, bytes, row_bytes, N, K, out) for the operand's type [N, K], into
  // mk::packed_bytes(type, N, K) bytes, instead of the bytes as stored.
  std::vector<int> packed_operands;
};

// A graph's kernels compiled in this process (ORC JIT).
class JitProgram {
 public:
  virtual ~JitProgram() = default;
  // In the graph's schedule order: one per region node.
  virtual const std::vector<KernelInfo>& kernels() const = 0;
  virtual KilnKernelFn function(size_t i) const = 0;
  // Seconds spent in LLVM (IR generation, optimization, machine code, linking).
  virtual double compile_seconds() const = 0;
  // Distinct kernel bodies compiled (identical regions share one function).
  virtual size_t distinct_kernels() const = 0;
};

// Compiles every region of `g` (a graph after fuse: top-level nodes are sources, regions, free
// views and outputs) for the host.
Result<std::unique_ptr<JitProgram>> jit_compile(const ir::Graph& g, const Target& target = {},
                                                const Options& options = {});

// Emits one relocatable object file holding every region's kernel of `g`, for `target`.
struct ObjectCode {
  std::vector<uint8_t> bytes;
  std::vector<KernelInfo> kernels;
  Target target;
  std::vector<std::string> required_features;  // CPU features the code needs (for the loader)
};
Result<ObjectCode> emit_object(const ir::Graph& g, const Target& target,
                               const Options& options = {});

// Loads object code produced by emit_object for this host (no compilation: linking only). Fails
// when the host lacks one of code.required_features.
Result<std::unique_ptr<JitProgram>> load_object(const ObjectCode& code);

// True when this build has the LLVM backend.
bool llvm_available();

// Drops the resident pages of LLVM's own machine code (clean pages of a read-only file mapping;
// compiling again faults back in what it runs), after a graph is compiled or linked: kernels
// never call into LLVM. Nothing happens without LLVM. Safe while other threads run LLVM.
void release_compiler_pages();

// Features of `target` that code compiled for it may use ("avx2", "fma", "neon", ...), and
// those of them this host lacks (empty: the host runs the code).
Result<std::vector<std::string>> target_features(const Target& target);
std::vector<std::string> missing_host_features(const std::vector<std::string>& required);

// The table kernels read through args->mk: one `const mk::Kernels*` per weight type in
// kMicrokernelTypes order (null where the type has none). Static storage, valid forever.
inline constexpr DType kMicrokernelTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                              DType::Q8_0, DType::Q4_K, DType::Q6_K};
inline constexpr int kNumMicrokernelTypes = 6;
// For the best ISA (mk::best_isa(), $KILN_MK_ISA), or a given one (errors when unavailable).
const void* const* microkernel_table();
Result<const void* const*> microkernel_table(mk::Isa isa);

}  // namespace kiln::cpu
