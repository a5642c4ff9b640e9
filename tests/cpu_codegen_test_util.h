// Test harness of the CPU code generator: runs every region of a graph with its compiled kernel,
// each region fed with the reference interpreter's values of its operands (so errors never
// accumulate across regions), on n threads with a spin barrier, and compares every result — and
// every KV-cache state the kernels write — with the interpreter's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"
#include "codegen/cpu/microkernels.h"
#include "frontends/gguf/quant.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/graph_util.h"
#include "runtime/buffer.h"
#include "runtime/interpreter.h"
#include "runtime/weights.h"

namespace kiln::test {

// 64-byte aligned bytes, filled with a NaN pattern so that reads of unwritten memory show.
struct Buf {
  explicit Buf(size_t n = 0) : size(n) {
    const size_t cap = std::max<size_t>(64, (n + 63) / 64 * 64);
    data.reset(static_cast<uint8_t*>(std::aligned_alloc(64, cap)));
    std::memset(data.get(), 0xFF, cap);
  }
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data;
  size_t size = 0;
};

class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  static void wait(void* self) { static_cast<SpinBarrier*>(self)->arrive(); }
  void arrive() {
    const int g = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    while (gen_.load(std::memory_order_acquire) == g) std::this_thread::yield();
  }

 private:
  const int n_;
  std::atomic<int> count_{0}, gen_{0};
};

// Calls a kernel on nth threads (the calling thread is thread 0).
inline void run_kernel(KilnKernelFn fn, const cpu::KernelInfo& k, std::vector<void*>& buffers,
                       int nth, const void* const* mk, const int32_t* tokens = nullptr) {
  Buf scratch(size_t(nth) * std::max<uint64_t>(k.scratch_bytes, 64));
  SpinBarrier bar(nth);
  auto body = [&](int t) {
    KilnKernelArgs a{buffers.data(),
                     scratch.data.get() + size_t(t) * k.scratch_bytes,
                     mk,
                     t,
                     nth,
                     nth > 1 ? &SpinBarrier::wait : nullptr,
                     &bar,
                     tokens};
    fn(&a);
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < nth; ++t) threads.emplace_back(body, t);
  body(0);
  for (auto& th : threads) th.join();
}

// max |got - want| / max |want| (NaN and a mismatch in non-finite values count as infinite).
inline double rel_error(const std::vector<float>& got, const std::vector<float>& want,
                        size_t* at = nullptr) {
  double scale = 0, err = 0;
  for (float w : want)
    if (std::isfinite(w)) scale = std::max(scale, double(std::fabs(w)));
  scale = std::max(scale, 1e-20);
  for (size_t i = 0; i < got.size(); ++i) {
    double e;
    if (!std::isfinite(want[i]) || !std::isfinite(got[i]))
      e = (got[i] == want[i]) ? 0 : INFINITY;
    else
      e = std::fabs(double(got[i]) - double(want[i])) / scale;
    if (e > err) {
      err = e;
      if (at) *at = i;
    }
  }
  return err;
}

inline std::vector<float> as_f32(const ir::TensorType& t, const uint8_t* p) {
  std::vector<float> v(size_t(t.numel()));
  EXPECT_TRUE(runtime::to_f32(t.dtype, p, v.data(), v.size()).ok());
  return v;
}

// Random bytes of a type: values in [-scale, scale] through the reference quantizer.
inline std::vector<uint8_t> random_bytes(const ir::TensorType& t, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> f(size_t(t.numel()));
  for (float& x : f) x = d(rng);
  std::vector<uint8_t> b(t.bytes().value_or(0));
  EXPECT_TRUE(runtime::from_f32(t.dtype, f.data(), b.data(), f.size()).ok());
  return b;
}

