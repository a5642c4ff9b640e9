#include "runtime/cuda_kernel_check.h"

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "codegen/cuda/cuda_codegen.h"
#include "ir/printer.h"
#include "passes/graph_util.h"
#include "runtime/buffer.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_executor.h"
#include "runtime/interpreter.h"

namespace kiln::runtime {

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 0, err = 0;
  for (float w : want)
    if (std::isfinite(w)) scale = std::max(scale, double(std::fabs(w)));
  scale = std::max(scale, 1e-20);
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    double e;
    if (!std::isfinite(want[i]) || !std::isfinite(got[i]))
      e = (got[i] == want[i]) ? 0 : INFINITY;
    else
      e = std::fabs(double(got[i]) - double(want[i])) / scale;
    err = std::max(err, e);
  }
  return err;
}

std::string KernelCheckReport::summary() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%zu kernels checked, %d failed, worst %.2e (%s)", regions.size(),
                failures, worst, worst_region.c_str());
  return buf;
}

namespace {

std::vector<uint8_t> random_bytes(const ir::TensorType& t, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> f(size_t(t.numel()));
  for (float& x : f) x = d(rng);
  std::vector<uint8_t> b(t.bytes().value_or(0));
  (void)from_f32(t.dtype, f.data(), b.data(), f.size());
  return b;
}

std::vector<float> as_f32(const ir::TensorType& t, const uint8_t* p) {
  std::vector<float> v(size_t(t.numel()));
  (void)to_f32(t.dtype, p, v.data(), v.size());
  return v;
}

// The value whose memory `v` is: through views and region results that alias an operand.
const ir::Value* memory_root(const ir::Value* v, uint64_t* offset) {
  uint64_t off = 0;
  for (;;) {
    if (!v->def) break;
    const ir::Node& n = *v->def;
    if (passes::is_free(n) || n.op == ir::Op::Region) {
      auto a = passes::alias_of(n, v->index);
      if (!a) break;
      off += a->offset;
      v = n.operand(a->operand);
      continue;
    }
    break;
  }
  *offset = off;
  return v;
}

int64_t vocab_of(const ir::Graph& g) {
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::Weight && n->attrs.s("name") == "token_embd.weight")
      return n->result()->type.dim(0);
  return 16;
}

}  // namespace

