#include "runtime/interpreter.h"

#include <cstring>
#include <map>
#include <optional>

#include "ir/printer.h"
#include "ir/verifier.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime {

// ---------------------------------------------------------------------------------------------
// StateStore and ConstantCache

Result<Tensor> StateStore::get(const std::string& name, const ir::TensorType& type) {
  auto it = states_.find(name);
  if (it == states_.end()) {
    auto bytes = type.bytes();
    if (!bytes) return make_error("state '", name, "': ", type.str(), " is not whole blocks");
    auto e = std::make_unique<Entry>(Entry{type, std::vector<uint8_t>(*bytes, 0)});
    it = states_.emplace(name, std::move(e)).first;
  } else if (it->second->type != type) {
    return make_error("state '", name, "': declared ", type.str(), " here but ",
                      it->second->type.str(), " by a graph that used it first");
  }
  return Tensor{&it->second->type, it->second->bytes.data(), true};
}

Result<TensorView> StateStore::find(const std::string& name) const {
  auto it = states_.find(name);
  if (it == states_.end()) return make_error("state '", name, "': not created yet");
  return TensorView{&it->second->type, it->second->bytes};
}

void StateStore::reset() {
  for (auto& [name, e] : states_) std::memset(e->bytes.data(), 0, e->bytes.size());
}

size_t StateStore::bytes() const {
  size_t n = 0;
  for (const auto& [name, e] : states_) n += e->bytes.size();
  return n;
}

size_t ConstantCache::bytes() const {
  size_t n = 0;
  for (const auto& [node, results] : entries_)
    for (const auto& r : results) n += r.size();
  return n;
}

