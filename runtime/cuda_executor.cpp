#include "runtime/cuda_executor.h"

#include <chrono>
#include <cstring>
#include <new>
#include <unordered_map>

#include "codegen/cuda/weight_layout.h"
#include "ir/half.h"
#include "ir/printer.h"
#include "passes/graph_util.h"
#include "runtime/interp_ggml_math.h"
#include "runtime/rope_angles.h"

namespace kiln::runtime {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

constexpr size_t kArgsBytes = sizeof(void*) * cuda::kMaxArgs;

}  // namespace

// ---- DeviceConstants ----

DeviceConstants::~DeviceConstants() {
  for (auto& [k, p] : by_key_) dev_.free(p);
}

int32_t count_tokens(std::span<const int32_t> pos) {
  int32_t n = 0;
  for (int32_t p : pos) n += p >= 0;
  return n;
}

Result<DevPtr> DeviceConstants::table(const cuda::HostTable& t) {
  const std::string key = t.key();
  if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> tab;
  if (t.kind == cuda::HostTable::kGeluF16) {
    tab.resize(65536);
    for (uint32_t h = 0; h < 65536; ++h)
      tab[h] = interp::ggml_gelu_tanh_f16(f16_to_f32(uint16_t(h)));
  } else {
    if (t.n_dims < 2 || t.positions < 1) return make_error("empty rope table ", key);
    const size_t row = size_t(t.n_dims / 2) * 2;
    tab.resize(size_t(t.positions + 1) * row);
    for (int64_t pos = -1; pos < t.positions; ++pos)
      rope_cos_sin(pos, t.n_dims, t.freq_base, t.freq_scale, tab.data() + size_t(pos + 1) * row);
  }
  return store(key, {reinterpret_cast<const uint8_t*>(tab.data()), tab.size() * sizeof(float)}, t0);
}

Status DeviceConstants::bind_tables(const cuda::Program& p, const cuda::KernelSpec& ks,
                                    std::vector<void*>& args) {
  args.resize(cuda::kMaxArgs, nullptr);
  for (int t : ks.host_tables) {
    if (t < 0 || size_t(t) >= p.host_tables.size())
      return make_error("kernel ", ks.name, " reads host table ", t, " of ", p.host_tables.size());
    KILN_ASSIGN_OR_RETURN(DevPtr d, table(p.host_tables[size_t(t)]));
    args[size_t(cuda::kMaxArgs - 1 - t)] = reinterpret_cast<void*>(d);
  }
  return Status::Ok();
}

Result<DevPtr> DeviceConstants::get(const ir::Value& v, cuda::ArgLayout layout) {
  const bool packed = layout == cuda::ArgLayout::kPacked;
  const std::string key = constant_key(v) + (packed ? "@packed" : "");
  if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
  const auto t0 = std::chrono::steady_clock::now();
  std::span<const uint8_t> bytes;
  const uint64_t n = v.type.bytes().value_or(0);
  if (v.def && v.def->op == ir::Op::Weight) {
    KILN_ASSIGN_OR_RETURN(bytes, weights_.get(v.def->attrs.s("name"), v.type));
  } else {
    KILN_ASSIGN_OR_RETURN(const uint8_t* p, constants_.get(v));
    bytes = std::span<const uint8_t>(p, n);
  }
  std::vector<uint8_t> repacked;
  if (packed && cuda::is_repacked(v.type.dtype)) {
    const int64_t K = v.type.dim(-1);
    auto r = cuda::pack_weight(v.type.dtype, v.type.numel() / K, K, bytes);
    if (!r.ok()) return r.error().wrap("constant " + key);
    repacked = std::move(*r);
    bytes = repacked;
  }
  return store(key, bytes, t0);
}

