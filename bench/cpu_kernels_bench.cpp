// CPU kernels of the SmolLM2 and Gemma 3 decode graphs: each distinct kernel of the first layer
// and the output, plus one whole decode step, on a pool of spinning threads (as the executor
// runs them), with the bytes each kernel must read and write (weights, activations, the visible
// part of the KV cache) as GB/s and, for products, GFLOP/s. Uses the real models from
// $KILN_MODELS when present, else make-model presets of the same shapes (random weights).
//
//   cpu_kernels_bench [--threads=N] [--pos=P] [benchmark flags]
//
// The machine's read bandwidth is measured as a reference ("memory_read" benchmark).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"
#include "codegen/cpu/microkernels.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "frontends/gguf/make_model.h"
#include "passes/graph_util.h"
#include "passes/pass_manager.h"
#include "runtime/interpreter.h"
#include "runtime/weights.h"

namespace {

using namespace kiln;

int g_threads = 2;
int g_pos = 100;

// Spins, then yields: on a busy machine a pure spin loses whole time slices.
inline void relax(int& n) {
  if (++n > 4000) std::this_thread::yield();
}

// Threads 1..n-1 spin on a generation counter; the caller is thread 0.
class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int t = 1; t < n; ++t) threads_.emplace_back([this, t] { work(t); });
  }
  ~Pool() {
    stop_ = true;
    gen_.fetch_add(1);
    for (auto& t : threads_) t.join();
  }
  void run(KilnKernelFn fn, void* const* bufs, uint8_t* scratch, uint64_t sb,
           const void* const* mk) {
    fn_ = fn;
    bufs_ = bufs;
    scratch_ = scratch;
    sb_ = sb;
    mk_ = mk;
    done_.store(0);
    gen_.fetch_add(1, std::memory_order_release);
    call(0);
    for (int s = 0; done_.load(std::memory_order_acquire) != n_ - 1;) relax(s);
  }

 private:
  static void barrier(void* self) {
    auto* p = static_cast<Pool*>(self);
    const int g = p->bgen_.load(std::memory_order_acquire);
    if (p->bcount_.fetch_add(1, std::memory_order_acq_rel) + 1 == p->n_) {
      p->bcount_.store(0, std::memory_order_relaxed);
      p->bgen_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int s = 0; p->bgen_.load(std::memory_order_acquire) == g;) relax(s);
  }
  void call(int t) {
    KilnKernelArgs a{bufs_, scratch_ + size_t(t) * sb_,        mk_,  t,
                     n_,    n_ > 1 ? &Pool::barrier : nullptr, this, nullptr};
    fn_(&a);
  }
  void work(int t) {
    int seen = 0;  // the generation at construction: no job is missed
    while (true) {
      int g;
      for (int s = 0; (g = gen_.load(std::memory_order_acquire)) == seen;) relax(s);
      seen = g;
      if (stop_) return;
      call(t);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
  const int n_;
  std::vector<std::thread> threads_;
  std::atomic<int> gen_{0}, done_{0}, bcount_{0}, bgen_{0};
  std::atomic<bool> stop_{false};
  KilnKernelFn fn_ = nullptr;
  void* const* bufs_ = nullptr;
  uint8_t* scratch_ = nullptr;
  uint64_t sb_ = 0;
  const void* const* mk_ = nullptr;
};

struct Aligned {
  explicit Aligned(size_t n)
      : p(static_cast<uint8_t*>(std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64)))) {
    std::memset(p, 0, std::max<size_t>(64, (n + 63) / 64 * 64));
  }
  ~Aligned() { std::free(p); }
  uint8_t* p;
};

// One bound kernel call of the decode graph.
struct Call {
  std::string name;
  KilnKernelFn fn;
  cpu::KernelInfo info;
  std::vector<void*> bufs;
  double bytes = 0, flops = 0;
};

struct Model {
  std::string name;
  std::vector<uint8_t> owned;  // generated model bytes
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<cpu::JitProgram> prog;
  std::vector<std::unique_ptr<Aligned>> memory;
  std::vector<Call> calls;
  std::unique_ptr<Aligned> scratch;
  uint64_t scratch_stride = 0;
};

