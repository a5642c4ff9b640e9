// The CUDA backend: a model's graphs (decode, each prefill bucket) as CudaExecutors on one
// device, sharing the uploaded weights and derived constants (DeviceConstants) and the KV cache
// (DeviceStates). Needs libcuda and a device: make_cuda_backend fails with cuda_status()'s one
// line otherwise (`--device cuda` reports it and exits non-zero; `--device auto` falls back).
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace kiln::runtime {

struct CudaBackendOptions {
  bool cuda_graph = true;  // --no-cuda-graph: launch every kernel instead of replaying a graph
};

Result<std::unique_ptr<Backend>> make_cuda_backend(const gguf::GgufFile& file,
                                                   const BackendOptions& options,
                                                   const CudaBackendOptions& cuda = {});

}  // namespace kiln::runtime
