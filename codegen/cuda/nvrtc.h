// NVRTC, opened with dlopen at run time (never linked): CUDA C++ -> PTX and cubins, without a
// GPU. Results are cached on disk by a hash of the source, the options and NVRTC's version, in
// $KILN_CACHE/cuda (default ~/.cache/kiln/cuda).
//
//   KILN_ASSIGN_OR_RETURN(cuda::CompiledModule m, cuda::compile_module(program.source, "decode"));
//   m.cubins.at(90)  // the sm_90 cubin;  m.ptx: PTX for the lowest arch, for newer GPUs' JIT
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/status.h"

namespace kiln::cuda {

struct CompileOptions {
  std::vector<int> archs = {80, 90};  // a cubin per compute capability (80 = sm_80)
  bool cache = true;
  std::string cache_dir;  // "" = $KILN_CACHE/cuda or ~/.cache/kiln/cuda
};

// What ptxas reported for one kernel (NVRTC's log with -v).
struct KernelResources {
  std::string entry;
  int arch = 0;
  int registers = 0;
  int stack = 0;         // bytes of stack frame
  int spill_stores = 0;  // bytes
  int spill_loads = 0;
  int smem = 0;  // bytes of static shared memory
};

struct CompiledModule {
  std::string name;
  std::string ptx;                             // for the first arch (drivers JIT it for newer GPUs)
  std::map<int, std::vector<uint8_t>> cubins;  // compute capability -> cubin
  std::map<int, std::string> logs;             // NVRTC's log per arch (ptxas -v)
  std::vector<KernelResources> resources;      // parsed from the logs
  std::string key;                             // cache key
  bool from_cache = false;
  double seconds = 0;  // compile time (0 when cached)
};

// Ok when NVRTC can be loaded; otherwise the one-line reason ("cannot load libnvrtc: ...").
Status nvrtc_status();
// "13.0"
Result<std::string> nvrtc_version();

// Compiles a module for every arch in o.archs. Errors carry NVRTC's log.
Result<CompiledModule> compile_module(const std::string& source, const std::string& name,
                                      const CompileOptions& o = {});

// Parses ptxas's -v report ("Compiling entry function 'k' for 'sm_90'", "Used 40 registers").
std::vector<KernelResources> parse_ptxas_log(const std::string& log, int arch);

// The kernel cache directory in use.
std::string cache_dir(const CompileOptions& o = {});

// The ptxas binary of the CUDA toolkit ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH), or "".
std::string find_ptxas();
// Assembles `ptx` for sm_<arch> with the ptxas binary (-v), returning its report.
Result<std::string> run_ptxas(const std::string& ptxas, const std::string& ptx, int arch);

}  // namespace kiln::cuda
