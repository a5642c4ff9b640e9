// What the CUDA executor needs from a device: memory, modules, launches on one stream, stream
// capture into a CUDA graph and its replay, events. Two implementations:
//
//  - cuda_driver.h: the real one, libcuda.so.1 opened with dlopen (never linked).
//  - cuda_emulator.h: a test double that runs the generated kernels' host flavor on the CPU
//    (fibers for threads, real barriers and warp shuffles). It executes the same kernel code, so
//    the executor's bookkeeping (argument packing, arena offsets, graph capture) and the kernels'
//    indexing are tested on machines without a GPU. It is never a `--device`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/status.h"

namespace kiln::runtime {

using DevPtr = uint64_t;

// A compiled module in every form a device may want.
struct ModuleImage {
  std::string name;
  std::string ptx;                             // JIT-compiled by the driver when no cubin fits
  std::map<int, std::vector<uint8_t>> cubins;  // compute capability -> cubin
  std::string emulation_source;                // host flavor (cuda::emulation_source)
};

struct LaunchDims {
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block = 256;
};

class CudaDevice {
 public:
  virtual ~CudaDevice() = default;
  virtual std::string name() const = 0;        // "NVIDIA H100 80GB HBM3, sm_90, 132 SMs"
  virtual int compute_capability() const = 0;  // 90
  virtual bool emulated() const { return false; }

  // Device memory, zeroed.
  virtual Result<DevPtr> alloc(size_t bytes) = 0;
  virtual void free(DevPtr p) = 0;
  // Page-locked host memory (for asynchronous copies).
  virtual Result<void*> alloc_host(size_t bytes) = 0;
  virtual void free_host(void* p) = 0;

  // Copies, ordered on the device's stream. The synchronous ones wait for it.
  virtual Status upload(DevPtr dst, const void* src, size_t n) = 0;
  virtual Status download(void* dst, DevPtr src, size_t n) = 0;
  virtual Status upload_async(DevPtr dst, const void* src, size_t n) = 0;  // src: pinned
  virtual Status download_async(void* dst, DevPtr src, size_t n) = 0;      // dst: pinned
  virtual Status memset_async(DevPtr dst, uint8_t value, size_t n) = 0;

  // Loads a module (a cubin for this device's arch, else its PTX) and finds a kernel.
  virtual Result<int> load_module(const ModuleImage& m) = 0;
  virtual Result<void*> function(int module, const std::string& entry) = 0;
  // Launches fn with one by-value argument of `args_bytes` bytes (the KilnArgs struct). With
  // `pdl` the launch may start before the previous kernel ends (the kernel waits for it with
  // griddepcontrol.wait); devices without it ignore the flag.
  virtual Status launch(void* fn, const LaunchDims& d, const void* args, size_t args_bytes,
                        bool pdl) = 0;

  // Stream capture: the launches and copies between begin and end become a graph.
  virtual Status begin_capture() = 0;
  virtual Result<int> end_capture() = 0;
  virtual Status launch_graph(int graph) = 0;
  virtual void destroy_graph(int graph) = 0;

  virtual Status synchronize() = 0;
  // Events for timing: record on the stream; milliseconds between two recorded events.
  virtual Result<int> record_event() = 0;
  virtual Result<double> elapsed_ms(int start, int stop) = 0;
  virtual void destroy_event(int e) = 0;

  // True when launches with pdl=true really use programmatic dependent launch.
  virtual bool supports_pdl() const { return false; }
  virtual size_t memory_free() const { return 0; }
};

}  // namespace kiln::runtime
