// The CPU executor: runs one compiled graph (compiled_graph.h) as a schedule of kernels.
//
// At load, every value of the graph gets its address: arena values (inputs, outputs and every
// intermediate) at their memory-plan offsets in the backend's one arena; weights straight from
// the mmapped GGUF file; derived constants and packed weights from the ConstantStore (made at
// bind on the JIT path; mapped from an artifact's constants section, with no evaluation, repack
// or copy, when it has one: a derived constant is resolved only if a kernel reads it as stored,
// a weight's stored bytes only if no packed copy exists); states (the KV cache) from
// StateBuffers; views and aliased results at their operand's address plus offset. Each kernel's
// argument array and each thread's KilnKernelArgs are built then, so a run is only:
//
//   for each kernel k:  every thread calls fn_k(&args[k][ith]);  barrier
//
// on the pool's threads (the caller is thread 0). A run allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "codegen/kernel_abi.h"
#include "runtime/backend.h"
#include "runtime/compiled_graph.h"
#include "runtime/constant_store.h"
#include "runtime/host_memory.h"
#include "runtime/thread_pool.h"
#include "runtime/weights.h"

namespace kiln::runtime {

// What the executors of one model share.
struct ExecutorContext {
  const WeightSource* weights = nullptr;
  ConstantStore* constants = nullptr;
  StateBuffers* states = nullptr;
  ThreadPool* pool = nullptr;
  uint8_t* arena = nullptr;  // one arena for all graphs: only one runs at a time
  size_t arena_capacity = 0;
  uint8_t* scratch = nullptr;  // kernel scratch, shared the same way
  size_t scratch_capacity = 0;
  const void* const* microkernels = nullptr;  // cpu::microkernel_table()
};

class CpuExecutor : public GraphRunner {
 public:
  // Binds every kernel argument. Errors name the node that cannot be bound (a compute node left
  // outside a region, a plan that does not fit the arena, a weight of the wrong type).
  static Result<std::unique_ptr<CpuExecutor>> create(CompiledGraph compiled,
                                                     const ExecutorContext& context);

  const lower::GraphSpec& spec() const override { return compiled_.spec; }
  Status set_input(std::string_view name, std::span<const int32_t> values) override;
  bool has_input(std::string_view name) const override;
  Status run() override;
  Result<std::span<const float>> output(std::string_view name) const override;

  const CompiledGraph& compiled() const { return compiled_; }
  // For debugging and tests: runs only the first n kernels; the region node of kernel k and the
  // addresses of its results (valid after a run that included it, until a later kernel reuses
  // the memory).
  Status run_prefix(size_t n);
  const ir::Node& kernel_node(size_t k) const { return *kernel_nodes_[k]; }
  const uint8_t* kernel_result(size_t k, size_t r) const {
    return static_cast<const uint8_t*>(
        buffers_[arg_ranges_[k].first + kernel_nodes_[k]->operands.size() + r]);
  }
  size_t num_kernels() const { return kernels_.size(); }
  // Bytes of the arena and of the scratch this graph uses.
  uint64_t arena_bytes() const { return compiled_.plan.arena_bytes; }
  uint64_t scratch_bytes() const { return scratch_bytes_; }
  // Names of the weights some kernel reads as stored (directly or through a view).
  const std::vector<std::string>& bound_weights() const { return bound_weights_; }
  // Names of the weights some kernel reads packed (KernelInfo::packed_operands).
  const std::vector<std::string>& packed_weights() const { return packed_weights_; }
  // Keys (constant_key) of the derived constants kernels read as stored, and of those they read
  // only packed: the backend may free the latter's unpacked bytes.
  const std::vector<std::string>& raw_constants() const { return raw_constants_; }
  const std::vector<std::string>& packed_only_constants() const { return packed_only_constants_; }

 private:
  struct Io {
    std::string name;
    const ir::TensorType* type = nullptr;
    uint8_t* data = nullptr;
    bool set = false;
  };

  explicit CpuExecutor(CompiledGraph compiled) : compiled_(std::move(compiled)) {}
  Status bind(const ExecutorContext& context);
  static void schedule(void* self, int ith, int nth);

  CompiledGraph compiled_;
  ThreadPool* pool_ = nullptr;
  int nth_ = 1;
  std::vector<KilnKernelFn> kernels_;
  std::vector<const ir::Node*> kernel_nodes_;
  std::vector<std::pair<size_t, size_t>> arg_ranges_;  // per kernel: first, count in buffers_
  size_t limit_ = 0;                                   // kernels a run executes
  std::vector<void*> buffers_;                         // every kernel's arguments, back to back
  std::vector<KilnKernelArgs> args_;                   // [kernel][thread]
  int32_t tokens_ = 0;  // real tokens of this run: positions >= 0 in "pos" (KilnKernelArgs)
  std::vector<Io> inputs_, outputs_;
  std::vector<std::string> bound_weights_, packed_weights_;
  std::vector<std::string> raw_constants_, packed_only_constants_;
  uint64_t scratch_bytes_ = 0;
};

// The derived constants and packed weights that binding `g` (with these kernels) reads from a
// ConstantStore, made in `store`: their keys (constant_key, packed_key). The artifact writer
// stores exactly these, so that binding a loaded artifact evaluates and repacks nothing; and the
// weights kernels read as stored, the only ones its embedded GGUF keeps.
struct BindConstants {
  std::set<std::string> keys;
  std::set<std::string> raw_weights;  // GGUF tensor names
};
Result<BindConstants> make_bind_constants(const ir::Graph& g,
                                          const std::vector<cpu::KernelInfo>& kernels,
                                          const WeightSource& weights, ConstantStore& store);

}  // namespace kiln::runtime
