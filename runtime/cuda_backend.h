// The CUDA backend: a model's graphs (decode, each prefill bucket) as CudaExecutors on one
// device, sharing the uploaded weights and derived constants (DeviceConstants) and the KV cache
// (DeviceStates). Needs libcuda and a device: make_cuda_backend fails with cuda_status()'s one
// line otherwise (`--device cuda` reports it and exits non-zero; `--device auto` falls back).
#pragma once

#include <memory>
#include <vector>

#include "frontends/gguf/lower.h"
#include "ir/graph.h"
#include "passes/memory_plan.h"
#include "runtime/backend.h"
#include "runtime/compiled_graph.h"
#include "runtime/cuda_device.h"

namespace kiln::runtime {

struct CudaBackendOptions {
  bool cuda_graph = true;  // --no-cuda-graph: launch every kernel instead of replaying a graph
};

Result<std::unique_ptr<Backend>> make_cuda_backend(const gguf::GgufFile& file,
                                                   const BackendOptions& options,
                                                   const CudaBackendOptions& cuda = {});

// A graph compiled ahead of time (a CUDA artifact, runtime/artifact_cuda.h): run as given, with
// its stored code, instead of lowering and compiling it with NVRTC.
struct CudaStoredGraph {
  std::unique_ptr<ir::Graph> graph;  // fused and planned
  passes::MemoryPlan plan;
  ModuleImage image;  // the stored cubin and/or PTX for the device (the host flavor: emulator)
  // False when the chosen code was built for an arch below sm_90 (no griddepcontrol.wait in
  // it): its kernels must not be launched with programmatic dependent launch.
  bool pdl = true;
  double load_seconds = 0;  // parsing, validating, regenerating the kernel table
};
class CudaGraphSource {
 public:
  virtual ~CudaGraphSource() = default;
  virtual Result<CudaStoredGraph> graph(const lower::GraphSpec& spec, const CudaDevice& dev) = 0;
  // Derived constants made ahead of time, bound in place of evaluating them.
  virtual Result<std::vector<MappedConstant>> mapped_constants() const {
    return std::vector<MappedConstant>{};
  }
};

// The backend over stored graphs. `device`: null opens the GPU (after cuda_status()); tests pass
// the emulator.
Result<std::unique_ptr<Backend>> make_cuda_backend(const gguf::GgufFile& file,
                                                   const BackendOptions& options,
                                                   const CudaBackendOptions& cuda,
                                                   std::unique_ptr<CudaGraphSource> source,
                                                   std::unique_ptr<CudaDevice> device = nullptr);

}  // namespace kiln::runtime
