// The CUDA executor: one fused, memory-planned graph on a CUDA device (cuda_device.h).
//
// At creation the graph's module is generated (codegen/cuda) and compiled (NVRTC, disk-cached) or
// taken as given (an artifact's cubins), every kernel argument is bound to a device address —
// arena values at their memory-plan offsets in a device arena, weights and derived constants from
// DeviceConstants (uploaded once, repacked for the kernels), the KV cache from DeviceStates,
// inputs to buffers of their own (so the sample kernel can advance them), views at their
// operand's address plus offset — and each kernel's KilnArgs is built once. A run is then:
//
//   upload the inputs that changed; replay the captured CUDA graph (or launch every kernel)
//
// with no host synchronization; output() and tokens() wait for the device. The graph is captured
// on the first run and replayed after: positions and the KV length are read from device memory,
// so nothing in it changes per token.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"
#include "frontends/gguf/lower.h"
#include "ir/graph.h"
#include "passes/memory_plan.h"
#include "runtime/backend.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_device.h"
#include "runtime/weights.h"

namespace kiln::runtime {

// Weights and derived constants on the device, each uploaded once in the layout kernels want.
// The real tokens of a run: its positions >= 0 (the rows of a prefill bucket that are not
// padding), as the reference interpreter counts them.
int32_t count_tokens(std::span<const int32_t> pos);

class DeviceConstants {
 public:
  DeviceConstants(CudaDevice& dev, const WeightSource& weights, ConstantStore& constants)
      : dev_(dev), weights_(weights), constants_(constants) {}
  ~DeviceConstants();
  // `v` is a weight or a derived constant (passes::constant_values).
  Result<DevPtr> get(const ir::Value& v, cuda::ArgLayout layout);
  // A host-made table (cuda::HostTable), made and uploaded on first use.
  Result<DevPtr> table(const cuda::HostTable& t);
  // Puts the host tables kernel `ks` reads into their slots of `args` (kMaxArgs pointers).
  Status bind_tables(const cuda::Program& p, const cuda::KernelSpec& ks, std::vector<void*>& args);
  uint64_t bytes() const { return bytes_; }
  double upload_seconds() const { return seconds_; }

 private:
  // Uploads `bytes` under `key` and counts them and the time since `t0`.
  Result<DevPtr> store(const std::string& key, std::span<const uint8_t> bytes,
                       std::chrono::steady_clock::time_point t0);

  CudaDevice& dev_;
  const WeightSource& weights_;
  ConstantStore& constants_;
  std::map<std::string, DevPtr> by_key_;
  uint64_t bytes_ = 0;
  double seconds_ = 0;
};

// States (the KV cache) on the device, zeroed when created, shared by every graph of a model.
class DeviceStates {
 public:
  explicit DeviceStates(CudaDevice& dev) : dev_(dev) {}
  ~DeviceStates();
  Result<DevPtr> get(const std::string& name, const ir::TensorType& type);
  Status reset();  // zeroes every state
  uint64_t bytes() const;
  // The state's bytes (for tests).
  Result<std::vector<uint8_t>> read(const std::string& name);
  Status write(const std::string& name, std::span<const uint8_t> bytes);

 private:
  struct Entry {
    ir::TensorType type;
    DevPtr ptr = 0;
    uint64_t bytes = 0;
  };
  CudaDevice& dev_;
  std::map<std::string, Entry> states_;
};

// The module of a program for `dev`: NVRTC-compiled for its arch (through the disk cache), or the
// host flavor for the emulator.
Result<ModuleImage> build_module_image(const cuda::Program& p, const CudaDevice& dev,
                                       const cuda::CompileOptions& co = {});

// Capture-once, replay-forever bookkeeping of one CUDA graph.
class GraphReplay {
 public:
  // Runs `launches` inside a capture the first time and replays the graph after. When capture or
  // instantiation fails, the reason is kept and every later call launches directly.
  Status run(CudaDevice& dev, const std::function<Status()>& launches);
  void reset(CudaDevice& dev);  // forgets the graph (the next run captures again)
  int captures() const { return captures_; }
  int replays() const { return replays_; }
  int direct_runs() const { return direct_; }
  const std::string& disabled_reason() const { return disabled_; }

