#include "runtime/cuda_backend.h"

#include <chrono>
#include <map>

#include "passes/pass_manager.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_executor.h"
#include "runtime/weights.h"

namespace kiln::runtime {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class CudaBackend : public Backend {
 public:
  CudaBackend(const gguf::GgufFile& file, const BackendOptions& o, int ctx,
              std::unique_ptr<CudaDevice> dev, const CudaBackendOptions& co,
              std::unique_ptr<CudaGraphSource> source = nullptr)
      : file_(file),
        options_(o),
        ctx_(ctx),
        dev_(std::move(dev)),
        source_(std::move(source)),
        weights_(file),
        host_constants_(weights_),
        constants_(std::make_unique<DeviceConstants>(*dev_, weights_, host_constants_)),
        states_(std::make_unique<DeviceStates>(*dev_)) {
    exec_options_.cuda_graph = co.cuda_graph;
  }
  ~CudaBackend() override {
    // Executors, then the device memory they point into, then the device.
    graphs_.clear();
    constants_.reset();
    states_.reset();
  }

  std::string name() const override { return "cuda"; }
  int threads() const override { return 1; }

  Result<GraphRunner*> graph(lower::GraphSpec spec) override {
    spec.ctx = ctx_;
    spec.kv_type = options_.kv_type;
    KILN_ASSIGN_OR_RETURN(spec.slots, checked_slots(spec, options_));
    const std::string key = spec.name();
    if (auto it = graphs_.find(key); it != graphs_.end()) return it->second.get();
    if (source_) return stored_graph(spec);
    auto t0 = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(auto g, lower::lower_gguf(file_, spec));
    stats_.lower_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    passes::PassContext pc;
    pc.options.verify_each = false;
    Status st = passes::run_pipeline(options_.pipeline, *g, pc);
    if (!st.ok()) return st.error().wrap(key);
    if (!pc.plan) return make_error(key, ": the pass pipeline made no memory plan");
    stats_.passes_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    CudaContext cx{dev_.get(), constants_.get(), states_.get(), exec_options_};
    KILN_ASSIGN_OR_RETURN(auto exec,
                          CudaExecutor::create(spec, std::move(g), std::move(*pc.plan), cx));
    stats_.compile_seconds += exec->compile_seconds();
    stats_.bind_seconds += seconds_since(t0) - exec->compile_seconds();
    stats_.graphs++;
    stats_.kernels += exec->launches_per_run();
    stats_.arena_bytes = std::max(stats_.arena_bytes, exec->arena_bytes());
    GraphRunner* r = exec.get();
    graphs_[key] = std::move(exec);
    return r;
  }

  void reset_states() override { (void)states_->reset(); }

  BackendStats stats() const override {
    BackendStats s = stats_;
    s.state_bytes = states_->bytes();
    s.constant_bytes = constants_->bytes();
    s.constant_evaluations = host_constants_.evaluations();
    s.constants_mapped = host_constants_.mapped_uses();
    return s;
  }

  // Registers the source's derived constants with the host store (before any graph binds).
  Status map_constants() {
    KILN_ASSIGN_OR_RETURN(auto mapped, source_->mapped_constants());
    for (MappedConstant& c : mapped) host_constants_.add_mapped(std::move(c.key), c.bytes);
    return Status::Ok();
  }

 private:
  // A graph from the source: its stored code; no lowering, no passes, no NVRTC.
  Result<GraphRunner*> stored_graph(const lower::GraphSpec& spec) {
    KILN_ASSIGN_OR_RETURN(CudaStoredGraph sg, source_->graph(spec, *dev_));
    stats_.lower_seconds += sg.load_seconds;  // parsing stands in for lowering and passes
    const auto t0 = std::chrono::steady_clock::now();
    // Without PDL the executor's regenerated table is the same (entries, grids and arguments
    // come from the IR; pdl only adds a prefetch inside kernel bodies): only launches change.
    CudaExecutorOptions eo = exec_options_;
    eo.pdl = eo.pdl && sg.pdl;
    CudaContext cx{dev_.get(), constants_.get(), states_.get(), eo};
    KILN_ASSIGN_OR_RETURN(auto exec, CudaExecutor::create(spec, std::move(sg.graph),
                                                          std::move(sg.plan), cx, &sg.image));
    stats_.bind_seconds += seconds_since(t0);
    stats_.graphs++;
    stats_.kernels += exec->launches_per_run();
    stats_.arena_bytes = std::max(stats_.arena_bytes, exec->arena_bytes());
    GraphRunner* r = exec.get();
    graphs_[spec.name()] = std::move(exec);
    return r;
  }

  const gguf::GgufFile& file_;
  BackendOptions options_;
  int ctx_;
  std::unique_ptr<CudaDevice> dev_;
  std::unique_ptr<CudaGraphSource> source_;
  GgufWeights weights_;
  ConstantStore host_constants_;
  std::unique_ptr<DeviceConstants> constants_;
  std::unique_ptr<DeviceStates> states_;
  CudaExecutorOptions exec_options_;
  std::map<std::string, std::unique_ptr<CudaExecutor>> graphs_;
  BackendStats stats_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cuda_backend(const gguf::GgufFile& file,
                                                   const BackendOptions& options,
                                                   const CudaBackendOptions& cuda) {
  if (options.kv_type != DType::F16)
    return make_error("KV cache type ", dtype_name(options.kv_type),
                      " is not supported on CUDA (f16)");
  KILN_RETURN_IF_ERROR(cuda_status());
  KILN_ASSIGN_OR_RETURN(int ctx, resolve_ctx(file, options.ctx));
  KILN_ASSIGN_OR_RETURN(auto dev, open_cuda_device());
  return std::unique_ptr<Backend>(
      std::make_unique<CudaBackend>(file, options, ctx, std::move(dev), cuda));
}

Result<std::unique_ptr<Backend>> make_cuda_backend(const gguf::GgufFile& file,
                                                   const BackendOptions& options,
                                                   const CudaBackendOptions& cuda,
                                                   std::unique_ptr<CudaGraphSource> source,
                                                   std::unique_ptr<CudaDevice> device) {
  if (!source) return make_cuda_backend(file, options, cuda);
  if (options.kv_type != DType::F16)
    return make_error("KV cache type ", dtype_name(options.kv_type),
                      " is not supported on CUDA (f16)");
  if (!device) {
    KILN_RETURN_IF_ERROR(cuda_status());
    KILN_ASSIGN_OR_RETURN(device, open_cuda_device());
  }
  KILN_ASSIGN_OR_RETURN(int ctx, resolve_ctx(file, options.ctx));
  auto b =
      std::make_unique<CudaBackend>(file, options, ctx, std::move(device), cuda, std::move(source));
  KILN_RETURN_IF_ERROR(b->map_constants());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace kiln::runtime
