#include "runtime/cpu_executor.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "ir/printer.h"
#include "passes/graph_util.h"

namespace kiln::runtime {

Result<std::unique_ptr<CpuExecutor>> CpuExecutor::create(CompiledGraph compiled,
                                                         const ExecutorContext& context) {
  if (!compiled.graph || !compiled.program) return make_error("executor: empty compiled graph");
  std::unique_ptr<CpuExecutor> e(new CpuExecutor(std::move(compiled)));
  Status st = e->bind(context);
  if (!st.ok()) return st.error().wrap("executor " + e->compiled_.spec.name());
  return e;
}

Status CpuExecutor::bind(const ExecutorContext& cx) {
  const ir::Graph& g = *compiled_.graph;
  const passes::MemoryPlan& plan = compiled_.plan;
  const cpu::JitProgram& prog = *compiled_.program;
  pool_ = cx.pool;
  nth_ = pool_->size();
  if (plan.arena_bytes > cx.arena_capacity)
    return make_error("the memory plan needs an arena of ", plan.arena_bytes,
                      " bytes; the backend reserved ", cx.arena_capacity);

  std::map<std::pair<int, int>, const passes::PlanEntry*> entries;
  for (const passes::PlanEntry& e : plan.entries) entries[{e.node, e.result}] = &e;
  const auto constants = passes::constant_values(g);
  std::unordered_map<const ir::Value*, uint8_t*> addr;
  // Weights and derived constants, and the views of them, by the weight or constant they read;
  // and which of those kernels read as stored and which packed.
  std::unordered_map<const ir::Value*, const ir::Value*> root;
  std::set<const ir::Value*> raw_use, packed_use;
  // Derived constants (and views of them) not evaluated yet: their offset from the constant.
  std::unordered_map<const ir::Value*, uint64_t> lazy_offset;
  // Weights are looked up only when a kernel reads them as stored: an artifact's embedded GGUF
  // holds just those (docs/artifact.md), the others being stored packed or merged.
  auto is_weight = [](const ir::Value* v) { return v->def && v->def->op == ir::Op::Weight; };
  auto resolve = [&](const ir::Value* v) -> Result<uint8_t*> {
    uint8_t* p = addr.at(v);
    auto l = lazy_offset.find(v);
    if (p || l == lazy_offset.end()) return p;
    const ir::Value* r = root.at(v);
    const uint8_t* c = nullptr;
    if (is_weight(r)) {
      if (!(c = addr.at(r))) {
        KILN_ASSIGN_OR_RETURN(auto bytes, cx.weights->get(r->def->attrs.s("name"), r->type));
        c = bytes.data();
        addr[r] = const_cast<uint8_t*>(c);
      }
    } else {
      KILN_ASSIGN_OR_RETURN(c, cx.constants->get(*r));
    }
    p = const_cast<uint8_t*>(c) + l->second;
    addr[v] = p;
    lazy_offset.erase(l);
    return p;
  };

  // The address of result r of node i, which the memory plan puts in the arena.
  auto arena_addr = [&](int i, int r, const ir::Node& n) -> Result<uint8_t*> {
    auto it = entries.find({i, r});
    if (it == entries.end())
      return make_error("node ", i, " (", ir::print_node(n), ") has no memory-plan entry");
    const passes::PlanEntry& e = *it->second;
    if (e.storage == passes::Storage::kExternal)
      return make_error("node ", i, " (", ir::print_node(n),
                        "): the plan puts it outside the arena, but it is no weight, state, "
                        "constant or alias of one");
    if (e.offset + e.bytes > plan.arena_bytes)
      return make_error("node ", i, ": arena slot [", e.offset, ", ", e.offset + e.bytes,
                        ") is outside the arena of ", plan.arena_bytes, " bytes");
    return cx.arena + e.offset;
  };

  size_t kernel = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    const int ni = int(i);
    switch (n.op) {
      case ir::Op::Input: {
        KILN_ASSIGN_OR_RETURN(uint8_t * p, arena_addr(ni, 0, n));
        addr[n.result()] = p;
        inputs_.push_back(Io{n.attrs.s("name"), &n.result()->type, p, false});
        continue;
      }
      case ir::Op::Weight:
        addr[n.result()] = nullptr;  // resolve() looks it up
        root[n.result()] = n.result();
        lazy_offset[n.result()] = 0;
        continue;
      case ir::Op::State: {
        KILN_ASSIGN_OR_RETURN(uint8_t * p, cx.states->get(n.attrs.s("name"), n.result()->type));
        addr[n.result()] = p;
        continue;
      }
      case ir::Op::Output: {
        const ir::Value* v = n.operand(0);
        KILN_ASSIGN_OR_RETURN(uint8_t * p, resolve(v));
        outputs_.push_back(Io{n.attrs.s("name"), &v->type, p, false});
        continue;
      }
      default:
        break;
    }
    if (passes::is_free(n)) {
      // Views of arena values sit where the plan says (the same address as the view's operand
      // plus offset); views of weights or states alias them.
      auto a = passes::alias_of(n, 0);
      if (!a) return make_error("node ", i, " (", ir::print_node(n), "): a view without alias");
      if (auto l = lazy_offset.find(n.operand(0)); l != lazy_offset.end()) {
        addr[n.result()] = nullptr;
        lazy_offset[n.result()] = l->second + a->offset;
      } else {
        addr[n.result()] = addr.at(n.operand(0)) + a->offset;
      }
      if (auto r = root.find(n.operand(0)); r != root.end()) root[n.result()] = r->second;
      continue;
    }
    if (n.op != ir::Op::Region) {
      if (constants.count(n.result())) {
        // Resolved when a kernel reads it as stored (resolve): a constant read only packed
        // whose packed copy is stored in an artifact is never evaluated.
        for (const ir::Value* r : n.results) {
          addr[r] = nullptr;
          root[r] = r;
          lazy_offset[r] = 0;
        }
        continue;
      }
      return make_error("node ", i, " (", ir::print_node(n),
                        ") is not in a region: the CPU executor runs fused graphs only");
    }
    // A kernel: operands, then results (aliased results at their operand's address).
    if (kernel >= prog.kernels().size())
      return make_error("the program has ", prog.kernels().size(), " kernels; the graph has more");
    const cpu::KernelInfo& k = prog.kernels()[kernel];
    if (k.num_args != int(n.operands.size() + n.results.size()))
      return make_error("kernel ", k.name, " takes ", k.num_args, " arguments; region node ", i,
                        " has ", n.operands.size(), " operands and ", n.results.size(), " results");
    const size_t first = buffers_.size();
    for (size_t j = 0; j < n.operands.size(); ++j) {
      const ir::Value* o = n.operands[j];
      const bool packed = std::find(k.packed_operands.begin(), k.packed_operands.end(), int(j)) !=
                          k.packed_operands.end();
      if (packed) {
        buffers_.push_back(nullptr);  // the packed copy, below
      } else {
        auto p = resolve(o);
        if (!p.ok()) return p.error().wrap("node " + std::to_string(i));
        buffers_.push_back(*p);
      }
      if (auto r = root.find(o); r != root.end()) (packed ? packed_use : raw_use).insert(r->second);
    }
    // Weights the kernel reads in the microkernels' packed layout: one repacked copy per model
    // (or the copy an artifact stores, which needs neither the stored bytes nor a repack).
    for (int p : k.packed_operands) {
      if (p < 0 || size_t(p) >= n.operands.size())
        return make_error("kernel ", k.name, ": packed operand ", p, " out of range");
      const ir::Value* o = n.operands[size_t(p)];
      uint8_t* stored = nullptr;
      // A derived constant that no kernel has read as stored so far is made only to be packed,
      // and its bytes are freed right after (a later reader as stored evaluates it again).
      const ir::Value* transient = nullptr;
      if (!cx.constants->has_packed(*o)) {
        if (auto l = lazy_offset.find(o); l != lazy_offset.end() && !is_weight(root.at(o))) {
          transient = root.at(o);
          auto c = cx.constants->peek(*transient);
          if (!c.ok()) return c.error().wrap("node " + std::to_string(i));
          stored = const_cast<uint8_t*>(*c) + l->second;
        } else {
          auto s = resolve(o);
          if (!s.ok()) return s.error().wrap("node " + std::to_string(i));
          stored = *s;
        }
      }
      auto packed = cx.constants->packed(*o, stored);
      if (transient) cx.constants->release_unpinned(*transient);
      if (!packed.ok()) return packed.error().wrap("kernel " + k.name);
      buffers_[first + size_t(p)] = const_cast<uint8_t*>(*packed);
    }
    for (size_t r = 0; r < n.results.size(); ++r) {
      uint8_t* p;
      if (auto a = passes::alias_of(n, int(r))) {
        KILN_ASSIGN_OR_RETURN(uint8_t * base, resolve(n.operand(a->operand)));
        p = base + a->offset;
      } else {
        KILN_ASSIGN_OR_RETURN(p, arena_addr(ni, int(r), n));
      }
      addr[n.results[r]] = p;
      buffers_.push_back(p);
    }
    arg_ranges_.push_back({first, buffers_.size() - first});
    kernels_.push_back(prog.function(kernel));
    kernel_nodes_.push_back(&n);
    scratch_bytes_ = std::max<uint64_t>(scratch_bytes_, uint64_t(nth_) * k.scratch_bytes);
    ++kernel;
  }
  if (kernel != prog.kernels().size())
    return make_error("the program has ", prog.kernels().size(), " kernels; the graph has ", kernel,
                      " regions");
  for (const ir::Value* v : raw_use) {
    if (v->def->op == ir::Op::Weight)
      bound_weights_.push_back(v->def->attrs.s("name"));
    else
      raw_constants_.push_back(constant_key(*v));
  }
  for (const ir::Value* v : packed_use) {
    if (v->def->op == ir::Op::Weight)
      packed_weights_.push_back(v->def->attrs.s("name"));
    else if (!raw_use.count(v))
      packed_only_constants_.push_back(constant_key(*v));
  }
  if (scratch_bytes_ > cx.scratch_capacity)
    return make_error("kernels need ", scratch_bytes_, " bytes of scratch; the backend reserved ",
                      cx.scratch_capacity);
  for (const Io& o : outputs_)
    if (o.type->dtype != DType::F32)
      return make_error("output '", o.name, "' is ", o.type->str(), "; the runtime reads f32");

