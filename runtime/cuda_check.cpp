// kiln-gpu-check: the program behind scripts/gpu-check (docs/cuda.md). For each model given:
//
//  1. lowers its decode graph and a prefill graph, runs the pass pipeline, generates the CUDA
//     module and compiles it with NVRTC for sm_80 and sm_90 (ptxas resources reported);
//  2. on a device: every kernel against the reference interpreter on random inputs
//     (cuda_kernel_check.h), decode and prefill graphs;
//  3. CUDA decode logits against the CPU path (the interpreter on the same graph) for --steps
//     greedy steps: max relative error per step < --tol;
//  4. decode and prefill tok/s with and without the CUDA graph, and kernels launched per token.
//
// Without a device (or libcuda) step 1 still runs for every model, then it prints why and exits
// 2. --emulate runs steps 2-4 on the CPU emulator instead (for rehearsing on small models).
// Exit: 0 all checks pass, 1 a check failed or an error, 2 no CUDA device.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "passes/pass_manager.h"
#include "runtime/buffer.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_check.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_emulator.h"
#include "runtime/cuda_executor.h"
#include "runtime/cuda_kernel_check.h"
#include "runtime/interpreter.h"
#include "runtime/weights.h"

namespace kiln::runtime {
namespace {

struct Args {
  std::vector<std::string> models;
  int steps = 32;           // decode comparison steps
  int check_prefill = 8;    // prefill bucket for the kernel check (the interpreter runs it)
  int bench_prefill = 128;  // prefill bucket for tok/s
  int bench_decode = 256;   // timed decode steps
  int ctx = 1024;
  double tol = 5e-3;
  bool emulate = false;
  bool bench = true;
  bool verbose = false;
  bool describe = false;         // print every kernel's launch configuration
  bool profile = true;           // time each decode kernel alone (bench)
  bool graph_in_compare = true;  // --no-cuda-graph: the decode comparison launches directly
  int max_regions = 0;           // kernel check: only the first N regions (emulator)
  int position = 37;             // kernel check: the decode token's position
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Built {
  lower::GraphSpec spec;
  std::unique_ptr<ir::Graph> graph;
  passes::MemoryPlan plan;
};

Result<Built> build_graph(const gguf::GgufFile& file, lower::GraphSpec spec) {
  Built b;
  b.spec = spec;
  KILN_ASSIGN_OR_RETURN(b.graph, lower::lower_gguf(file, spec));
  passes::PassContext ctx;
  ctx.options.verify_each = false;
  Status st =
      passes::run_pipeline("canonicalize,merge-parallel-matmuls,fuse,plan-memory", *b.graph, ctx);
  if (!st.ok()) return st.error().wrap(spec.name());
  if (!ctx.plan) return make_error(spec.name(), ": no memory plan");
  b.plan = std::move(*ctx.plan);
  return b;
}

int layers_of(const gguf::GgufFile& file) {
  int n = 0;
  while (file.find_tensor("blk." + std::to_string(n) + ".attn_norm.weight")) ++n;
  return std::max(n, 1);
}

// Sets every input of a decode/prefill graph for `tokens` at positions pos0.. in slot 0.
template <typename Runner>
Status set_inputs(Runner& r, const lower::GraphSpec& spec, const std::vector<int32_t>& tokens,
                  int pos0) {
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = pos0 + int(i);
  KILN_RETURN_IF_ERROR(r.set_input("tokens", std::span<const int32_t>(tokens)));
  KILN_RETURN_IF_ERROR(r.set_input("pos", std::span<const int32_t>(pos)));
  std::vector<int32_t> seq(size_t(spec.batch), 0);
  KILN_RETURN_IF_ERROR(r.set_input("seq", std::span<const int32_t>(seq)));
  if (spec.tokens > 1) {
    std::vector<int32_t> rows(size_t(spec.batch), spec.tokens - 1);
    KILN_RETURN_IF_ERROR(r.set_input("rows", std::span<const int32_t>(rows)));
  }
  return Status::Ok();
}

// Interpreter wrapper with the set_input(name, span<i32>) signature the template uses.
struct InterpRunner {
  Interpreter& it;
  Status set_input(std::string_view name, std::span<const int32_t> v) {
    return it.set_input(std::string(name), v);
  }
};
struct CudaRunner {
  CudaExecutor& e;
  Status set_input(std::string_view name, std::span<const int32_t> v) {
    if (!e.has_input(name)) return Status::Ok();
    return e.set_input(name, v);
  }
};

int argmax(std::span<const float> v) {
  int best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)]) best = int(i);
  return best;
}