std::unique_ptr<Model> load(const std::string& which, const std::string& file, const char* preset,
                            DType quant) {
  auto m = std::make_unique<Model>();
  m->name = which;
  const char* dir = std::getenv("KILN_MODELS");
  std::string path = std::string(dir ? dir
                                     : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") +
                                           "/.cache/kiln/models") +
                     "/" + file;
  auto f = gguf::GgufFile::open(path);
  if (f.ok()) {
    m->file = std::move(*f);
  } else {
    gguf::MakeModelOptions o;
    o.quant = quant;
    auto w = gguf::make_model(*gguf::find_preset(preset), o);
    if (!w.ok() || !w->to_bytes(&m->owned).ok()) return nullptr;
    auto p = gguf::GgufFile::parse(m->owned, preset);
    if (!p.ok()) return nullptr;
    m->file = std::move(*p);
    m->name += " (random weights)";
  }
  lower::GraphSpec spec;
  spec.tokens = 1;
  spec.ctx = 1024;
  auto g = lower::lower_gguf(*m->file, spec);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.message().c_str());
    return nullptr;
  }
  m->graph = std::move(*g);
  passes::PassContext ctx;
  if (!passes::run_pipeline("default", *m->graph, ctx).ok()) return nullptr;
  auto prog = cpu::jit_compile(*m->graph);
  if (!prog.ok()) {
    std::fprintf(stderr, "%s\n", prog.message().c_str());
    return nullptr;
  }
  m->prog = std::move(*prog);
  std::fprintf(stderr, "%s: %zu kernels (%zu distinct) compiled in %.2f s\n", m->name.c_str(),
               m->prog->kernels().size(), m->prog->distinct_kernels(), m->prog->compile_seconds());

  // Values: the interpreter evaluates derived constants (merged weights) and gives every
  // operand a realistic value; states are ours.
  runtime::GgufWeights weights(*m->file);
  runtime::StateStore states;
  auto in = runtime::Interpreter::create(*m->graph, weights, states);
  if (!in.ok()) {
    std::fprintf(stderr, "%s\n", in.message().c_str());
    return nullptr;
  }
  for (const std::string& name : (*in)->input_names()) {
    const ir::TensorType* t = (*in)->input_type(name);
    std::vector<int32_t> v(size_t(t->numel()), 0);
    if (name == "tokens") v.assign(v.size(), 17);
    if (name == "pos") v.assign(v.size(), g_pos);
    (void)(*in)->set_input(name, v);
  }
  if (Status st = (*in)->run(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return nullptr;
  }
  std::map<const ir::Value*, void*> where;
  size_t ki = 0;
  for (const auto& up : m->graph->nodes()) {
    const ir::Node& n = *up;
    if (n.op == ir::Op::State) {
      m->memory.push_back(std::make_unique<Aligned>(n.result()->type.bytes().value_or(0)));
      where[n.result()] = m->memory.back()->p;
      continue;
    }
    if (n.op != ir::Op::Region) continue;
    Call c;
    c.info = m->prog->kernels()[ki];
    c.fn = m->prog->function(ki);
    c.name = c.info.name;
    ++ki;
    for (size_t oi = 0; oi < n.operands.size(); ++oi) {
      const ir::Value* v = n.operands[oi];
      const ir::Value* r = v;
      uint64_t off = 0;
      while (r->def->op == ir::Op::Reshape || r->def->op == ir::Op::View) {
        auto a = passes::alias_of(*r->def, 0);
        off += a ? a->offset : 0;
        r = r->def->operand(0);
      }
      if (!where.count(r)) {
        auto tv = (*in)->value(*r);
        if (!tv.ok()) {
          std::fprintf(stderr, "%s\n", tv.message().c_str());
          return nullptr;
        }
        m->memory.push_back(std::make_unique<Aligned>(tv->bytes.size()));
        std::memcpy(m->memory.back()->p, tv->bytes.data(), tv->bytes.size());
        where[r] = m->memory.back()->p;
      }
      c.bufs.push_back(static_cast<uint8_t*>(where[r]) + off);
      if (std::count(c.info.packed_operands.begin(), c.info.packed_operands.end(), int(oi))) {
        const int N = int(v->type.dim(0)), K = int(v->type.dim(1));
        m->memory.push_back(std::make_unique<Aligned>(mk::packed_bytes(v->type.dtype, N, K)));
        if (!mk::pack_weights(v->type.dtype, c.bufs.back(),
                              size_t(row_bytes(v->type.dtype, uint64_t(K)).value_or(0)), N, K,
                              m->memory.back()->p)
                 .ok())
          return nullptr;
        c.bufs.back() = m->memory.back()->p;
      }
      const bool cache = r->def->op == ir::Op::State || r->def->op == ir::Op::Region;
      double b = double(v->type.bytes().value_or(0));
      // A cache is read up to the position only, a gathered table only at the rows gathered.
      if (cache && v->type.rank() == 4) b *= double(g_pos + 1) / double(v->type.dim(1));
      for (const auto& bn : n.body->nodes())
        if (bn->op == ir::Op::GetRows && bn->operand(0)->def->op == ir::Op::Arg &&
            bn->operand(0)->def->attrs.i("index") == int64_t(oi))
          b = std::min(b, double(bn->operand(1)->type.numel()) * b / double(v->type.dim(0)));
      c.bytes += b;
    }
    for (size_t r = 0; r < n.results.size(); ++r) {
      auto a = passes::alias_of(n, int(r));
      if (a) {
        c.bufs.push_back(static_cast<uint8_t*>(c.bufs[size_t(a->operand)]) + a->offset);
      } else {
        m->memory.push_back(std::make_unique<Aligned>(n.results[r]->type.bytes().value_or(0)));
        c.bufs.push_back(m->memory.back()->p);
        c.bytes += double(n.results[r]->type.bytes().value_or(0));
      }
      where[n.results[r]] = c.bufs.back();
    }
    for (const auto& b : n.body->nodes())
      if (b->op == ir::Op::MulMat)
        c.flops += 2.0 * double(b->result()->type.numel()) * double(b->operand(0)->type.dim(-1));
    m->scratch_stride = std::max(m->scratch_stride, c.info.scratch_bytes);
    m->calls.push_back(std::move(c));
  }
  m->scratch = std::make_unique<Aligned>(m->scratch_stride * size_t(g_threads) + 64);
  return m;
}

