// CUDA artifacts (`kiln compile --target cuda:sm_80,sm_90`, docs/artifact.md): what the writer
// stores per graph next to its IR, plan and spec, and the graph source the CUDA backend loads
// them through. Per graph:
//
//   cuda.kernels  GRAPH          the generated module's FNV-1a source hash and kernel table
//   cuda.ptx      GRAPH.sm_XX    PTX for that arch (the driver JIT-compiles it for newer GPUs)
//   cuda.cubin    GRAPH.sm_XX    the cubin (an EM_CUDA ELF) for that arch
//
// plus derived constants (the merged q/k/v and gate/up weights) in the constants section, so that
// loading runs neither NVRTC nor the interpreter. The kernel table itself is regenerated from the
// stored IR at load (codegen is deterministic and cheap); the stored hash proves the regenerated
// kernels are the ones the stored code was compiled from.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/artifact_format.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_backend.h"
#include "runtime/weights.h"

namespace kiln::artifact {

class Artifact;

// "cuda" or "cuda:..." (anything else is a CPU target).
bool is_cuda_target(const std::string& target);
// "cuda:sm_80,sm_90" -> {80, 90} (sorted, unique); errors name the bad item.
Result<std::vector<int>> parse_cuda_archs(const std::string& target);
// "decode_b1.sm_90": the name of a graph's cuda.ptx / cuda.cubin section for one arch.
std::string cuda_section_name(const std::string& graph, int arch);

// The compute capability a cubin was built for (80 for sm_80), read from its ELF header; an
// error when the bytes are not a 64-bit little-endian ELF with e_machine EM_CUDA (190).
Result<int> cubin_arch(std::span<const uint8_t> cubin);
// The `.target sm_XX` of a PTX module (80), or an error.
Result<int> ptx_arch(std::string_view ptx);

// The cuda.kernels record of a graph: `kiln-cuda-kernels 1`, then key=value lines
// (source_fnv1a, archs, launches, distinct), then one `kernel\tNAME\tENTRY\tGRID\tBLOCK\tSCRATCH`
// line per launch, for people (the loader regenerates the kernels and checks the hash).
struct CudaKernelsRecord {
  std::string source_hash;  // FNV-1a 64 of the module source, 16 hex digits
  int launches = 0, distinct = 0;
};
Result<CudaKernelsRecord> decode_cuda_kernels(std::string_view text);

// One graph's CUDA sections, made by compile_cuda_graph.
struct CudaGraphSections {
  struct Section {
    SectionKind kind;
    std::string name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Section> sections;
  size_t kernels = 0;      // launches per run (regions + the sample kernel)
  uint64_t bytes = 0;      // PTX + cubins
  bool from_cache = true;  // every arch came from NVRTC's disk cache
};
// Generates `g`'s module and compiles it with NVRTC to PTX and a cubin for every arch.
Result<CudaGraphSections> compile_cuda_graph(const ir::Graph& g, const std::vector<int>& archs);

// The keys of the derived constants `g`'s kernels read (made by `constants`), which the writer
// stores so that the CUDA backend binds them mapped instead of evaluating them.
Result<std::vector<std::string>> cuda_bind_constants(const ir::Graph& g,
                                                     runtime::ConstantStore& constants);

// Header and sections of a CUDA artifact: the archs, and every graph's spec, IR, plan, kernel
// table, PTX and cubin per arch. Called by Artifact::read_header.
Status check_cuda_sections(const Artifact& a);
// Whether this machine can run a CUDA artifact: libcuda and a device (runtime::cuda_status).
Status check_cuda_host(const Artifact& a);

// The CUDA backend's graphs from a CUDA artifact: IR and plan parsed and validated, the kernel
// table regenerated and checked against the stored hash, and the stored code for the device:
// the cubin of its major arch (highest minor not above it), else the PTX of the highest arch not
// above it. No NVRTC. On the emulator (tests) the module is the regenerated host flavor.
class CudaArtifactSource : public runtime::CudaGraphSource {
 public:
  explicit CudaArtifactSource(const Artifact& artifact) : artifact_(artifact) {}
  Result<runtime::CudaStoredGraph> graph(const lower::GraphSpec& spec,
                                         const runtime::CudaDevice& dev) override;
  Result<std::vector<runtime::MappedConstant>> mapped_constants() const override;

 private:
  const Artifact& artifact_;
};

}  // namespace kiln::artifact
