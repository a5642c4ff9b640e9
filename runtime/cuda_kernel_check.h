// Every CUDA kernel of a graph against the reference interpreter, on random inputs (never zeros):
// the interpreter runs the whole graph once; then each region's kernel runs on the device with the
// interpreter's values of its operands (so errors never accumulate from one kernel to the next),
// result buffers poisoned with NaN so an unwritten element shows, and the KV caches carried on
// the device from kernel to kernel. Results and the final caches are compared with the
// interpreter's: max |got - want| / max |want|.
//
// Used by tests (on the CPU emulator) and by scripts/gpu-check (on the GPU).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/cuda_device.h"
#include "runtime/weights.h"

namespace kiln::runtime {

struct KernelCheckOptions {
  uint32_t seed = 1;
  int position = 37;           // decode: the token's position; prefill: the first token's
  double tol = 5e-3;           // results
  double state_tol = 5e-3;     // KV caches written by the kernels
  int max_regions = 0;         // > 0: only the first N regions (the emulator on big graphs)
  bool distinct_only = false;  // compare only the first region of each kernel function
  // Diagnostics: start from these KV caches (by state name) instead of random ones, and feed
  // this token (>= 0) instead of random ones, to replay one real decode step kernel by kernel.
  const std::map<std::string, std::vector<uint8_t>>* states = nullptr;
  int token = -1;
  // > 0: only the first N tokens of each sequence are real, the rest of the bucket is padding
  // (position -1), as a prompt shorter than its prefill bucket is.
  int real_tokens = 0;
  // > 0: only the first N batch rows are real, the others padding (a decode step of several
  // sequences after some of them stopped).
  int real_rows = 0;
};

struct RegionCheck {
  std::string region, entry, kind;
  double err = 0;  // the worst result of the region
  double tol = 0;
  bool ok = true;
  std::string note;  // what failed
};

struct KernelCheckReport {
  std::vector<RegionCheck> regions;
  std::vector<std::pair<std::string, double>> states;  // state name, error
  double worst = 0;
  std::string worst_region;
  int failures = 0;
  bool ok() const { return failures == 0; }
  std::string summary() const;  // one line
};

Result<KernelCheckReport> check_kernels(CudaDevice& dev, const ir::Graph& g,
                                        const WeightSource& weights,
                                        const KernelCheckOptions& o = {});

// max |got - want| / max |want| (NaN, or infinities that differ, count as infinite).
double relative_error(const std::vector<float>& got, const std::vector<float>& want);

}  // namespace kiln::runtime