struct Row {
  std::string model;
  size_t regions_decode = 0, regions_prefill = 0;
  double compile_s = 0;
  int max_regs = 0, spills = 0;
  std::string kernel_check = "-";
  std::string decode_err = "-";
  double dec_graph = 0, dec_nograph = 0, dec_graph_nopdl = 0, pre_graph = 0, pre_nograph = 0;
  size_t launches = 0;
  int layers = 1;
};

struct Checker {
  Args a;
  std::unique_ptr<CudaDevice> dev;
  int failures = 0;
  std::vector<Row> rows;

  void fail(const std::string& what) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }

  // Step 1: NVRTC + ptxas for every region of the graph.
  Status compile_step(const Built& b, Row& row) {
    KILN_ASSIGN_OR_RETURN(cuda::Program p, cuda::generate(*b.graph));
    if (a.describe)
      for (const cuda::KernelSpec& k : p.kernels_by_region)
        std::printf("    %-16s %-28s grid(%u,%u) block %u: %s\n", k.name.c_str(), k.entry.c_str(),
                    k.grid[0], k.grid[1], k.block, k.summary.c_str());
    cuda::CompileOptions co;
    co.archs = {80, 90};
    const double t0 = now_s();
    KILN_ASSIGN_OR_RETURN(cuda::CompiledModule m, cuda::compile_module(p.source, p.graph_name, co));
    row.compile_s += now_s() - t0;
    int regs = 0, spill = 0, stack = 0;
    for (const cuda::KernelResources& r : m.resources) {
      regs = std::max(regs, r.registers);
      spill += r.spill_stores + r.spill_loads;
      stack = std::max(stack, r.stack);
    }
    row.max_regs = std::max(row.max_regs, regs);
    row.spills += spill;
    std::printf("  %-14s ptxas: at most %d registers, %d B stack, %d B spilled (all kernels)\n",
                b.spec.name().c_str(), regs, stack, spill);
    std::printf(
        "  %-14s %3zu regions, %3zu kernels, sm_80 %zu B + sm_90 %zu B cubin, PTX %zu B%s\n",
        b.spec.name().c_str(), p.kernels_by_region.size(), p.distinct,
        m.cubins.count(80) ? m.cubins.at(80).size() : 0,
        m.cubins.count(90) ? m.cubins.at(90).size() : 0, m.ptx.size(),
        m.from_cache ? " (cached)" : "");
    return Status::Ok();
  }

  // Step 3: CUDA decode logits against the interpreter for a.steps greedy steps.
  Status decode_compare(const gguf::GgufFile& file, const Built& b, Row& row) {
    GgufWeights weights(file);
    StateStore states;
    KILN_ASSIGN_OR_RETURN(auto interp, Interpreter::create(*b.graph, weights, states));
    ConstantStore host_constants(weights);
    DeviceConstants constants(*dev, weights, host_constants);
    DeviceStates dstates(*dev);
    CudaContext cx{dev.get(), &constants, &dstates, {}};
    KILN_ASSIGN_OR_RETURN(Built b2, build_graph(file, b.spec));
    KILN_ASSIGN_OR_RETURN(
        auto exec, CudaExecutor::create(b2.spec, std::move(b2.graph), std::move(b2.plan), cx));
    exec->set_cuda_graph(a.graph_in_compare);
    const int64_t vocab = file.find_tensor("token_embd.weight")
                              ? int64_t(file.find_tensor("token_embd.weight")->dims.at(1))
                              : 1000;
    int32_t tok = int32_t(uint64_t(0x9E3779B97F4A7C15ull * 7) % uint64_t(vocab));
    double worst = 0;
    int agree = 0;
    bool reported = false;
    const double t0 = now_s();
    for (int s = 0; s < a.steps; ++s) {
      std::vector<int32_t> t{tok};
      InterpRunner ir{*interp};
      KILN_RETURN_IF_ERROR(set_inputs(ir, b.spec, t, s));
      KILN_RETURN_IF_ERROR(interp->run());
      KILN_ASSIGN_OR_RETURN(auto want, interp->output("logits"));
      CudaRunner cr{*exec};
      KILN_RETURN_IF_ERROR(set_inputs(cr, b.spec, t, s));
      KILN_RETURN_IF_ERROR(exec->run());
      KILN_ASSIGN_OR_RETURN(auto got, exec->output("logits"));
      const double e = relative_error(std::vector<float>(got.begin(), got.end()),
                                      std::vector<float>(want.begin(), want.end()));
      worst = std::max(worst, e);
      if (a.verbose) std::printf("    step %2d: rel err %.3e\n", s, e);
      if (a.verbose || (e >= a.tol && worst == e && !reported)) {
        // Which KV cache went apart first says which kernel to look at.
        reported = true;
        {
          // Replays this step kernel by kernel from the CPU's caches and token.
          std::map<std::string, std::vector<uint8_t>> st;
          for (const auto& n : b.graph->nodes())
            if (n->op == ir::Op::State) {
              auto v = states.find(n->attrs.s("name"));
              if (v.ok())
                st[n->attrs.s("name")] = std::vector<uint8_t>(v->bytes.begin(), v->bytes.end());
            }
          KernelCheckOptions ko;
          ko.states = &st;
          ko.token = tok;
          ko.position = s;
          auto rep = check_kernels(*dev, *b.graph, weights, ko);
          if (rep.ok()) {
            std::printf("    step %2d replayed kernel by kernel: %s\n", s, rep->summary().c_str());
            for (const RegionCheck& rc : rep->regions)
              if (!rc.ok || a.verbose)
                std::printf("      %s %s %s: %.3e %s\n", rc.region.c_str(), rc.entry.c_str(),
                            rc.kind.c_str(), rc.err, rc.note.c_str());
          } else {
            std::printf("    step %2d replay: %s\n", s, rep.message().c_str());
          }
        }
        // The first region whose result differs (same schedule in both graphs).
        const auto& rn = b.graph->nodes();
        const auto& en = exec->graph().nodes();
        for (size_t i = 0; i < rn.size() && i < en.size(); ++i) {
          if (rn[i]->op != ir::Op::Region) continue;
          for (size_t r = 0; r < rn[i]->results.size(); ++r) {
            const ir::TensorType& t = rn[i]->result(int(r))->type;
            auto want_v = interp->value(*rn[i]->result(int(r)));
            auto got_v = exec->read(*en[i]->result(int(r)));
            if (!want_v.ok() || !got_v.ok()) continue;
            std::vector<float> wf(size_t(t.numel())), gf(size_t(t.numel()));
            (void)to_f32(t.dtype, want_v->bytes.data(), wf.data(), wf.size());
            (void)to_f32(t.dtype, got_v->data(), gf.data(), gf.size());
            const double re = relative_error(gf, wf);
            if (re > 1e-3 || a.verbose)
              std::printf("    step %2d: region %s result %zu rel err %.3e\n", s,
                          rn[i]->attrs.s("name").c_str(), r, re);
          }
        }
        for (const auto& n : b.graph->nodes()) {
          if (n->op != ir::Op::State) continue;
          const std::string& name = n->attrs.s("name");
          auto want_s = states.find(name);
          auto got_s = dstates.read(name);
          if (!want_s.ok() || !got_s.ok()) continue;
          const ir::TensorType& t = n->result()->type;
          std::vector<float> wf(size_t(t.numel())), gf(size_t(t.numel()));
          (void)to_f32(t.dtype, want_s->bytes.data(), wf.data(), wf.size());
          (void)to_f32(t.dtype, got_s->data(), gf.data(), gf.size());
          std::printf("    step %2d: state %s rel err %.3e\n", s, name.c_str(),
                      relative_error(gf, wf));
        }
      }
      const int next = argmax(want);
      agree += argmax(got) == next;
      tok = next;  // both sides follow the CPU's greedy tokens
    }
    char buf[128];
    std::snprintf(buf, sizeof buf, "%.2e", worst);
    row.decode_err = buf;
    std::printf("  decode vs CPU: %d steps, max rel err %.3e, argmax agreed %d/%d (%.1f s)\n",
                a.steps, worst, agree, a.steps, now_s() - t0);
    if (!(worst < a.tol)) fail(row.model + ": decode logits differ from the CPU (" + buf + ")");
    return Status::Ok();
  }

  // Step 4: tok/s with and without the CUDA graph.
  Status bench(const gguf::GgufFile& file, Row& row) {
    GgufWeights weights(file);
    ConstantStore host_constants(weights);
    DeviceConstants constants(*dev, weights, host_constants);
    DeviceStates dstates(*dev);
    CudaContext cx{dev.get(), &constants, &dstates, {}};
    const int64_t vocab = int64_t(file.find_tensor("token_embd.weight")->dims.at(1));
    {
      lower::GraphSpec spec;
      spec.ctx = a.ctx;
      KILN_ASSIGN_OR_RETURN(Built b, build_graph(file, spec));
      KILN_ASSIGN_OR_RETURN(auto exec,
                            CudaExecutor::create(spec, std::move(b.graph), std::move(b.plan), cx));
      row.launches = exec->launches_per_run();
      KILN_RETURN_IF_ERROR(exec->set_sampling(0, 1));
      KILN_RETURN_IF_ERROR(exec->set_feedback(true));
      const int n = std::min(a.bench_decode, a.ctx - 8);
      for (int graph = 1; graph >= 0; --graph) {
        exec->set_cuda_graph(graph == 1);
        for (int rep = 0; rep < 2; ++rep) {  // rep 0 warms up (capture, caches)
          std::vector<int32_t> t{int32_t(17 % vocab)};
          CudaRunner cr{*exec};
          KILN_RETURN_IF_ERROR(set_inputs(cr, spec, t, 0));
          const int steps = rep == 0 ? 8 : n;
          const double t0 = now_s();
          for (int s = 0; s < steps; ++s) KILN_RETURN_IF_ERROR(exec->step().status());
          const double tps = steps / (now_s() - t0);
          if (rep == 1) (graph ? row.dec_graph : row.dec_nograph) = tps;
        }
      }
      if (a.profile) {
        // Where the decode time goes: each kernel alone, grouped by its place in a layer.
        KILN_ASSIGN_OR_RETURN(std::vector<double> us, exec->profile(20));
        std::map<std::string, std::pair<double, int>> by;
        double total = 0;
        const auto& ks = exec->program().kernels_by_region;
        for (size_t i = 0; i < us.size(); ++i) {
          std::string name = i < ks.size() ? ks[i].name : "sample";
          if (name.rfind("blk", 0) == 0 && name.find('.') != std::string::npos)
            name = "blk*" + name.substr(name.find('.'));
          by[name].first += us[i];
          by[name].second++;
          total += us[i];
        }
        std::printf("  kernel time alone, decode (sum %.1f us per token):\n", total);
        for (const auto& [name, v] : by) {
          std::string what;
          for (size_t i = 0; i < ks.size(); ++i)
            if (ks[i].name == name ||
                (name.rfind("blk*", 0) == 0 && ks[i].name.rfind("blk0.", 0) == 0 &&
                 ks[i].name.substr(ks[i].name.find('.')) == name.substr(4))) {
              what = ks[i].summary.substr(0, 90);
              break;
            }
          std::printf("    %-14s x%-3d %7.2f us each  %s\n", name.c_str(), v.second,
                      v.first / v.second, what.c_str());
        }
        KILN_RETURN_IF_ERROR(dstates.reset());
      }
      if (exec->replay().captures() != 1)
        fail(row.model + ": decode graph captured " + std::to_string(exec->replay().captures()) +
             " times (want once)");
      if (!exec->replay().disabled_reason().empty())
        fail(row.model + ": CUDA graph disabled: " + exec->replay().disabled_reason());
    }
    {
      // The same decode graph without programmatic dependent launch (kernels wait for the
      // previous one to finish before they start): what PDL buys.
      lower::GraphSpec spec;
      spec.ctx = a.ctx;
      KILN_ASSIGN_OR_RETURN(Built b, build_graph(file, spec));
      CudaContext cx2 = cx;
      cx2.options.pdl = false;
      KILN_ASSIGN_OR_RETURN(auto exec,
                            CudaExecutor::create(spec, std::move(b.graph), std::move(b.plan), cx2));
      KILN_RETURN_IF_ERROR(exec->set_sampling(0, 1));
      KILN_RETURN_IF_ERROR(exec->set_feedback(true));
      const int n = std::min(a.bench_decode, a.ctx - 8);
      for (int rep = 0; rep < 2; ++rep) {
        std::vector<int32_t> t{int32_t(17 % vocab)};
        CudaRunner cr{*exec};
        KILN_RETURN_IF_ERROR(set_inputs(cr, spec, t, 0));
        const int steps = rep == 0 ? 8 : n;
        const double t0 = now_s();
        for (int s = 0; s < steps; ++s) KILN_RETURN_IF_ERROR(exec->step().status());
        if (rep == 1) row.dec_graph_nopdl = steps / (now_s() - t0);
      }
      KILN_RETURN_IF_ERROR(dstates.reset());
    }
    {
      lower::GraphSpec spec;
      spec.ctx = a.ctx;
      spec.tokens = a.bench_prefill;
      KILN_ASSIGN_OR_RETURN(Built b, build_graph(file, spec));
      KILN_ASSIGN_OR_RETURN(auto exec,
                            CudaExecutor::create(spec, std::move(b.graph), std::move(b.plan), cx));
      std::vector<int32_t> t(size_t(a.bench_prefill));
      for (size_t i = 0; i < t.size(); ++i) t[i] = int32_t((i * 7919 + 3) % uint64_t(vocab));
      for (int graph = 1; graph >= 0; --graph) {
        exec->set_cuda_graph(graph == 1);
        for (int rep = 0; rep < 2; ++rep) {
          const int runs = rep == 0 ? 2 : 10;
          CudaRunner cr{*exec};
          KILN_RETURN_IF_ERROR(set_inputs(cr, spec, t, 0));
          const double t0 = now_s();
          for (int r = 0; r < runs; ++r) {
            KILN_RETURN_IF_ERROR(exec->run());
            if (exec->program().has_sample)
              KILN_RETURN_IF_ERROR(exec->tokens().status());
            else
              KILN_RETURN_IF_ERROR(dev->synchronize());
          }
          const double tps = double(runs) * a.bench_prefill / (now_s() - t0);
          if (rep == 1) (graph ? row.pre_graph : row.pre_nograph) = tps;
        }
      }
    }
    std::printf(
        "  decode %.0f tok/s (graph) %.0f (no graph); prefill %.0f / %.0f tok/s; %zu "
        "kernels per token\n",
        row.dec_graph, row.dec_nograph, row.pre_graph, row.pre_nograph, row.launches);
    return Status::Ok();
  }

  Status model(const std::string& path) {
    Row row;
    row.model = path.substr(path.find_last_of('/') + 1);
    std::printf("== %s\n", row.model.c_str());
    KILN_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::open(path));
    row.layers = layers_of(*file);
    lower::GraphSpec dspec, pspec;
    dspec.ctx = pspec.ctx = a.ctx;
    pspec.tokens = a.check_prefill;
    KILN_ASSIGN_OR_RETURN(Built dec, build_graph(*file, dspec));
    KILN_ASSIGN_OR_RETURN(Built pre, build_graph(*file, pspec));
    KILN_RETURN_IF_ERROR(compile_step(dec, row));
    KILN_RETURN_IF_ERROR(compile_step(pre, row));
    row.regions_decode = passes_regions(*dec.graph);
    row.regions_prefill = passes_regions(*pre.graph);
    if (dev) {
      GgufWeights weights(*file);
      std::string kc;
      for (const Built* b : {&dec, &pre}) {
        KernelCheckOptions ko;
        ko.max_regions = a.max_regions;
        ko.position = a.position;
        const double t0 = now_s();
        KILN_ASSIGN_OR_RETURN(KernelCheckReport rep, check_kernels(*dev, *b->graph, weights, ko));
        std::printf("  kernels %-10s %s (%.1f s)\n", b->spec.name().c_str(), rep.summary().c_str(),
                    now_s() - t0);
        for (const RegionCheck& rc : rep.regions)
          if (!rc.ok || a.verbose)
            std::printf("    %s %s %s: %.3e %s %.1e %s\n", rc.region.c_str(), rc.entry.c_str(),
                        rc.kind.c_str(), rc.err, rc.ok ? "<=" : ">", rc.tol, rc.note.c_str());
        if (!rep.ok()) fail(row.model + " " + b->spec.name() + ": " + rep.summary());
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%zu ok %.1e", kc.empty() ? "" : ", ",
                      rep.regions.size() - size_t(rep.failures), rep.worst);
        kc += buf;
      }
      row.kernel_check = kc;
      KILN_RETURN_IF_ERROR(decode_compare(*file, dec, row));
      if (a.bench) KILN_RETURN_IF_ERROR(bench(*file, row));
    }
    rows.push_back(row);
    return Status::Ok();
  }

  static size_t passes_regions(const ir::Graph& g) {
    size_t n = 0;
    for (const auto& node : g.nodes()) n += node->op == ir::Op::Region;
    return n;
  }

  void table() const {
    std::printf("\n%-28s %7s %8s %8s %8s %9s %8s %8s %8s %9s\n", "model", "kern/tk", "kern/lyr",
                "dec g", "dec no-g", "g no-pdl", "graph x", "pre g", "pre no-g", "dec err");
    for (const Row& r : rows) {
      std::printf("%-28s %7zu %8.1f %8.0f %8.0f %9.0f %8.2f %8.0f %8.0f %9s\n", r.model.c_str(),
                  r.launches, double(r.launches) / r.layers, r.dec_graph, r.dec_nograph,
                  r.dec_graph_nopdl, r.dec_nograph > 0 ? r.dec_graph / r.dec_nograph : 0.0,
                  r.pre_graph, r.pre_nograph, r.decode_err.c_str());
    }
    std::printf(
        "(tok/s; decode: one token per step with a 4-byte token read back; prefill: %d-token "
        "prompts; kern/lyr: kernels per token / layers)\n",
        a.bench_prefill);
  }
};

