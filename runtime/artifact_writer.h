// `kiln compile`: a GGUF model -> one .kiln artifact (docs/artifact.md). Every graph the runtime
// will ask for (decode, and prefill at each bucket) goes through lowering, the pass pipeline and
// cpu::emit_object now, so that loading the artifact is mapping and linking only.
#pragma once

#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::artifact {

struct CompileOptions {
  // cpu::Target::parse (host, x86-64-v3, x86-64-v4, aarch64, ...) or cuda:sm_80[,sm_90...]
  // (runtime/artifact_cuda.h: PTX and a cubin per graph and arch)
  std::string target = "host";
  int ctx = 0;  // KV-cache length (0: min(model context, 4096))
  // Decode graphs for these batch sizes (sequences decoded together, Model::generate_batch); the
  // KV cache then has max(batches) sequence slots, which every graph addresses.
  std::vector<int> batches = {1};
  // Those above ctx are dropped. 8: a short prompt (a chat turn) costs one small pass.
  std::vector<int> prefill_buckets = {8, 32, 128, 512};
  DType kv_type = DType::F16;  // F16 or Q8_0
  bool embed_weights = true;   // false: --weights reference (path + sha256 of the GGUF)
  std::string pipeline = "canonicalize,merge-parallel-matmuls,fuse,plan-memory";
  bool microkernels = true;  // x86-64 only; AArch64 code never uses them
};

struct GraphReport {
  std::string name;
  size_t kernels = 0;
  uint64_t object_bytes = 0;  // the object code; for CUDA, PTX + cubins of every arch
  double lower_seconds = 0, passes_seconds = 0, codegen_seconds = 0;
};

inline constexpr int kMaxBatch = 256;

struct CompileReport {
  std::vector<GraphReport> graphs;
  std::vector<std::string> required_features;
  std::string target;
  std::vector<int> cuda_archs;  // a CUDA target: the archs compiled for (80, 90)
  uint64_t file_bytes = 0;
  double hash_seconds = 0;       // sha256 of the GGUF
  double constants_seconds = 0;  // derived constants and packed weights (the constants section)
  uint64_t constant_bytes = 0;   // their bytes
  size_t embedded_tensors = 0;   // weights in the embedded GGUF (CPU: those kernels read as stored)
  double write_seconds = 0;      // writing the file
  double seconds = 0;            // everything
};

// Writes `out_path` (via a temporary file and a rename: never a half-written artifact).
Result<CompileReport> compile_artifact(const std::string& gguf_path, const std::string& out_path,
                                       const CompileOptions& options);

}  // namespace kiln::artifact