Result<DevPtr> DeviceConstants::store(const std::string& key, std::span<const uint8_t> bytes,
                                      std::chrono::steady_clock::time_point t0) {
  KILN_ASSIGN_OR_RETURN(DevPtr p, dev_.alloc(bytes.size()));
  Status st = dev_.upload(p, bytes.data(), bytes.size());
  if (!st.ok()) {
    dev_.free(p);
    return st.error();
  }
  by_key_[key] = p;
  bytes_ += bytes.size();
  seconds_ += seconds_since(t0);
  return p;
}

// ---- DeviceStates ----

DeviceStates::~DeviceStates() {
  for (auto& [n, e] : states_) dev_.free(e.ptr);
}

Result<DevPtr> DeviceStates::get(const std::string& name, const ir::TensorType& type) {
  if (auto it = states_.find(name); it != states_.end()) {
    if (it->second.type != type)
      return make_error("state '", name, "' is ", it->second.type.str(), " in one graph and ",
                        type.str(), " in another");
    return it->second.ptr;
  }
  const uint64_t n = type.bytes().value_or(0);
  KILN_ASSIGN_OR_RETURN(DevPtr p, dev_.alloc(n));
  states_[name] = Entry{type, p, n};
  return p;
}

Status DeviceStates::reset() {
  for (auto& [n, e] : states_) KILN_RETURN_IF_ERROR(dev_.memset_async(e.ptr, 0, e.bytes));
  return dev_.synchronize();
}

uint64_t DeviceStates::bytes() const {
  uint64_t n = 0;
  for (const auto& [k, e] : states_) n += e.bytes;
  return n;
}

Result<std::vector<uint8_t>> DeviceStates::read(const std::string& name) {
  auto it = states_.find(name);
  if (it == states_.end()) return make_error("no state '", name, "'");
  std::vector<uint8_t> b(it->second.bytes);
  KILN_RETURN_IF_ERROR(dev_.download(b.data(), it->second.ptr, b.size()));
  return b;
}

Status DeviceStates::write(const std::string& name, std::span<const uint8_t> bytes) {
  auto it = states_.find(name);
  if (it == states_.end()) return make_error("no state '", name, "'");
  if (bytes.size() != it->second.bytes) return make_error("state '", name, "': size mismatch");
  return dev_.upload(it->second.ptr, bytes.data(), bytes.size());
}

// ---- modules ----

Result<ModuleImage> build_module_image(const cuda::Program& p, const CudaDevice& dev,
                                       const cuda::CompileOptions& co) {
  ModuleImage m;
  m.name = p.graph_name;
  if (dev.emulated()) {
    m.emulation_source = cuda::emulation_source(p);
    return m;
  }
  cuda::CompileOptions o = co;
  const int cc = dev.compute_capability();
  bool has = false;
  for (int a : o.archs) has |= a == cc;
  if (!has) o.archs.push_back(cc);
  KILN_ASSIGN_OR_RETURN(cuda::CompiledModule c, cuda::compile_module(p.source, p.graph_name, o));
  m.ptx = std::move(c.ptx);
  m.cubins = std::move(c.cubins);
  return m;
}

// ---- GraphReplay ----

Status GraphReplay::run(CudaDevice& dev, const std::function<Status()>& launches) {
  if (!disabled_.empty()) {
    ++direct_;
    return launches();
  }
  if (graph_ < 0) {
    KILN_RETURN_IF_ERROR(dev.begin_capture());
    Status st = launches();
    auto g = dev.end_capture();
    if (!st.ok()) return st;
    if (!g.ok()) {
      // The graph could not be built (an old driver, a capture-unsafe call): launch directly.
      disabled_ = g.message();
      ++direct_;
      return launches();
    }
    graph_ = *g;
    ++captures_;
  }
  ++replays_;
  return dev.launch_graph(graph_);
}

void GraphReplay::reset(CudaDevice& dev) {
  if (graph_ >= 0) dev.destroy_graph(graph_);
  graph_ = -1;
}

// ---- CudaExecutor ----

