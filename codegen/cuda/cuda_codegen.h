// CUDA code generation: every region of a fused graph becomes one CUDA C++ kernel, in one module
// per graph (identical regions share a function), compiled by NVRTC to PTX and to cubins for
// chosen architectures. Nothing here needs a GPU; docs/cuda.md has the design.
//
//   KILN_ASSIGN_OR_RETURN(cuda::Program p, cuda::generate(graph));     // the source and launches
//   KILN_ASSIGN_OR_RETURN(cuda::CompiledModule m,
//                         cuda::compile_module(p.source, p.graph_name, {}));  // nvrtc.h
//
// Kernel ABI: every kernel takes one `KilnArgs` by value, an array of device pointers: the region
// node's operands, then its results, then the kernel's scratch (when scratch_bytes > 0), then, for
// the kernel with the fused argmax, the argmax cells and the sampling parameters. Everything a
// kernel reads at run time (positions, the KV length) comes from those buffers, so one launch
// configuration serves every token and a captured CUDA graph never needs an update.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cuda {

inline constexpr int kMaxArgs = 24;  // pointers in KilnArgs

// How a kernel wants an operand in device memory.
enum class ArgLayout : uint8_t {
  kPlain,   // the IR's row-major bytes (GGUF bytes for weights)
  kPacked,  // quantized constant, repacked by pack_weight() (weight_layout.h)
};

enum class KernelKind : uint8_t { kRows, kContraction, kAttention, kSample };

// A table of f32 values made on the host by the code the reference interpreter runs and
// uploaded once, for functions a GPU's libm rounds differently from the C library:
//  - kRope: a rope's cos/sin (glibc's cosf/sinf of ggml's f32 angles) for positions -1 (a
//    padding row's) to positions - 1, n_dims/2 pairs (cos, sin) each; others fall back to sincos
//    in double;
//  - kGeluF16: ggml's f16 GELU (tanhf) of every f16 input, indexed by its bits (65536 values).
// Table t of a module is the kernel argument KilnArgs::p[kMaxArgs - 1 - t].
struct HostTable {
  enum Kind : uint8_t { kRope, kGeluF16 } kind = kRope;
  int64_t n_dims = 0;
  double freq_base = 0, freq_scale = 1;
  int64_t positions = 0;
  std::string key() const;
};
const char* kernel_kind_name(KernelKind k);

struct Options {
  // Rows of this graph output get a fused argmax (or a Gumbel-max sample) in the kernel that
  // computes them, finished by the `sample` kernel: the token id never needs the logits on the
  // host. "" turns it off.
  std::string argmax_output = "logits";
  // Kernels wait for their producers with programmatic dependent launch (griddepcontrol, sm_90+)
  // so a launch can start while the previous kernel drains; a no-op when launched without it.
  bool pdl = true;
};

struct KernelSpec {
  std::string name;   // the region's name ("blk0.k0"), or "sample"
  std::string entry;  // the __global__ function
  KernelKind kind = KernelKind::kRows;
  int node = -1;  // the region node's position in the top-level schedule
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block = 256;
  uint64_t scratch_bytes = 0;  // device scratch, zeroed once when allocated (kept zero by kernels)
  int num_operands = 0, num_results = 0;
  std::vector<ArgLayout> layouts;    // per operand
  std::vector<bool> result_written;  // per result; false: it aliases an operand (bind to it)
  bool argmax = false;               // takes the argmax cells and the sampling parameters
  int argmax_result = -1;            // the result whose rows it reduces
  std::string summary;               // one line for people ("q4_k 1024x640, M=1, 3 tiles ...")
  std::vector<int> host_tables;      // indices into Program::host_tables (argument slots)
  // Takes the batch's real token count (an i32 cell: the positions >= 0 of the run's `pos`, 0 for
  // all rows) after every other argument: ggml picks its K-quant kernels by that count.
  bool token_count = false;
  int num_args() const {
    return num_operands + num_results + (scratch_bytes ? 1 : 0) + (argmax ? 2 : 0) +
           (token_count ? 1 : 0);
  }
};

// Device layout of the sampling parameters the argmax kernel reads (16 bytes).
struct SampleParams {
  float temperature = 0;  // <= 0: argmax; > 0: a Gumbel-max draw from softmax(logits / T)
  uint32_t seed_lo = 0, seed_hi = 0;
  uint32_t step = 0;  // advanced by the sample kernel after every draw
};

struct Program {
  std::string graph_name;
  std::string source;   // the whole module for NVRTC (prelude, tables, kernels)
  std::string kernels;  // the kernels alone (for the host emulation flavor)
  std::string tables;   // constant tables the kernels use
  std::vector<KernelSpec> kernels_by_region;  // one per region, in schedule order
  size_t distinct = 0;                        // distinct kernel functions
  // The fused argmax: output name, its rows and columns, and the kernel that finishes it.
  std::string argmax_output;
  int64_t argmax_rows = 0, argmax_cols = 0;
  std::vector<HostTable> host_tables;  // the kernels' host-made tables (KernelSpec::host_tables)
  bool has_sample = false;
  KernelSpec sample;  // args: cells (u64[rows]), tokens (i32[rows]), feedback tokens (or null),
                      // feedback positions (or null), SampleParams
};

// Generates the module of `g` (a graph after fuse: top-level sources, regions, free views,
// derived constants, outputs). Errors name the region and the op a kernel cannot compute.
Result<Program> generate(const ir::Graph& g, const Options& o = {});

// The same kernels with the host prelude (runtime/cuda_emulator.h runs them on the CPU).
std::string emulation_source(const Program& p);

// The readable source `kiln ir MODEL --emit cuda` prints: the module, each kernel preceded by
// its region's IR and launch configuration.
Result<std::string> emit_cuda(const ir::Graph& g, const Options& o = {});

}  // namespace kiln::cuda