std::vector<std::vector<uint8_t>>* ConstantCache::find(const ir::Node* node) {
  auto it = entries_.find(node);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::vector<uint8_t>>& ConstantCache::insert(
    const ir::Node* node, std::vector<std::vector<uint8_t>> results) {
  ++evaluations_;
  return entries_[node] = std::move(results);
}

// ---------------------------------------------------------------------------------------------
// The executor: a graph (the top level or a region body) as slots and steps.

namespace interp {

struct Step {
  const ir::Node* node = nullptr;
  size_t index = 0;            // position in its graph, for messages
  std::vector<int> in;         // operand slots
  int out = 0, nout = 0;       // results occupy slots [out, out + nout)
  bool constant = false;       // bound at creation; run() skips it
  std::vector<Tensor> in_buf;  // operands gathered for the kernel (reused)
  std::unique_ptr<Body> body;  // region nodes
};

struct Body {
  const ir::Graph* graph = nullptr;
  Scratch* scratch = nullptr;
  std::vector<Tensor> slots;                  // one per value
  std::vector<bool> slot_const;               // value is a (derived) constant
  std::vector<std::vector<uint8_t>> storage;  // buffers of computed values
  std::vector<Step> steps;
  std::unordered_map<const ir::Value*, int> slot_of;
  std::vector<std::vector<int>> arg_slots;  // by arg index
  std::vector<int> yield_slots;
};

namespace {

using Kernel = Status (*)(KernelArgs&);
constexpr Kernel kKernels[] = {
#define X(E, ...) &run_##E,
#include "ir/ops.def"
#undef X
};

// Ops whose results alias memory they do not own: the kernel sets the data pointer.
bool aliases(ir::Op op) {
  return op == ir::Op::Reshape || op == ir::Op::View || op == ir::Op::KvWrite ||
         op == ir::Op::Region || op_info(op).has(ir::kSource);
}

Status exec_step(Body& b, Step& s) {
  for (size_t i = 0; i < s.in.size(); ++i) s.in_buf[i] = b.slots[size_t(s.in[i])];
  KernelArgs a{*s.node, s.in_buf, std::span<Tensor>(b.slots).subspan(size_t(s.out), size_t(s.nout)),
               *b.scratch, s.body.get()};
  Status st = kKernels[size_t(s.node->op)](a);
  if (!st.ok())
    return st.error().wrap("graph " + b.graph->name() + ", node " + std::to_string(s.index) + " (" +
                           ir::print_node(*s.node) + ")");
  return Status::Ok();
}

Status execute(Body& b) {
  for (Step& s : b.steps)
    if (!s.constant) KILN_RETURN_IF_ERROR(exec_step(b, s));
  return Status::Ok();
}

}  // namespace

Status run_body(Body& b, std::span<const Tensor> in, std::span<Tensor> out) {
  for (size_t k = 0; k < b.arg_slots.size(); ++k)
    for (int slot : b.arg_slots[k]) {
      if (k >= in.size()) return make_error("region: arg ", k, " has no operand");
      b.slots[size_t(slot)].data = in[k].data;
      b.slots[size_t(slot)].writable = in[k].writable;
    }
  KILN_RETURN_IF_ERROR(execute(b));
  if (out.size() != b.yield_slots.size())
    return make_error("region: ", b.yield_slots.size(), " yields for ", out.size(), " results");
  for (size_t k = 0; k < out.size(); ++k) {
    out[k].data = b.slots[size_t(b.yield_slots[k])].data;
    out[k].writable = b.slots[size_t(b.yield_slots[k])].writable;
  }
  return Status::Ok();
}

Result<const float*> f32_data(const Tensor& t, Scratch& s, int slot) {
  if (t.dtype() == DType::F32) return t.as<const float>();
  float* d = s.get(slot, size_t(t.numel()));
  KILN_RETURN_IF_ERROR(to_f32(t.dtype(), t.data, d, size_t(t.numel())));
  return static_cast<const float*>(d);
}

// Sources are bound before a run; sinks are read by the interpreter. Nothing to do here.
Status run_Input(KernelArgs&) {
  return Status::Ok();
}
Status run_Weight(KernelArgs&) {
  return Status::Ok();
}
Status run_State(KernelArgs&) {
  return Status::Ok();
}
Status run_Arg(KernelArgs&) {
  return Status::Ok();
}
Status run_Output(KernelArgs&) {
  return Status::Ok();
}
Status run_Yield(KernelArgs&) {
  return Status::Ok();
}
Status run_Region(KernelArgs& a) {
  if (!a.body) return make_error("region without a body");
  return run_body(*a.body, a.in, a.out);
}

}  // namespace interp

// ---------------------------------------------------------------------------------------------
// Interpreter

struct Interpreter::Impl {
  struct InputBuf {
    const ir::TensorType* type = nullptr;
    std::vector<uint8_t> bytes;
    bool set = false;
  };

  const ir::Graph& graph;
  const WeightSource& weights;
  StateStore& states;
  ConstantCache own_constants;
  ConstantCache* constants = nullptr;
  interp::Scratch scratch;
  std::map<std::string, InputBuf> inputs;
  std::vector<std::string> input_order;
  std::vector<std::pair<std::string, int>> outputs;  // name, slot in top
  std::unique_ptr<interp::Body> top;
  bool ran = false;

  Impl(const ir::Graph& g, const WeightSource& w, StateStore& s)
      : graph(g), weights(w), states(s) {}

  Result<std::unique_ptr<interp::Body>> build(const ir::Graph& g);
  Status bind_constant(interp::Body& b, interp::Step& s);
  // The input `name`, checked to take n bytes of `t` (nullopt: raw bytes of any dtype).
  Result<InputBuf*> find_input(const std::string& name, size_t n, std::optional<DType> t);
  const Tensor* find_slot(const interp::Body& b, const ir::Value& v) const;
};

Result<std::unique_ptr<interp::Body>> Interpreter::Impl::build(const ir::Graph& g) {
  using ir::Op;
  auto b = std::make_unique<interp::Body>();
  b->graph = &g;
  b->scratch = &scratch;
  b->steps.reserve(g.size());
  size_t index = 0;
  for (const auto& np : g.nodes()) {
    const ir::Node& n = *np;
    auto where = [&] {
      return "graph " + g.name() + ", node " + std::to_string(index) + " (" + ir::print_node(n) +
             ")";
    };
    interp::Step s;
    s.node = &n;
    s.index = index++;
    bool all_const = n.num_operands() > 0;
    for (const ir::Value* v : n.operands) {
      auto it = b->slot_of.find(v);
      if (it == b->slot_of.end()) return make_error(where(), ": operand not defined before use");
      s.in.push_back(it->second);
      all_const = all_const && b->slot_const[size_t(it->second)];
    }
    s.in_buf.resize(s.in.size());
    s.out = int(b->slots.size());
    s.nout = int(n.results.size());
    for (const ir::Value* r : n.results) {
      if (!r->type.bytes())
        return make_error(where(), ": ", r->type.str(), " is not a whole number of blocks");
      b->slot_of[r] = int(b->slots.size());
      b->slots.push_back(Tensor{&r->type, nullptr, true});
    }
    const ir::OpInfo& info = n.info();
    s.constant = n.op == Op::Weight || (all_const && !info.has(ir::kSource) &&
                                        !info.has(ir::kSink) && !info.has(ir::kSideEffect));
    b->slot_const.resize(b->slots.size(), s.constant);
    Tensor* out = b->slots.data() + s.out;

    switch (n.op) {
      case Op::Input: {
        const std::string& name = n.attrs.s("name");
        auto [it, fresh] = inputs.try_emplace(name);
        InputBuf& ib = it->second;
        if (fresh) {
          ib.type = &n.result()->type;
          ib.bytes.assign(*ib.type->bytes(), 0);
          input_order.push_back(name);
        } else if (*ib.type != n.result()->type) {
          return make_error(where(), ": input '", name, "' declared ", n.result()->type.str(),
                            " here and ", ib.type->str(), " elsewhere");
        }
        out[0] = Tensor{&n.result()->type, ib.bytes.data(), false};
        break;
      }
      case Op::Weight: {
        auto bytes = weights.get(n.attrs.s("name"), n.result()->type);
        if (!bytes.ok()) return bytes.error().wrap(where());
        out[0] = Tensor{&n.result()->type, const_cast<uint8_t*>(bytes->data()), false};
        break;
      }
      case Op::State: {
        auto t = states.get(n.attrs.s("name"), n.result()->type);
        if (!t.ok()) return t.error().wrap(where());
        out[0] = *t;
        break;
      }
      case Op::Arg: {
        size_t k = size_t(n.attrs.i("index"));
        if (b->arg_slots.size() <= k) b->arg_slots.resize(k + 1);
        b->arg_slots[k].push_back(s.out);
        break;
      }
      case Op::Yield:
        b->yield_slots = s.in;
        break;
      case Op::Output:
        if (&g == &graph) outputs.emplace_back(n.attrs.s("name"), s.in[0]);
        break;
      case Op::Region: {
        KILN_ASSIGN_OR_RETURN(s.body, build(*n.body));
        break;
      }
      default:
        break;
    }
    // Computed values get their own zeroed buffer, allocated once (constants: in the cache).
    if (!interp::aliases(n.op) && !s.constant)
      for (int k = 0; k < s.nout; ++k) {
        b->storage.emplace_back(*out[k].type->bytes(), 0);
        out[k].data = b->storage.back().data();
      }
    b->steps.push_back(std::move(s));
    if (b->steps.back().constant && n.op != Op::Weight)
      KILN_RETURN_IF_ERROR(bind_constant(*b, b->steps.back()));
  }
  return b;
}

// A derived constant: evaluated once into the cache (or found there), then bound read-only.
// Views of constants are free, so they are bound here without a cache entry.
Status Interpreter::Impl::bind_constant(interp::Body& b, interp::Step& s) {
  Tensor* out = b.slots.data() + s.out;
  if (s.node->op == ir::Op::Reshape || s.node->op == ir::Op::View) return interp::exec_step(b, s);
  std::vector<std::vector<uint8_t>>* cached = constants->find(s.node);
  if (!cached) {
    std::vector<std::vector<uint8_t>> results;
    for (int k = 0; k < s.nout; ++k) {
      results.emplace_back(*out[k].type->bytes(), 0);
      out[k].data = results.back().data();
    }
    KILN_RETURN_IF_ERROR(interp::exec_step(b, s));
    for (int k = 0; k < s.nout; ++k)  // a region's results point into its body: copy them
      if (out[k].data != results[size_t(k)].data())
        std::memcpy(results[size_t(k)].data(), out[k].data, results[size_t(k)].size());
    cached = &constants->insert(s.node, std::move(results));
  }
  for (int k = 0; k < s.nout; ++k) {
    if ((*cached)[size_t(k)].size() != *out[k].type->bytes())
      return make_error("constant cache: entry of ", ir::print_node(*s.node), " has ",
                        (*cached)[size_t(k)].size(), " bytes for ", out[k].type->str());
    out[k].data = (*cached)[size_t(k)].data();
    out[k].writable = false;
  }
  return Status::Ok();
}

Result<Interpreter::Impl::InputBuf*> Interpreter::Impl::find_input(const std::string& name,
                                                                   size_t n,
                                                                   std::optional<DType> t) {
  auto it = inputs.find(name);
  if (it == inputs.end()) {
    std::string known;
    for (const std::string& k : input_order) known += (known.empty() ? "" : ", ") + k;
    return make_error("input '", name, "': graph ", graph.name(),
                      " has no such input (it has: ", known, ")");
  }
  InputBuf& ib = it->second;
  std::string_view what = t ? dtype_name(*t) : "raw";
  if (t && *t != ib.type->dtype)
    return make_error("input '", name, "' is ", ib.type->str(), ", given ", what, " values");
  if (n != ib.bytes.size())
    return make_error("input '", name, "' is ", ib.type->str(), " (", ib.bytes.size(),
                      " bytes), given ", n, " bytes of ", what, " values");
  return &ib;
}

const Tensor* Interpreter::Impl::find_slot(const interp::Body& b, const ir::Value& v) const {
  auto it = b.slot_of.find(&v);
  if (it != b.slot_of.end()) return &b.slots[size_t(it->second)];
  for (const interp::Step& s : b.steps)
    if (s.body)
      if (const Tensor* t = find_slot(*s.body, v)) return t;
  return nullptr;
}

Result<std::unique_ptr<Interpreter>> Interpreter::create(const ir::Graph& graph,
                                                         const WeightSource& weights,
                                                         StateStore& states,
                                                         ConstantCache* constants) {
  Status st = ir::verify(graph);
  if (!st.ok()) return st.error().wrap("interpreter");
  auto impl = std::make_unique<Impl>(graph, weights, states);
  impl->constants = constants ? constants : &impl->own_constants;
  auto top = impl->build(graph);
  if (!top.ok()) return top.error().wrap("interpreter");
  impl->top = std::move(*top);
  return std::unique_ptr<Interpreter>(new Interpreter(std::move(impl)));
}

Interpreter::Interpreter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Interpreter::~Interpreter() = default;

Status Interpreter::set_input(const std::string& name, std::span<const int32_t> values) {
  KILN_ASSIGN_OR_RETURN(auto* ib, impl_->find_input(name, values.size_bytes(), DType::I32));
  std::memcpy(ib->bytes.data(), values.data(), values.size_bytes());
  ib->set = true;
  return Status::Ok();
}

Status Interpreter::set_input(const std::string& name, std::span<const float> values) {
  KILN_ASSIGN_OR_RETURN(auto* ib, impl_->find_input(name, values.size_bytes(), DType::F32));
  std::memcpy(ib->bytes.data(), values.data(), values.size_bytes());
  ib->set = true;
  return Status::Ok();
}

Status Interpreter::set_input_bytes(const std::string& name, std::span<const uint8_t> bytes) {
  KILN_ASSIGN_OR_RETURN(auto* ib, impl_->find_input(name, bytes.size(), std::nullopt));
  std::memcpy(ib->bytes.data(), bytes.data(), bytes.size());
  ib->set = true;
  return Status::Ok();
}

std::vector<std::string> Interpreter::input_names() const {
  return impl_->input_order;
}

std::vector<std::string> Interpreter::output_names() const {
  std::vector<std::string> names;
  for (const auto& [name, slot] : impl_->outputs) names.push_back(name);
  return names;
}

const ir::TensorType* Interpreter::input_type(const std::string& name) const {
  auto it = impl_->inputs.find(name);
  return it == impl_->inputs.end() ? nullptr : it->second.type;
}

Status Interpreter::run() {
  for (const std::string& name : impl_->input_order)
    if (!impl_->inputs[name].set)
      return make_error("interpreter: graph ", impl_->graph.name(), ": input '", name,
                        "' was not set");
  impl_->scratch.tokens = 0;
  if (auto pos = impl_->inputs.find("pos");
      pos != impl_->inputs.end() && pos->second.type->dtype == DType::I32) {
    const auto* p = reinterpret_cast<const int32_t*>(pos->second.bytes.data());
    for (size_t i = 0; i < pos->second.bytes.size() / sizeof(int32_t); ++i)
      impl_->scratch.tokens += p[i] >= 0;
  }
  impl_->ran = false;
  Status st = interp::execute(*impl_->top);
  if (!st.ok()) return st.error().wrap("interpreter");
  impl_->ran = true;
  return Status::Ok();
}

Result<TensorView> Interpreter::output_tensor(const std::string& name) const {
  for (const auto& [n, slot] : impl_->outputs) {
    if (n != name) continue;
    if (!impl_->ran) return make_error("output '", name, "': the graph has not run");
    const Tensor& t = impl_->top->slots[size_t(slot)];
    return TensorView{t.type, {t.data, t.bytes()}};
  }
  return make_error("output '", name, "': graph ", impl_->graph.name(), " has no such output");
}

Result<std::span<const float>> Interpreter::output(const std::string& name) const {
  KILN_ASSIGN_OR_RETURN(TensorView t, output_tensor(name));
  if (t.type->dtype != DType::F32)
    return make_error("output '", name, "' is ", t.type->str(), ", not f32 (use output_tensor)");
  return std::span<const float>(reinterpret_cast<const float*>(t.bytes.data()),
                                size_t(t.type->numel()));
}

Result<TensorView> Interpreter::value(const ir::Value& v) const {
  const Tensor* t = impl_->find_slot(*impl_->top, v);
  if (!impl_->ran)
    return make_error("value %", v.name.empty() ? std::to_string(v.id) : v.name,
                      ": the graph has not run");
  if (!t)
    return make_error("value %", v.name.empty() ? std::to_string(v.id) : v.name, ": not in graph ",
                      impl_->graph.name());
  if (!t->data)
    return make_error("value %", v.name.empty() ? std::to_string(v.id) : v.name,
                      ": not computed yet (run the graph first)");
  return TensorView{t->type, {t->data, t->bytes()}};
}

Result<TensorView> Interpreter::value(const std::string& name) const {
  const ir::Value* v = impl_->graph.find_value(name);
  if (!v) return make_error("value '", name, "': not in graph ", impl_->graph.name());
  return value(*v);
}

const ir::Graph& Interpreter::graph() const {
  return impl_->graph;
}
const ConstantCache& Interpreter::constants() const {
  return *impl_->constants;
}

}  // namespace kiln::runtime