Result<std::unique_ptr<CudaExecutor>> CudaExecutor::create(lower::GraphSpec spec,
                                                           std::unique_ptr<ir::Graph> graph,
                                                           passes::MemoryPlan plan,
                                                           const CudaContext& cx,
                                                           const ModuleImage* image) {
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  e->spec_ = spec;
  e->graph_ = std::move(graph);
  e->plan_ = std::move(plan);
  e->dev_ = cx.dev;
  e->options_ = cx.options;
  Status st = e->bind(cx, image);
  if (!st.ok()) return st.error().wrap("cuda executor " + spec.name());
  return e;
}

CudaExecutor::~CudaExecutor() {
  if (!dev_) return;
  (void)dev_->synchronize();
  for (GraphReplay& r : replay_) r.reset(*dev_);
  for (Io& io : inputs_) {
    if (io.dev) dev_->free(io.dev);
    if (io.host) dev_->free_host(io.host);
  }
  for (DevPtr p : {arena_, cells_, token_dev_, params_dev_, ntok_dev_})
    if (p) dev_->free(p);
  if (ntok_host_) dev_->free_host(ntok_host_);
  for (DevPtr p : scratches_) dev_->free(p);
  if (token_host_) dev_->free_host(token_host_);
  if (params_host_) dev_->free_host(params_host_);
}

