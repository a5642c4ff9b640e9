// The reference backend: each graph is lowered and run by the interpreter as is (no passes), so
// it is the lowering's meaning, op by op. Graphs share the KV cache through one StateStore.
#include <algorithm>
#include <chrono>
#include <map>

#include "runtime/backend.h"
#include "runtime/interpreter.h"

namespace kiln::runtime {

Result<int> resolve_ctx(const gguf::GgufFile& file, int ctx) {
  if (ctx < 0) return make_error("ctx must not be negative, found ", ctx);
  if (ctx > 0) return ctx;
  std::string arch = file.architecture();
  KILN_ASSIGN_OR_RETURN(uint64_t train,
                        file.metadata().get_uint_or(arch + ".context_length", 4096));
  return int(std::min<uint64_t>(train, 4096));
}

Result<int> checked_slots(const lower::GraphSpec& spec, const BackendOptions& options) {
  const int slots = std::max(1, options.slots);
  if (spec.batch > slots)
    return make_error("a graph of ", spec.batch,
                      " sequences needs as many KV-cache slots; this "
                      "model was loaded with ",
                      slots, " (load with a larger batch)");
  return slots;
}

namespace {

class InterpRunner : public GraphRunner {
 public:
  InterpRunner(lower::GraphSpec spec, std::unique_ptr<ir::Graph> g)
      : spec_(spec), graph_(std::move(g)) {}
  Status init(const WeightSource& w, StateStore& s) {
    KILN_ASSIGN_OR_RETURN(interp_, Interpreter::create(*graph_, w, s));
    return Status::Ok();
  }
  const lower::GraphSpec& spec() const override { return spec_; }
  Status set_input(std::string_view name, std::span<const int32_t> values) override {
    return interp_->set_input(std::string(name), values);
  }
  bool has_input(std::string_view name) const override {
    return interp_->input_type(std::string(name)) != nullptr;
  }
  Status run() override { return interp_->run(); }
  Result<std::span<const float>> output(std::string_view name) const override {
    return interp_->output(std::string(name));
  }

 private:
  lower::GraphSpec spec_;
  std::unique_ptr<ir::Graph> graph_;
  std::unique_ptr<Interpreter> interp_;
};

class InterpBackend : public Backend {
 public:
  InterpBackend(const gguf::GgufFile& file, const BackendOptions& o, int ctx)
      : file_(file), options_(o), ctx_(ctx), weights_(file) {}

  std::string name() const override { return "interp"; }
  int threads() const override { return 1; }

  Result<GraphRunner*> graph(lower::GraphSpec spec) override {
    spec.ctx = ctx_;
    spec.kv_type = options_.kv_type;
    KILN_ASSIGN_OR_RETURN(spec.slots, checked_slots(spec, options_));
    const std::string key = spec.name();
    if (auto it = graphs_.find(key); it != graphs_.end()) return it->second.get();
    auto t0 = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(auto g, lower::lower_gguf(file_, spec));
    stats_.lower_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto r = std::make_unique<InterpRunner>(spec, std::move(g));
    KILN_RETURN_IF_ERROR(r->init(weights_, states_));
    stats_.graphs++;
    GraphRunner* p = r.get();
    graphs_[key] = std::move(r);
    return p;
  }

  void reset_states() override { states_.reset(); }

  BackendStats stats() const override {
    BackendStats s = stats_;
    s.state_bytes = states_.bytes();
    return s;
  }

 private:
  const gguf::GgufFile& file_;
  BackendOptions options_;
  int ctx_;
  GgufWeights weights_;
  StateStore states_;
  std::map<std::string, std::unique_ptr<InterpRunner>> graphs_;
  BackendStats stats_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_interpreter_backend(const gguf::GgufFile& file,
                                                          const BackendOptions& options) {
  if (options.kv_type != DType::F16 && options.kv_type != DType::Q8_0)
    return make_error("KV cache type ", dtype_name(options.kv_type),
                      " is not supported (f16, q8_0)");
  KILN_ASSIGN_OR_RETURN(int ctx, resolve_ctx(file, options.ctx));
  return std::unique_ptr<Backend>(std::make_unique<InterpBackend>(file, options, ctx));
}

}  // namespace kiln::runtime