  // Every thread's arguments for every kernel, final from here on.
  args_.resize(kernels_.size() * size_t(nth_));
  for (size_t k = 0; k < kernels_.size(); ++k) {
    const cpu::KernelInfo& info = prog.kernels()[k];
    for (int t = 0; t < nth_; ++t) {
      KilnKernelArgs& a = args_[k * size_t(nth_) + size_t(t)];
      a.buffers = buffers_.data() + arg_ranges_[k].first;
      a.scratch = cx.scratch + size_t(t) * info.scratch_bytes;
      a.mk = info.uses_microkernels ? cx.microkernels : nullptr;
      a.ith = t;
      a.nth = nth_;
      a.barrier = &Barrier::wait_fn;
      a.barrier_ctx = &pool_->barrier();
      a.tokens = &tokens_;
    }
  }
  limit_ = kernels_.size();
  return Status::Ok();
}

Result<BindConstants> make_bind_constants(const ir::Graph& g,
                                          const std::vector<cpu::KernelInfo>& kernels,
                                          const WeightSource& weights, ConstantStore& store) {
  const auto constants = passes::constant_values(g);
  // Weights and views of them: their bytes. Derived constants and views of them: the constant
  // and the offset into it. Exactly what bind() reads from the ConstantStore, nothing more.
  std::unordered_map<const ir::Value*, const uint8_t*> stored;
  std::unordered_map<const ir::Value*, std::pair<const ir::Value*, uint64_t>> derived;
  std::unordered_map<const ir::Value*, std::string> weight_of;  // weights and views: the name
  BindConstants out;
  std::set<std::string>& keys = out.keys;
  // `read_as_stored`: a kernel reads the bytes (not only a packed copy of them).
  auto bytes_of = [&](const ir::Value* v, bool read_as_stored) -> Result<const uint8_t*> {
    if (auto w = stored.find(v); w != stored.end()) return w->second;
    const auto& [root, offset] = derived.at(v);
    KILN_ASSIGN_OR_RETURN(const uint8_t* c, store.get(*root));
    if (read_as_stored) keys.insert(constant_key(*root));
    return c + offset;
  };
  size_t kernel = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    if (n.op == ir::Op::Weight) {
      KILN_ASSIGN_OR_RETURN(auto bytes, weights.get(n.attrs.s("name"), n.result()->type));
      stored[n.result()] = bytes.data();
      weight_of[n.result()] = n.attrs.s("name");
    } else if (n.op == ir::Op::Input || n.op == ir::Op::State || n.op == ir::Op::Output) {
      continue;
    } else if (passes::is_free(n)) {
      auto a = passes::alias_of(n, 0);
      if (!a) return make_error("node ", i, " (", ir::print_node(n), "): a view without alias");
      if (auto w = stored.find(n.operand(0)); w != stored.end()) {
        stored[n.result()] = w->second + a->offset;
        weight_of[n.result()] = weight_of.at(n.operand(0));
      } else if (auto d = derived.find(n.operand(0)); d != derived.end())
        derived[n.result()] = {d->second.first, d->second.second + a->offset};
    } else if (n.op != ir::Op::Region) {
      if (constants.count(n.result()))
        for (const ir::Value* r : n.results) derived[r] = {r, 0};
    } else {
      if (kernel >= kernels.size())
        return make_error("the program has ", kernels.size(), " kernels; the graph has more");
      const cpu::KernelInfo& k = kernels[kernel++];
      for (size_t j = 0; j < n.operands.size(); ++j) {
        const ir::Value* o = n.operands[j];
        if (!stored.count(o) && !derived.count(o)) continue;
        const bool packed = std::find(k.packed_operands.begin(), k.packed_operands.end(), int(j)) !=
                            k.packed_operands.end();
        if (packed) {
          KILN_ASSIGN_OR_RETURN(const uint8_t* bytes, bytes_of(o, false));
          auto p = store.packed(*o, bytes);
          if (!p.ok()) return p.error().wrap("kernel " + k.name);
          keys.insert(packed_key(*o));
        } else if (derived.count(o)) {
          KILN_RETURN_IF_ERROR(bytes_of(o, true).status());
        } else {
          out.raw_weights.insert(weight_of.at(o));
        }
      }
    }
  }
  return out;
}