 private:
  int graph_ = -1;
  int captures_ = 0, replays_ = 0, direct_ = 0;
  std::string disabled_;
};

struct CudaExecutorOptions {
  bool cuda_graph = true;  // capture the run as a CUDA graph (--no-cuda-graph: false)
  bool pdl = true;         // programmatic dependent launch where the device has it
  cuda::CompileOptions compile;
};

struct CudaContext {
  CudaDevice* dev = nullptr;
  DeviceConstants* constants = nullptr;
  DeviceStates* states = nullptr;
  CudaExecutorOptions options;
};

class CudaExecutor : public GraphRunner {
 public:
  // Generates and compiles the module (or uses `image` when given: an artifact's) and binds every
  // kernel argument.
  static Result<std::unique_ptr<CudaExecutor>> create(lower::GraphSpec spec,
                                                      std::unique_ptr<ir::Graph> graph,
                                                      passes::MemoryPlan plan,
                                                      const CudaContext& cx,
                                                      const ModuleImage* image = nullptr);
  ~CudaExecutor() override;

  const lower::GraphSpec& spec() const override { return spec_; }
  Status set_input(std::string_view name, std::span<const int32_t> values) override;
  bool has_input(std::string_view name) const override;
  Status run() override;
  Result<std::span<const float>> output(std::string_view name) const override;

  // The fused argmax (or Gumbel-max draw) of each row of the sampled output after run(): a copy
  // of 4 bytes per row, no logits.
  Result<std::span<const int32_t>> tokens();
  // Sampling on the device: temperature <= 0 is argmax.
  Status set_sampling(float temperature, uint64_t seed);
  // Decode graphs: the sample kernel writes each row's token into the `tokens` input and adds 1
  // to `pos`, so step() runs the next token with no upload.
  Status set_feedback(bool on);
  // One run in feedback mode, returning the tokens (one per sequence).
  Result<std::span<const int32_t>> step();

  void set_cuda_graph(bool on) { options_.cuda_graph = on; }
  const cuda::Program& program() const { return program_; }
  const ir::Graph& graph() const { return *graph_; }
  size_t launches_per_run() const { return kernels_.size() + (program_.has_sample ? 1 : 0); }
  const GraphReplay& replay() const { return replay_[feedback_ ? 1 : 0]; }
  double compile_seconds() const { return compile_seconds_; }
  bool module_from_cache() const { return from_cache_; }
  uint64_t arena_bytes() const { return plan_.arena_bytes; }
  std::string describe() const;  // one line per kernel: name, entry, grid, summary
  // The bytes of a value of graph() after a run (any value with a device address: region
  // results, inputs, states, views of them): for diagnostics and tests.
  Result<std::vector<uint8_t>> read(const ir::Value& v) const;
  // Microseconds per launch of each kernel (kernels_by_region order, then the sample kernel),
  // each launched `reps` times back to back between two events, without PDL. Values are
  // garbage afterwards (in-place kernels repeat): for measurements only, then reset states.
  Result<std::vector<double>> profile(int reps);

 private:
  struct Io {
    std::string name;
    const ir::TensorType* type = nullptr;
    DevPtr dev = 0;
    void* host = nullptr;  // pinned staging (inputs)
    uint64_t bytes = 0;
    bool dirty = false;
    mutable std::vector<float> out;  // outputs: the last download
  };
  struct Kernel {
    void* fn = nullptr;
    LaunchDims dims;
    std::vector<void*> args;  // KilnArgs
  };
  CudaExecutor() = default;
  Status bind(const CudaContext& cx, const ModuleImage* image);
  Status launch_all(bool feedback);

  lower::GraphSpec spec_;
  std::unique_ptr<ir::Graph> graph_;
  passes::MemoryPlan plan_;
  cuda::Program program_;
  CudaDevice* dev_ = nullptr;
  CudaExecutorOptions options_;
  int module_ = -1;
  std::vector<Kernel> kernels_;
  Kernel sample_, sample_fb_;
  std::vector<Io> inputs_, outputs_;
  DevPtr arena_ = 0, cells_ = 0, token_dev_ = 0, params_dev_ = 0;
  // The run's real token count (KernelSpec::token_count), from the `pos` input.
  DevPtr ntok_dev_ = 0;
  int32_t* ntok_host_ = nullptr;
  bool ntok_dirty_ = false;
  std::unordered_map<const ir::Value*, DevPtr> addr_;  // every bound value
  std::vector<DevPtr> scratches_;  // per kernel (attention partials and counters)
  int32_t* token_host_ = nullptr;
  cuda::SampleParams* params_host_ = nullptr;
  bool params_dirty_ = true;
  bool outputs_stale_ = true;
  bool feedback_ = false;
  GraphReplay replay_[2];
  double compile_seconds_ = 0;
  bool from_cache_ = false;
};

}  // namespace kiln::runtime