// A weight in the microkernels' packed layout (KernelInfo::packed_operands).
inline Buf pack_weight(const ir::TensorType& t, const uint8_t* bytes) {
  const int N = int(t.dim(0)), K = int(t.dim(1));
  Buf b(mk::packed_bytes(t.dtype, N, K));
  EXPECT_TRUE(mk::pack_weights(t.dtype, bytes, size_t(row_bytes(t.dtype, uint64_t(K)).value_or(0)),
                               N, K, b.data.get())
                  .ok());
  return b;
}

struct CheckOptions {
  std::vector<int> threads{1, 2, 3};
  double tol = 1e-4;                // f32 paths
  double quant_tol = 3e-2;          // kernels with 8-bit activations (microkernels)
  double state_tol = 2e-3;          // f16 caches; q8_0 caches get 2e-2
  const void* const* mk = nullptr;  // default: cpu::microkernel_table()
  cpu::Options codegen;
  // Input values by name; inputs not listed get random floats / zeros for integers.
  std::map<std::string, std::vector<int32_t>> ints;
  uint32_t seed = 1;
};

struct CheckReport {
  int regions = 0;
  // Regions whose every result is bit-identical to the interpreter's (which rounds as ggml-cpu
  // does: docs/parity.md), and the names of the others: how far the compiled kernels are from
  // llama.cpp's exact arithmetic.
  int exact_regions = 0;
  std::vector<std::string> inexact;  // each as its ops: "rms_norm+mul+mul_mat"
  double worst = 0;
  std::string worst_region;
  double compile_seconds = 0;
  size_t distinct = 0;
};

// The interpreter's run of a graph with random inputs (or those given) and random states.
struct Reference {
  runtime::StateStore states;
  std::unique_ptr<runtime::Interpreter> in;
  std::map<std::string, std::vector<uint8_t>> initial;  // states before the run
};

inline std::unique_ptr<Reference> run_reference(const ir::Graph& g,
                                                const runtime::WeightSource& weights,
                                                const CheckOptions& o) {
  auto ref = std::make_unique<Reference>();
  auto it = runtime::Interpreter::create(g, weights, ref->states);
  EXPECT_TRUE(it.ok()) << it.message();
  if (!it.ok()) return nullptr;
  ref->in = std::move(*it);
  runtime::Interpreter& in = *ref->in;
  uint32_t seed = o.seed;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::Input) {
      const std::string& name = n->attrs.s("name");
      const ir::TensorType& t = n->result()->type;
      if (auto f = o.ints.find(name); f != o.ints.end()) {
        EXPECT_TRUE(in.set_input(name, std::span<const int32_t>(f->second)).ok()) << name;
      } else if (is_integer(t.dtype)) {
        std::vector<int32_t> z(size_t(t.numel()), 0);
        EXPECT_TRUE(in.set_input(name, std::span<const int32_t>(z)).ok()) << name;
      } else {
        EXPECT_TRUE(in.set_input_bytes(name, random_bytes(t, seed++)).ok()) << name;
      }
    }
  }
  for (const auto& n : g.nodes())
    if (n->op == ir::Op::State) {
      auto s = ref->states.get(n->attrs.s("name"), n->result()->type);
      EXPECT_TRUE(s.ok());
      std::vector<uint8_t> b = random_bytes(n->result()->type, seed++);
      std::memcpy(s->data, b.data(), b.size());
      ref->initial[n->attrs.s("name")] = b;
    }
  Status run = in.run();
  EXPECT_TRUE(run.ok()) << run.message();
  if (!run.ok()) return nullptr;
  return ref;
}