Status CudaExecutor::bind(const CudaContext& cx, const ModuleImage* image) {
  const ir::Graph& g = *graph_;
  cuda::Options copt;
  copt.pdl = options_.pdl;
  KILN_ASSIGN_OR_RETURN(program_, cuda::generate(g, copt));
  ModuleImage built;
  if (!image) {
    const auto t0 = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(built, build_module_image(program_, *dev_, options_.compile));
    compile_seconds_ = seconds_since(t0);
    image = &built;
  }
  KILN_ASSIGN_OR_RETURN(module_, dev_->load_module(*image));

  std::map<std::pair<int, int>, const passes::PlanEntry*> entries;
  for (const passes::PlanEntry& e : plan_.entries) entries[{e.node, e.result}] = &e;
  const auto constants = passes::constant_values(g);
  std::unordered_map<const ir::Value*, DevPtr> addr;
  KILN_ASSIGN_OR_RETURN(arena_, dev_->alloc(std::max<uint64_t>(plan_.arena_bytes, 256)));

  // The address of a value a kernel reads: bound values, views of them, or constants in the
  // layout the kernel wants.
  auto address = [&](const ir::Value* v, cuda::ArgLayout layout) -> Result<DevPtr> {
    uint64_t off = 0;
    const ir::Value* root = v;
    while (!addr.count(root) && root->def && passes::is_free(*root->def)) {
      auto a = passes::alias_of(*root->def, root->index);
      if (!a) return make_error("a view without alias: ", ir::print_node(*root->def));
      off += a->offset;
      root = root->def->operand(a->operand);
    }
    if (addr.count(root)) return addr.at(root) + off;
    if (constants.count(root)) {
      if (layout == cuda::ArgLayout::kPacked && (off != 0 || root->type.dim(-1) != v->type.dim(-1)))
        return make_error("a view of a repacked weight that does not keep its rows");
      KILN_ASSIGN_OR_RETURN(DevPtr p, cx.constants->get(*root, layout));
      return p + off;
    }
    return make_error("value ", root->name.empty() ? "%" + std::to_string(root->id) : root->name,
                      " has no device address");
  };

  size_t k = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    switch (n.op) {
      case ir::Op::Input: {
        Io io;
        io.name = n.attrs.s("name");
        io.type = &n.result()->type;
        io.bytes = io.type->bytes().value_or(0);
        KILN_ASSIGN_OR_RETURN(io.dev, dev_->alloc(io.bytes));
        KILN_ASSIGN_OR_RETURN(io.host, dev_->alloc_host(io.bytes));
        addr[n.result()] = io.dev;
        inputs_.push_back(std::move(io));
        continue;
      }
      case ir::Op::State: {
        KILN_ASSIGN_OR_RETURN(DevPtr p, cx.states->get(n.attrs.s("name"), n.result()->type));
        addr[n.result()] = p;
        continue;
      }
      case ir::Op::Output: {
        Io io;
        io.name = n.attrs.s("name");
        io.type = &n.operand(0)->type;
        io.bytes = io.type->bytes().value_or(0);
        KILN_ASSIGN_OR_RETURN(io.dev, address(n.operand(0), cuda::ArgLayout::kPlain));
        outputs_.push_back(std::move(io));
        continue;
      }
      case ir::Op::Region:
        break;
      default:
        continue;  // weights, constants and views are resolved when a kernel reads them
    }
    const cuda::KernelSpec& ks = program_.kernels_by_region[k++];
    Kernel kern;
    KILN_ASSIGN_OR_RETURN(kern.fn, dev_->function(module_, ks.entry));
    std::copy(ks.grid, ks.grid + 3, kern.dims.grid);
    kern.dims.block = ks.block;
    for (int a = 0; a < n.num_operands(); ++a) {
      auto p = address(n.operand(a), ks.layouts[size_t(a)]);
      if (!p.ok()) return p.error().wrap("region " + ks.name + " operand " + std::to_string(a));
      kern.args.push_back(reinterpret_cast<void*>(*p));
    }
    for (int r = 0; r < int(n.results.size()); ++r) {
      const ir::Value* v = n.result(r);
      DevPtr p = 0;
      auto alias = passes::alias_of(n, r);
      auto it = entries.find({int(i), r});
      if (alias && (!ks.result_written[size_t(r)] || it == entries.end() ||
                    it->second->storage == passes::Storage::kExternal)) {
        p = reinterpret_cast<DevPtr>(kern.args[size_t(alias->operand)]) + alias->offset;
      } else {
        if (!ks.result_written[size_t(r)])
          return make_error("region ", ks.name, " result ", r,
                            " is not written and aliases nothing");
        if (it == entries.end())
          return make_error("region ", ks.name, " result ", r, " has no memory-plan entry");
        const passes::PlanEntry& e = *it->second;
        if (e.storage == passes::Storage::kExternal)
          return make_error("region ", ks.name, " result ", r, " is outside the arena");
        if (e.offset + e.bytes > plan_.arena_bytes) return make_error("plan outside the arena");
        p = arena_ + e.offset;
      }
      addr[v] = p;
      kern.args.push_back(reinterpret_cast<void*>(p));
    }
    if (ks.scratch_bytes) {
      KILN_ASSIGN_OR_RETURN(DevPtr s,
                            dev_->alloc(ks.scratch_bytes));  // zeroed: counters start at 0
      kern.args.push_back(reinterpret_cast<void*>(s));
      scratches_.push_back(s);
    }
    if (ks.argmax) {
      const int64_t rows = program_.argmax_rows;
      if (!cells_) {
        KILN_ASSIGN_OR_RETURN(cells_, dev_->alloc(uint64_t(rows) * 8));
        KILN_ASSIGN_OR_RETURN(token_dev_, dev_->alloc(uint64_t(rows) * 4));
        KILN_ASSIGN_OR_RETURN(params_dev_, dev_->alloc(sizeof(cuda::SampleParams)));
        KILN_ASSIGN_OR_RETURN(void* th, dev_->alloc_host(uint64_t(rows) * 4));
        KILN_ASSIGN_OR_RETURN(void* ph, dev_->alloc_host(sizeof(cuda::SampleParams)));
        token_host_ = static_cast<int32_t*>(th);
        params_host_ = new (ph) cuda::SampleParams();
      }
      kern.args.push_back(reinterpret_cast<void*>(cells_));
      kern.args.push_back(reinterpret_cast<void*>(params_dev_));
    }
    if (ks.token_count) {
      if (!ntok_dev_) {
        KILN_ASSIGN_OR_RETURN(ntok_dev_, dev_->alloc(4));
        KILN_ASSIGN_OR_RETURN(void* h, dev_->alloc_host(4));
        ntok_host_ = static_cast<int32_t*>(h);
        *ntok_host_ = 0;  // all rows until `pos` is set
        ntok_dirty_ = true;
      }
      kern.args.push_back(reinterpret_cast<void*>(ntok_dev_));
    }
    if (int(kern.args.size()) > cuda::kMaxArgs) return make_error("too many kernel arguments");
    KILN_RETURN_IF_ERROR(cx.constants->bind_tables(program_, ks, kern.args));
    kernels_.push_back(std::move(kern));
  }
  if (k != program_.kernels_by_region.size()) return make_error("kernel count mismatch");
  addr_ = addr;

  if (program_.has_sample) {
    KILN_ASSIGN_OR_RETURN(sample_.fn, dev_->function(module_, program_.sample.entry));
    sample_.dims.block = 32;
    sample_.args = {reinterpret_cast<void*>(cells_), reinterpret_cast<void*>(token_dev_), nullptr,
                    nullptr, reinterpret_cast<void*>(params_dev_)};
    sample_.args.resize(cuda::kMaxArgs, nullptr);
    sample_fb_ = sample_;
    // Feedback: the decode graph's tokens [B, 1] and pos [B, 1], one row per sampled row.
    for (const Io& io : inputs_) {
      const bool one_per_row = io.type->numel() == program_.argmax_rows;
      if (io.name == "tokens" && one_per_row) sample_fb_.args[2] = reinterpret_cast<void*>(io.dev);
      if (io.name == "pos" && one_per_row) sample_fb_.args[3] = reinterpret_cast<void*>(io.dev);
    }
  }
  return Status::Ok();
}

