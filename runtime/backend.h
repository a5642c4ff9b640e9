// The seam between the session (prefill, decode, sampling) and whatever runs a model's graphs.
//
// A Backend is one model on one kind of machine: it builds each graph the session asks for (the
// decode graph, each prefill bucket) the first time it is asked, and owns what those graphs share
// — the weights, the derived constants and the KV cache. A GraphRunner is one of those graphs,
// ready to run: set inputs by name, run, read `logits`.
//
// Backends today: the reference interpreter (interp_backend.cpp) and the CPU executor
// (cpu_backend.cpp: JIT-compiled kernels over one arena). A CUDA executor is another Backend; an
// artifact (issue #6) is another source of compiled graphs for the CPU backend (compiled_graph.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "ir/status.h"

namespace kiln::runtime {

class GraphRunner {
 public:
  virtual ~GraphRunner() = default;
  virtual const lower::GraphSpec& spec() const = 0;
  // Fills input `name` ("tokens", "pos", "seq", "rows"); the count must match its type. Every
  // input must be set before every run (graphs of one model may share memory).
  virtual Status set_input(std::string_view name, std::span<const int32_t> values) = 0;
  virtual bool has_input(std::string_view name) const = 0;
  virtual Status run() = 0;
  // An f32 output after a run ("logits": [rows, vocab]). Valid until the next run of any graph of
  // the same backend.
  virtual Result<std::span<const float>> output(std::string_view name) const = 0;
};

struct BackendOptions {
  int threads = 0;             // CPU threads, the caller included (0: one per core)
  int ctx = 0;                 // KV-cache length (0: min(model context, 4096))
  DType kv_type = DType::F16;  // F16 or Q8_0
  // Sequences the KV cache holds (its slots): graphs decode up to this many together
  // (Model::generate_batch), and a prefill writes any one of them.
  int slots = 1;
  std::string pipeline = "canonicalize,merge-parallel-matmuls,fuse,plan-memory";
  bool microkernels = true;  // CPU: xbyak microkernels for quantized products
  // CPU: give back the resident pages of weights once they are copied (packed, or read by a
  // derived constant such as the merged q/k/v), and of the file around small weights once
  // they are copied (docs/runtime.md, "Memory"). Only for a file that is mmapped
  // (GgufFile::open): on memory the caller owns, dropping pages would zero it.
  bool release_merged_weights = false;
  // CPU: drop the resident pages of LLVM's own code at start and after each graph is compiled
  // (cpu::release_compiler_pages); a later compilation faults back in what it runs.
  bool release_compiler_pages = false;
};

struct BackendStats {
  int graphs = 0;                    // graphs built so far
  double lower_seconds = 0;          // lowering, all graphs
  double passes_seconds = 0;         // passes, all graphs
  double compile_seconds = 0;        // code generation, all graphs
  double bind_seconds = 0;           // binding (derived constants, pointers)
  size_t kernels = 0;                // kernels of all graphs
  uint64_t arena_bytes = 0;          // the largest arena of a graph
  uint64_t scratch_bytes = 0;        // the largest kernel scratch
  uint64_t state_bytes = 0;          // the KV cache
  uint64_t constant_bytes = 0;       // derived constants and packed weights on the heap
  int64_t constant_evaluations = 0;  // derived constants evaluated (by the interpreter)
  int64_t weights_packed = 0;        // weights repacked for the microkernels
  int64_t constants_mapped = 0;      // bindings to constants stored in an artifact (no copy)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "interp"
  virtual int threads() const = 0;
  // The graph of `spec`, built on first request and kept. spec.ctx, spec.kv_type and spec.slots
  // are set from the backend's options (a batch above the slots is an error).
  virtual Result<GraphRunner*> graph(lower::GraphSpec spec) = 0;
  // Zeroes the KV cache (a new conversation).
  virtual void reset_states() = 0;
  virtual BackendStats stats() const = 0;
};

// options.slots, or an error when `spec` decodes more sequences than that.
Result<int> checked_slots(const lower::GraphSpec& spec, const BackendOptions& options);

// The KV-cache length a backend with these options uses for `file` (ctx 0: min(model, 4096)).
Result<int> resolve_ctx(const gguf::GgufFile& file, int ctx);

// The reference interpreter over the lowered graphs (no passes): slow, obviously correct.
Result<std::unique_ptr<Backend>> make_interpreter_backend(const gguf::GgufFile& file,
                                                          const BackendOptions& options);
// Compiled kernels (codegen/cpu) over one arena and a thread pool. Fails when kiln was built
// without LLVM.
Result<std::unique_ptr<Backend>> make_cpu_backend(const gguf::GgufFile& file,
                                                  const BackendOptions& options);
// The same over compiled graphs from `source` (an artifact: artifact_loader.h) instead of the
// in-process JIT; null: the JIT. `file` holds the weights.
class GraphSource;
Result<std::unique_ptr<Backend>> make_cpu_backend(const gguf::GgufFile& file,
                                                  const BackendOptions& options,
                                                  std::unique_ptr<GraphSource> source);

}  // namespace kiln::runtime