// Runs `g` (a graph of regions) in the interpreter and region by region with the JIT (or with
// `program`, e.g. loaded object code), and compares.
inline CheckReport check_graph(const ir::Graph& g, const runtime::WeightSource& weights,
                               const CheckOptions& o, const cpu::JitProgram* program = nullptr) {
  CheckReport rep;
  auto ref = run_reference(g, weights, o);
  if (!ref) return rep;
  runtime::Interpreter& in = *ref->in;
  runtime::StateStore& states = ref->states;
  const std::map<std::string, std::vector<uint8_t>>& initial = ref->initial;

  Result<std::unique_ptr<cpu::JitProgram>> compiled = std::unique_ptr<cpu::JitProgram>();
  if (!program) {
    compiled = cpu::jit_compile(g, cpu::Target{}, o.codegen);
    EXPECT_TRUE(compiled.ok()) << compiled.message();
    if (!compiled.ok()) return rep;
    program = compiled->get();
  }
  const cpu::JitProgram* prog = program;
  rep.compile_seconds = prog->compile_seconds();
  rep.distinct = prog->distinct_kernels();
  const void* const* mk = o.mk ? o.mk : cpu::microkernel_table();
  // The real tokens of the run, as the executor counts them (KilnKernelArgs::tokens).
  int32_t tokens = 0;
  if (auto pos = o.ints.find("pos"); pos != o.ints.end())
    for (int32_t p : pos->second) tokens += p >= 0;

  for (int nth : o.threads) {
    std::map<std::string, Buf> my_states;
    for (auto& [name, b] : initial) {
      Buf s(b.size());
      std::memcpy(s.data.get(), b.data(), b.size());
      my_states.emplace(name, std::move(s));
    }
    std::map<const ir::Value*, uint8_t*> mapped;  // values living in my state buffers
    bool any_mk = false;
    size_t ki = 0;
    for (const auto& up : g.nodes()) {
      const ir::Node& n = *up;
      if (n.op == ir::Op::State) {
        mapped[n.result()] = my_states.at(n.attrs.s("name")).data.get();
        continue;
      }
      if ((n.op == ir::Op::Reshape || n.op == ir::Op::View) && mapped.count(n.operand(0))) {
        auto a = passes::alias_of(n, 0);
        mapped[n.result()] = mapped[n.operand(0)] + (a ? a->offset : 0);
        continue;
      }
      if (n.op != ir::Op::Region) continue;
      const cpu::KernelInfo& k = prog->kernels()[ki];
      KilnKernelFn fn = prog->function(ki);
      ++ki;
      std::vector<Buf> owned;
      owned.reserve(n.operands.size() + n.results.size());
      std::vector<void*> ptrs;
      bool reads_state = false;  // a state this harness's kernels wrote (not the interpreter's)
      for (size_t oi = 0; oi < n.operands.size(); ++oi) {
        const ir::Value* v = n.operands[oi];
        if (mapped.count(v)) {
          ptrs.push_back(mapped[v]);
          reads_state = true;
          continue;
        }
        auto tv = in.value(*v);
        EXPECT_TRUE(tv.ok()) << tv.message();
        if (std::count(k.packed_operands.begin(), k.packed_operands.end(), int(oi))) {
          owned.push_back(pack_weight(v->type, tv->bytes.data()));
          ptrs.push_back(owned.back().data.get());
          continue;
        }
        owned.emplace_back(tv->bytes.size());
        std::memcpy(owned.back().data.get(), tv->bytes.data(), tv->bytes.size());
        ptrs.push_back(owned.back().data.get());
      }
      std::vector<int> alias(n.results.size(), -1);
      for (size_t r = 0; r < n.results.size(); ++r) {
        auto a = passes::alias_of(n, int(r));
        if (a) {
          alias[r] = a->operand;
          uint8_t* p = static_cast<uint8_t*>(ptrs[size_t(a->operand)]) + a->offset;
          ptrs.push_back(p);
          if (mapped.count(n.operand(a->operand))) mapped[n.results[r]] = p;
        } else {
          owned.emplace_back(n.results[r]->type.bytes().value_or(0));
          ptrs.push_back(owned.back().data.get());
        }
      }
      run_kernel(fn, k, ptrs, nth, k.uses_microkernels ? mk : nullptr, &tokens);
      any_mk |= k.uses_microkernels;
      ++rep.regions;
      // Kernels reading caches that earlier kernels wrote see values rounded to the cache type
      // from slightly different f32 results: they get the caches' tolerance. Regions that round
      // an intermediate to a coarse grid (8-bit activations, ggml's f16 GELU table) can move a
      // whole step on an ulp of difference in another summation order: the quantized tolerance.
      bool coarse = false;
      for (const auto& b : n.body->nodes())
        coarse |= (b->op == ir::Op::MulMat && b->attrs.dtype("act") != DType::F32) ||
                  (b->op == ir::Op::Gelu && b->attrs.s("approx") == "tanh_f16");
      double tol = k.uses_microkernels || coarse || (any_mk && reads_state) ? o.quant_tol : o.tol;
      if (reads_state) tol = std::max(tol, o.state_tol);
      bool exact = true;
      for (size_t r = 0; r < n.results.size(); ++r) {
        if (alias[r] >= 0) continue;
        const ir::Value* v = n.results[r];
        auto want = in.value(*v);
        EXPECT_TRUE(want.ok());
        const uint8_t* got = static_cast<uint8_t*>(ptrs[n.operands.size() + r]);
        if (is_integer(v->type.dtype)) {
          EXPECT_EQ(0, std::memcmp(got, want->bytes.data(), want->bytes.size()))
              << k.name << " result " << r << " (" << v->type.str() << "), " << nth << " threads";
          continue;
        }
        size_t at = 0;
        exact &= std::memcmp(got, want->bytes.data(), want->bytes.size()) == 0;
        const std::vector<float> gf = as_f32(v->type, got),
                                 wf = as_f32(v->type, want->bytes.data());
        double e = rel_error(gf, wf, &at);
        if (e > rep.worst) {
          rep.worst = e;
          rep.worst_region = k.name;
        }
        EXPECT_LE(e, tol) << k.name << " result " << r << " " << v->type.str() << " at element "
                          << at << " (" << gf[at] << " vs " << wf[at] << "), " << nth
                          << " threads\n"
                          << ir::print_node(n);
      }
      if (exact) {
        ++rep.exact_regions;
      } else {
        std::string ops;  // what the region computes: its ops, in order, views left out
        for (const auto& b : n.body->nodes())
          if (b->op != ir::Op::Arg && b->op != ir::Op::Yield && !passes::is_free(*b))
            ops += (ops.empty() ? "" : "+") + std::string(ir::op_name(b->op));
        rep.inexact.push_back(ops);
      }
    }
    for (auto& [name, b] : my_states) {
      auto want = states.find(name);
      EXPECT_TRUE(want.ok());
      const ir::TensorType& t = *want->type;
      double tol = t.dtype == DType::F32                             ? o.tol
                   : t.dtype == DType::F16 || t.dtype == DType::BF16 ? o.state_tol
                                                                     : 2e-2;
      if (any_mk) tol = std::max(tol, o.quant_tol);
      size_t at = 0;
      double e = rel_error(as_f32(t, b.data.get()), as_f32(t, want->bytes.data()), &at);
      EXPECT_LE(e, tol) << "state " << name << " at element " << at << ", " << nth << " threads";
    }
  }
  return rep;
}

// A graph in IR text with random weights of the declared types.
struct TextGraph {
  std::unique_ptr<ir::Graph> graph;
  runtime::MemoryWeights weights;
};

inline TextGraph parse_graph(const std::string& text, uint32_t seed = 7) {
  TextGraph tg;
  auto g = ir::parse(text);
  EXPECT_TRUE(g.ok()) << g.message() << "\n" << text;
  if (!g.ok()) return tg;
  tg.graph = std::move(*g);
  for (const auto& n : tg.graph->nodes())
    if (n->op == ir::Op::Weight) {
      const ir::TensorType& t = n->result()->type;
      EXPECT_TRUE(tg.weights.add(n->attrs.s("name"), t, random_bytes(t, seed++, 0.5f)).ok());
    }
  return tg;
}

}  // namespace kiln::test