Pool& pool() {
  static Pool p(g_threads);
  return p;
}

void run_call(Model& m, const Call& c) {
  pool().run(c.fn, c.bufs.data(), m.scratch->p, c.info.scratch_bytes,
             c.info.uses_microkernels ? cpu::microkernel_table() : nullptr);
}

void bench_kernel(benchmark::State& st, Model* m, size_t i) {
  const Call& c = m->calls[i];
  for (auto _ : st) run_call(*m, c);
  st.SetBytesProcessed(int64_t(c.bytes) * st.iterations());
  if (c.flops > 0)
    st.counters["GFLOP/s"] =
        benchmark::Counter(c.flops * 1e-9 * double(st.iterations()), benchmark::Counter::kIsRate);
}

void bench_step(benchmark::State& st, Model* m) {
  double bytes = 0;
  for (const Call& c : m->calls) bytes += c.bytes;
  for (auto _ : st)
    for (const Call& c : m->calls) run_call(*m, c);
  st.SetBytesProcessed(int64_t(bytes) * st.iterations());
  st.counters["tok/s"] = benchmark::Counter(double(st.iterations()), benchmark::Counter::kIsRate);
}

void bench_memory(benchmark::State& st) {
  const size_t n = size_t(256) << 20;
  static Aligned buf(n);
  static std::vector<double> partial(16);
  for (auto _ : st) {
    std::vector<std::thread> ts;
    for (int t = 0; t < g_threads; ++t)
      ts.emplace_back([&, t] {
        const uint64_t* p =
            reinterpret_cast<const uint64_t*>(buf.p + n / size_t(g_threads) * size_t(t));
        uint64_t s = 0;
        for (size_t i = 0; i < n / size_t(g_threads) / 8; i += 8)
          s += p[i] ^ p[i + 1] ^ p[i + 2] ^ p[i + 3] ^ p[i + 4] ^ p[i + 5] ^ p[i + 6] ^ p[i + 7];
        partial[size_t(t)] = double(s);
      });
    for (auto& t : ts) t.join();
  }
  st.SetBytesProcessed(int64_t(n) * st.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--threads=", 0) == 0)
      g_threads = std::atoi(a.c_str() + 10);
    else if (a.rfind("--pos=", 0) == 0)
      g_pos = std::atoi(a.c_str() + 6);
    else
      rest.push_back(argv[i]);
  }
  int rc = int(rest.size());
  benchmark::Initialize(&rc, rest.data());
  if (!cpu::llvm_available()) {
    std::fprintf(stderr, "built without LLVM: nothing to benchmark\n");
    return 0;
  }
  benchmark::RegisterBenchmark("memory_read", bench_memory)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  std::vector<std::unique_ptr<Model>> models;
  models.push_back(load("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m", DType::Q4_1));
  models.push_back(load("gemma3", "gemma-3-270m-q4_k_m.gguf", "gemma3-270m", DType::Q4_K));
  for (auto& m : models) {
    if (!m) continue;
    std::set<std::string> seen;
    for (size_t i = 0; i < m->calls.size(); ++i) {
      const Call& c = m->calls[i];
      // The first layer's kernels and those outside layers (embedding, output).
      const bool layer0 = c.name.rfind("blk0.", 0) == 0;
      const bool outside = c.name.rfind("blk", 0) != 0;
      if (!(layer0 || outside) || !seen.insert(c.name).second) continue;
      benchmark::RegisterBenchmark((m->name + "/" + c.name).c_str(), bench_kernel, m.get(), i)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark((m->name + "/decode_step").c_str(), bench_step, m.get())
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