int usage() {
  std::fprintf(stderr,
               "usage: kiln-gpu-check [--steps N] [--ctx N] [--prefill N] [--decode-steps N]\n"
               "                      [--no-bench] [--emulate [--max-regions N]] MODEL.gguf...\n");
  return 1;
}

}  // namespace

int gpu_check_main(int argc, char** argv) {
  Checker c;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> int { return i + 1 < argc ? std::atoi(argv[++i]) : -1; };
    if (s == "--steps")
      c.a.steps = next();
    else if (s == "--ctx")
      c.a.ctx = next();
    else if (s == "--prefill")
      c.a.bench_prefill = next();
    else if (s == "--check-prefill")
      c.a.check_prefill = next();
    else if (s == "--decode-steps")
      c.a.bench_decode = next();
    else if (s == "--max-regions")
      c.a.max_regions = next();
    else if (s == "--no-bench")
      c.a.bench = false;
    else if (s == "--verbose")
      c.a.verbose = true;
    else if (s == "--describe")
      c.a.describe = true;
    else if (s == "--no-cuda-graph")
      c.a.graph_in_compare = false;
    else if (s == "--tol")
      c.a.tol = i + 1 < argc ? std::atof(argv[++i]) : -1;
    else if (s == "--position")
      c.a.position = next();
    else if (s == "--emulate")
      c.a.emulate = true;
    else if (!s.empty() && s[0] == '-')
      return usage();
    else
      c.a.models.push_back(s);
  }
  if (c.a.models.empty() || c.a.steps < 0 || c.a.ctx < 16 || c.a.bench_prefill < 2 ||
      c.a.check_prefill < 2 || c.a.bench_decode < 1 || !(c.a.tol > 0))
    return usage();
  setvbuf(stdout, nullptr, _IOLBF, 0);

  if (Status st = cuda::nvrtc_status(); !st.ok()) {
    std::printf("FAIL %s\n", st.message().c_str());
    return 1;
  }
  auto ver = cuda::nvrtc_version();
  std::printf("NVRTC %s, kernel cache %s\n", ver.ok() ? ver->c_str() : "?",
              cuda::cache_dir().c_str());
  bool no_device = false;
  if (c.a.emulate) {
    c.dev = make_emulated_device();
    std::printf("device: %s (CPU emulation)\n", c.dev->name().c_str());
  } else if (Status st = cuda_status(); !st.ok()) {
    std::printf("no CUDA device: %s\n", st.message().c_str());
    no_device = true;
  } else {
    auto d = open_cuda_device();
    if (!d.ok()) {
      std::printf("no CUDA device: %s\n", d.message().c_str());
      no_device = true;
    } else {
      c.dev = std::move(*d);
      std::printf("device: %s\n", c.dev->name().c_str());
    }
  }
  for (const std::string& m : c.a.models) {
    Status st = c.model(m);
    if (!st.ok()) c.fail(m + ": " + st.message());
    if (c.dev && c.a.bench && !c.rows.empty()) c.table();  // so far (a cut-off run keeps it)
  }
  if (c.failures) {
    std::printf("\ngpu-check: %d check(s) FAILED\n", c.failures);
    return 1;
  }
  if (no_device) {
    std::printf(
        "\ngpu-check: kernels compile for sm_80 and sm_90; NO CUDA DEVICE, so nothing ran "
        "on a GPU\n");
    return 2;
  }
  std::printf("\ngpu-check: all checks passed\n");
  return 0;
}

}  // namespace kiln::runtime

// The entry point of kiln-gpu-check (codegen/cuda/CMakeLists.txt generates its main()).
int kiln_gpu_check_main(int argc, char** argv) {
  return kiln::runtime::gpu_check_main(argc, argv);
}
