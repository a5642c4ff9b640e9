// One call for whoever stores compiled CUDA graphs (the `kiln compile --target cuda:sm_XX`
// artifact, issue #6): a fused, memory-planned graph -> its generated program and its PTX and
// cubins for the requested architectures.
//
//   cuda::CompileOptions co;
//   co.archs = {90};                       // from "cuda:sm_90"; PTX is always included
//   KILN_ASSIGN_OR_RETURN(cuda::GraphBinary b, cuda::compile_graph(graph, co));
//   // store b.module.ptx and b.module.cubins (arch -> bytes) next to the graph's IR text
//
// At load time, give the executor the stored bytes as a runtime::ModuleImage (name, ptx, cubins)
// with the same graph: CudaExecutor::create(spec, graph, plan, cx, &image). It regenerates the
// kernel table from the graph (deterministic, no NVRTC) and loads the stored code, so NVRTC is
// not needed on the machine that runs the artifact. The kernel source hash in
// b.module.key identifies the code: store it and compare it with compile_graph's on load when
// the generator may have changed.
#pragma once

#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"

namespace kiln::cuda {

struct GraphBinary {
  Program program;        // kernels, launch configurations, the source
  CompiledModule module;  // ptx, cubins by arch, ptxas resources, cache key
};

Result<GraphBinary> compile_graph(const ir::Graph& g, const CompileOptions& co = {},
                                  const Options& o = {});

// Parses "cuda:sm_90" / "cuda:sm_80,sm_90" / "cuda" (sm_80 and sm_90) into architectures.
Result<std::vector<int>> parse_cuda_target(const std::string& target);

}  // namespace kiln::cuda