Status CudaExecutor::set_input(std::string_view name, std::span<const int32_t> values) {
  for (Io& io : inputs_)
    if (io.name == name) {
      if (io.type->dtype != DType::I32 || int64_t(values.size()) != io.type->numel())
        return make_error("input '", std::string(name), "' is ", io.type->str(), ", given ",
                          values.size(), " i32 values");
      std::memcpy(io.host, values.data(), io.bytes);
      io.dirty = true;
      if (name == "pos" && ntok_host_) {
        *ntok_host_ = count_tokens(values);
        ntok_dirty_ = true;
      }
      return Status::Ok();
    }
  return make_error("graph ", spec_.name(), " has no input '", std::string(name), "'");
}

bool CudaExecutor::has_input(std::string_view name) const {
  for (const Io& io : inputs_)
    if (io.name == name) return true;
  return false;
}

Status CudaExecutor::launch_all(bool feedback) {
  const bool pdl = options_.pdl && dev_->supports_pdl();
  for (const Kernel& k : kernels_)
    KILN_RETURN_IF_ERROR(dev_->launch(k.fn, k.dims, k.args.data(), kArgsBytes, pdl));
  if (program_.has_sample) {
    const Kernel& s = feedback ? sample_fb_ : sample_;
    KILN_RETURN_IF_ERROR(dev_->launch(s.fn, s.dims, s.args.data(), kArgsBytes, pdl));
  }
  return Status::Ok();
}

Status CudaExecutor::run() {
  for (Io& io : inputs_)
    if (io.dirty) {
      KILN_RETURN_IF_ERROR(dev_->upload_async(io.dev, io.host, io.bytes));
      io.dirty = false;
    }
  if (ntok_dirty_) {
    KILN_RETURN_IF_ERROR(dev_->upload_async(ntok_dev_, ntok_host_, 4));
    ntok_dirty_ = false;
  }
  if (params_dirty_ && params_dev_) {
    KILN_RETURN_IF_ERROR(dev_->upload_async(params_dev_, params_host_, sizeof(cuda::SampleParams)));
    params_dirty_ = false;
  }
  const bool fb = feedback_;
  auto launches = [this, fb] { return launch_all(fb); };
  Status st = options_.cuda_graph ? replay_[fb ? 1 : 0].run(*dev_, launches) : launch_all(fb);
  outputs_stale_ = true;
  return st;
}