void CpuExecutor::schedule(void* self, int ith, int nth) {
  auto* e = static_cast<CpuExecutor*>(self);
  const size_t n = e->limit_;
  Barrier& barrier = e->pool_->barrier();
  const KilnKernelArgs* args = e->args_.data() + ith;
  for (size_t k = 0; k < n; ++k, args += nth) {
    e->kernels_[k](args);
    // Every kernel reads what earlier ones wrote; the pool's join ends the last one.
    if (k + 1 < n) barrier.wait();
  }
}

Status CpuExecutor::run_prefix(size_t n) {
  limit_ = std::min(n, kernels_.size());
  Status st = run();
  limit_ = kernels_.size();
  return st;
}

Status CpuExecutor::set_input(std::string_view name, std::span<const int32_t> values) {
  for (Io& in : inputs_) {
    if (in.name != name) continue;
    if (in.type->dtype != DType::I32 || size_t(in.type->numel()) != values.size())
      return make_error("input '", name, "' is ", in.type->str(), ", given ", values.size(),
                        " i32 values");
    std::memcpy(in.data, values.data(), values.size_bytes());
    in.set = true;
    if (name == "pos") {  // how llama.cpp would count this batch's tokens
      tokens_ = 0;
      for (int32_t p : values) tokens_ += p >= 0;
    }
    return Status::Ok();
  }
  return make_error("graph ", compiled_.spec.name(), " has no input '", name, "'");
}

bool CpuExecutor::has_input(std::string_view name) const {
  for (const Io& in : inputs_)
    if (in.name == name) return true;
  return false;
}

Status CpuExecutor::run() {
  for (const Io& in : inputs_)
    if (!in.set)
      return make_error("graph ", compiled_.spec.name(), ": input '", in.name, "' not set");
  pool_->run(&CpuExecutor::schedule, this);
  // The arena is shared with the model's other graphs: inputs must be set again for the next run.
  for (Io& in : inputs_) in.set = false;
  return Status::Ok();
}

Result<std::span<const float>> CpuExecutor::output(std::string_view name) const {
  for (const Io& o : outputs_)
    if (o.name == name)
      return std::span<const float>(reinterpret_cast<const float*>(o.data),
                                    size_t(o.type->numel()));
  return make_error("graph ", compiled_.spec.name(), " has no output '", name, "'");
}

}  // namespace kiln::runtime