Result<KernelCheckReport> check_kernels(CudaDevice& dev, const ir::Graph& g,
                                        const WeightSource& weights, const KernelCheckOptions& o) {
  KernelCheckReport rep;
  std::mt19937 rng(o.seed);

  // ---- the reference ----
  StateStore states;
  KILN_ASSIGN_OR_RETURN(auto interp, Interpreter::create(g, weights, states));
  const int64_t vocab = vocab_of(g);
  int32_t ntok = 0;  // the real tokens (KernelSpec::token_count)
  for (const auto& n : g.nodes()) {
    if (n->op != ir::Op::Input) continue;
    const std::string& name = n->attrs.s("name");
    const ir::TensorType& t = n->result()->type;
    if (is_integer(t.dtype)) {
      std::vector<int32_t> v(size_t(t.numel()), 0);
      const int64_t T = t.rank() >= 2 ? t.dim(-1) : 1;
      for (size_t i = 0; i < v.size(); ++i) {
        if (name == "tokens")
          v[i] = o.token >= 0 ? o.token
                              : int32_t(std::uniform_int_distribution<int64_t>(0, vocab - 1)(rng));
        if (name == "pos")
          v[i] = (o.real_tokens > 0 && int64_t(i) % T >= o.real_tokens) ||
                         (o.real_rows > 0 && int64_t(i) / T >= o.real_rows)
                     ? -1
                     : int32_t(o.position + int64_t(i) % T);
        if (name == "rows") v[i] = int32_t(T > 0 ? 0 : 0);
      }
      if (name == "rows") {
        // The last token of each sequence (prefill) or every row (decode).
        const ir::Value* tok = nullptr;
        for (const auto& m : g.nodes())
          if (m->op == ir::Op::Input && m->attrs.s("name") == "tokens") tok = m->result();
        const int64_t TT = tok ? tok->type.dim(-1) : 1;
        const int64_t last = o.real_tokens > 0 && o.real_tokens < TT ? o.real_tokens : TT;
        for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(int64_t(i) * TT + last - 1);
      }
      KILN_RETURN_IF_ERROR(interp->set_input(name, std::span<const int32_t>(v)));
      if (name == "pos") ntok = count_tokens(v);
    } else {
      KILN_RETURN_IF_ERROR(interp->set_input_bytes(name, random_bytes(t, rng, 1.0f)));
    }
  }
  std::map<std::string, std::vector<uint8_t>> initial;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::State) {
      KILN_ASSIGN_OR_RETURN(Tensor s, states.get(n->attrs.s("name"), n->result()->type));
      std::vector<uint8_t> b = random_bytes(n->result()->type, rng, 1.0f);
      if (o.states && o.states->count(n->attrs.s("name")) &&
          o.states->at(n->attrs.s("name")).size() == b.size())
        b = o.states->at(n->attrs.s("name"));
      std::memcpy(s.data, b.data(), b.size());
      initial[n->attrs.s("name")] = std::move(b);
    }
  KILN_RETURN_IF_ERROR(interp->run());

  // ---- the device ----
  cuda::Options copt;
  KILN_ASSIGN_OR_RETURN(cuda::Program prog, cuda::generate(g, copt));
  KILN_ASSIGN_OR_RETURN(ModuleImage image, build_module_image(prog, dev));
  KILN_ASSIGN_OR_RETURN(int module, dev.load_module(image));
  ConstantStore host_constants(weights);
  DeviceConstants constants(dev, weights, host_constants);
  DeviceStates dstates(dev);
  std::map<const ir::Value*, std::string> state_of;
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::State) {
      const std::string& name = n->attrs.s("name");
      KILN_RETURN_IF_ERROR(dstates.get(name, n->result()->type).status());
      KILN_RETURN_IF_ERROR(dstates.write(name, initial[name]));
      state_of[n->result()] = name;
    }
  const auto constant_set = passes::constant_values(g);
  std::vector<DevPtr> temps;
  auto cleanup = [&] {
    for (DevPtr p : temps) dev.free(p);
    temps.clear();
  };
  std::set<std::string> seen_entries, skipped_writers;
  size_t ki = 0;
  int ran = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    if (n.op != ir::Op::Region) continue;
    const cuda::KernelSpec& ks = prog.kernels_by_region[ki++];
    if (o.max_regions > 0 && ran >= o.max_regions) {
      for (const ir::Value* v : n.operands) {
        uint64_t off;
        const ir::Value* r = memory_root(v, &off);
        if (state_of.count(r)) skipped_writers.insert(state_of[r]);
      }
      continue;
    }
    ++ran;
    RegionCheck rc;
    rc.region = ks.name;
    rc.entry = ks.entry;
    rc.kind = cuda::kernel_kind_name(ks.kind);
    rc.tol = o.tol;
    std::vector<void*> args;
    Status st = Status::Ok();
    for (int a = 0; a < n.num_operands() && st.ok(); ++a) {
      const ir::Value* v = n.operand(a);
      uint64_t off = 0;
      const ir::Value* root = memory_root(v, &off);
      if (state_of.count(root)) {
        auto p = dstates.get(state_of[root], root->type);
        if (!p.ok())
          st = p.status();
        else
          args.push_back(reinterpret_cast<void*>(*p + off));
        continue;
      }
      if (constant_set.count(root)) {
        auto p = constants.get(*root, ks.layouts[size_t(a)]);
        if (!p.ok())
          st = p.status();
        else
          args.push_back(reinterpret_cast<void*>(*p + off));
        continue;
      }
      auto tv = interp->value(*v);
      if (!tv.ok()) {
        st = tv.status();
        break;
      }
      auto p = dev.alloc(tv->bytes.size());
      if (!p.ok()) {
        st = p.status();
        break;
      }
      temps.push_back(*p);
      st = dev.upload(*p, tv->bytes.data(), tv->bytes.size());
      args.push_back(reinterpret_cast<void*>(*p));
    }
    std::vector<std::pair<int, DevPtr>> outs;
    for (int r = 0; r < int(n.results.size()) && st.ok(); ++r) {
      if (!ks.result_written[size_t(r)]) {
        auto a = passes::alias_of(n, r);
        args.push_back(a ? static_cast<char*>(args[size_t(a->operand)]) + a->offset : nullptr);
        continue;
      }
      const uint64_t bytes = n.result(r)->type.bytes().value_or(0);
      auto p = dev.alloc(bytes);
      if (!p.ok()) {
        st = p.status();
        break;
      }
      temps.push_back(*p);
      st = dev.memset_async(*p, 0xFF, bytes);  // NaN: unwritten elements show
      args.push_back(reinterpret_cast<void*>(*p));
      outs.push_back({r, *p});
    }
    DevPtr cells = 0;
    if (st.ok() && ks.scratch_bytes) {
      auto p = dev.alloc(ks.scratch_bytes);
      if (p.ok()) {
        temps.push_back(*p);
        args.push_back(reinterpret_cast<void*>(*p));
      } else {
        st = p.status();
      }
    }
    if (st.ok() && ks.argmax) {
      auto c = dev.alloc(uint64_t(prog.argmax_rows) * 8);
      auto q = dev.alloc(sizeof(cuda::SampleParams));
      if (c.ok() && q.ok()) {
        temps.push_back(*c);
        temps.push_back(*q);
        cells = *c;
        args.push_back(reinterpret_cast<void*>(*c));
        args.push_back(reinterpret_cast<void*>(*q));
      } else {
        st = c.ok() ? q.status() : c.status();
      }
    }
    if (st.ok() && ks.token_count) {
      auto c = dev.alloc(4);
      if (c.ok()) {
        temps.push_back(*c);
        args.push_back(reinterpret_cast<void*>(*c));
        st = dev.upload(*c, &ntok, 4);
      } else {
        st = c.status();
      }
    }
    if (st.ok()) st = constants.bind_tables(prog, ks, args);
    if (st.ok()) {
      auto fn = dev.function(module, ks.entry);
      if (!fn.ok()) st = fn.status();
      LaunchDims d;
      std::copy(ks.grid, ks.grid + 3, d.grid);
      d.block = ks.block;
      if (st.ok()) st = dev.launch(*fn, d, args.data(), sizeof(void*) * cuda::kMaxArgs, false);
      if (st.ok()) st = dev.synchronize();
    }
    if (!st.ok()) {
      cleanup();
      return st.error().wrap("kernel check: region " + ks.name);
    }
    for (auto [r, p] : outs) {
      const ir::TensorType& t = n.result(r)->type;
      std::vector<uint8_t> got(t.bytes().value_or(0));
      KILN_RETURN_IF_ERROR(dev.download(got.data(), p, got.size()));
      auto want = interp->value(*n.result(r));
      if (!want.ok()) return want.error();
      const double e = relative_error(as_f32(t, got.data()), as_f32(t, want->bytes.data()));
      if (e > rc.err) rc.err = e;
    }
    if (cells) {
      // The fused argmax must pick a maximum of the interpreter's row (up to the tolerance).
      std::vector<uint64_t> c(size_t(prog.argmax_rows));
      KILN_RETURN_IF_ERROR(dev.download(c.data(), cells, c.size() * 8));
      auto want = interp->value(*n.result(ks.argmax_result));
      if (!want.ok()) return want.error();
      std::vector<float> w = as_f32(*want->type, want->bytes.data());
      const int64_t cols = prog.argmax_cols;
      for (size_t r = 0; r < c.size(); ++r) {
        const int64_t tok = c[r] ? int64_t(0xffffffffu - uint32_t(c[r] & 0xffffffffu)) : 0;
        float best = -INFINITY, scale = 0;
        for (int64_t j = 0; j < cols; ++j) {
          best = std::max(best, w[size_t(int64_t(r) * cols + j)]);
          scale = std::max(scale, std::fabs(w[size_t(int64_t(r) * cols + j)]));
        }
        const float got = tok >= 0 && tok < cols ? w[size_t(int64_t(r) * cols + tok)] : -INFINITY;
        const double e = (best - got) / std::max(scale, 1e-20f);
        if (e > rc.tol) rc.note = "fused argmax picked " + std::to_string(tok) + ", not a maximum";
        rc.err = std::max(rc.err, e);
      }
    }
    rc.ok = rc.err <= rc.tol && rc.note.empty();
    if (!rc.ok) {
      rep.failures++;
      if (rc.note.empty()) rc.note = "error above tolerance";
    }
    if (rc.err > rep.worst || rep.worst_region.empty()) {
      rep.worst = std::max(rep.worst, rc.err);
      rep.worst_region = rc.region;
    }
    cleanup();
    if (!o.distinct_only || seen_entries.insert(ks.entry).second) rep.regions.push_back(rc);
  }
  // The caches the kernels wrote.
  for (const auto& [name, bytes] : initial) {
    if (skipped_writers.count(name)) continue;
    KILN_ASSIGN_OR_RETURN(TensorView want, states.find(name));
    KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> got, dstates.read(name));
    const double e =
        relative_error(as_f32(*want.type, got.data()), as_f32(*want.type, want.bytes.data()));
    rep.states.push_back({name, e});
    if (e > o.state_tol) {
      rep.failures++;
      RegionCheck rc;
      rc.region = "state " + name;
      rc.err = e;
      rc.tol = o.state_tol;
      rc.ok = false;
      rc.note = "KV cache differs";
      rep.regions.push_back(rc);
    }
    if (e > rep.worst) {
      rep.worst = e;
      rep.worst_region = "state " + name;
    }
  }
  return rep;
}

}  // namespace kiln::runtime
