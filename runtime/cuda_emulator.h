// A CPU emulation of a CUDA device, for tests on machines without a GPU (never a `--device`).
//
// Modules are the generated kernels' host flavor (cuda::emulation_source), compiled at run time by
// the host C++ compiler ($KILN_EMU_CXX, default c++) into a shared object, cached by hash under
// $KILN_CACHE/cuda-emu. A launch runs the blocks one after another; a block's threads are fibers
// that switch at __syncthreads and at every warp shuffle, so barriers, shuffles and shared memory
// behave as on the GPU for code without data races. A barrier some threads never reach, or a
// shuffle with exited lanes, is reported as an error instead of hanging. Device allocations end
// at a guard page, so most out-of-bounds writes past a buffer crash at the faulting access.
//
// What it does not model: concurrency between blocks (they run in order), the memory model, and
// timing. Results are the kernels' own arithmetic on the CPU (libm for expf/tanhf, which may
// differ from CUDA's in the last bit).
#pragma once

#include <memory>
#include <string>

#include "runtime/cuda_device.h"

namespace kiln::runtime {

struct EmulatorOptions {
  std::string cxx;        // host compiler; "" = $KILN_EMU_CXX or "c++"
  std::string cache_dir;  // "" = $KILN_CACHE/cuda-emu or ~/.cache/kiln/cuda-emu
  int compute_capability = 90;
};

std::unique_ptr<CudaDevice> make_emulated_device(const EmulatorOptions& o = {});

// Counters of an emulated device (for tests of what the executor launched).
struct EmulatorStats {
  int64_t launches = 0;        // kernel launches executed (graph replays included)
  int64_t graph_launches = 0;  // graph replays
  int64_t captures = 0;        // end_capture calls
  int64_t blocks = 0;
  int64_t pdl_launches = 0;
};
// The counters of a device made by make_emulated_device (zeros for others).
EmulatorStats emulator_stats(const CudaDevice& d);

}  // namespace kiln::runtime