Result<std::span<const float>> CudaExecutor::output(std::string_view name) const {
  for (const Io& io : outputs_)
    if (io.name == name) {
      if (io.type->dtype != DType::F32)
        return make_error("output '", std::string(name), "' is not f32");
      if (io.out.size() != size_t(io.type->numel()) || outputs_stale_) {
        io.out.resize(size_t(io.type->numel()));
        KILN_RETURN_IF_ERROR(dev_->download(io.out.data(), io.dev, io.bytes));
      }
      return std::span<const float>(io.out);
    }
  return make_error("graph ", spec_.name(), " has no output '", std::string(name), "'");
}

Result<std::span<const int32_t>> CudaExecutor::tokens() {
  if (!program_.has_sample) return make_error("this graph has no fused argmax");
  const size_t n = size_t(program_.argmax_rows);
  KILN_RETURN_IF_ERROR(dev_->download_async(token_host_, token_dev_, n * 4));
  KILN_RETURN_IF_ERROR(dev_->synchronize());
  return std::span<const int32_t>(token_host_, n);
}

Status CudaExecutor::set_sampling(float temperature, uint64_t seed) {
  if (!params_host_) return make_error("this graph has no fused argmax");
  params_host_->temperature = temperature;
  params_host_->seed_lo = uint32_t(seed);
  params_host_->seed_hi = uint32_t(seed >> 32);
  params_host_->step = 0;
  params_dirty_ = true;
  return Status::Ok();
}

Status CudaExecutor::set_feedback(bool on) {
  if (on && (!program_.has_sample || !sample_fb_.args[2] || !sample_fb_.args[3]))
    return make_error("feedback needs a decode graph with one token per sequence");
  feedback_ = on;
  return Status::Ok();
}

Result<std::span<const int32_t>> CudaExecutor::step() {
  if (!feedback_) return make_error("step() needs set_feedback(true)");
  KILN_RETURN_IF_ERROR(run());
  return tokens();
}

Result<std::vector<uint8_t>> CudaExecutor::read(const ir::Value& v) const {
  auto it = addr_.find(&v);
  if (it == addr_.end()) return make_error("value %", v.id, " has no device address");
  std::vector<uint8_t> b(v.type.bytes().value_or(0));
  KILN_RETURN_IF_ERROR(dev_->download(b.data(), it->second, b.size()));
  return b;
}

Result<std::vector<double>> CudaExecutor::profile(int reps) {
  std::vector<double> us;
  std::vector<const Kernel*> all;
  for (const Kernel& k : kernels_) all.push_back(&k);
  if (program_.has_sample) all.push_back(&sample_);
  for (const Kernel* k : all) {
    KILN_RETURN_IF_ERROR(dev_->launch(k->fn, k->dims, k->args.data(), kArgsBytes, false));
    KILN_ASSIGN_OR_RETURN(int e0, dev_->record_event());
    for (int r = 0; r < reps; ++r)
      KILN_RETURN_IF_ERROR(dev_->launch(k->fn, k->dims, k->args.data(), kArgsBytes, false));
    KILN_ASSIGN_OR_RETURN(int e1, dev_->record_event());
    KILN_ASSIGN_OR_RETURN(double ms, dev_->elapsed_ms(e0, e1));
    dev_->destroy_event(e0);
    dev_->destroy_event(e1);
    us.push_back(ms * 1000.0 / reps);
  }
  return us;
}

std::string CudaExecutor::describe() const {
  std::string s;
  for (const cuda::KernelSpec& k : program_.kernels_by_region)
    s += k.name + " " + k.entry + " grid(" + std::to_string(k.grid[0]) + "," +
         std::to_string(k.grid[1]) + ") block " + std::to_string(k.block) + ": " + k.summary + "\n";
  return s;
}

}  // namespace kiln::runtime
