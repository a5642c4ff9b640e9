// `kiln bench MODEL`: prefill and decode speed, like llama-bench. For each thread count the model
// is loaded once and both tests are run once untimed (compilation, caches); then each repetition
// times `pp` (a prompt of -p random tokens into an empty cache) and `tg` (-n tokens decoded one at
// a time from an empty cache), as llama-bench does. Reported: median and range of tokens/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "runtime/kiln.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct BenchArgs {
  std::string model, backend = "auto", kv = "f16", output = "md", threads = "";
  int p = 128, n = 64, reps = 5, ctx = 0;
  std::string device = "cpu";  // [cuda] cpu, cuda or auto
  bool no_cuda_graph = false;  // [cuda]
};

struct Sample {
  int threads = 0;
  std::string test;
  std::vector<double> tps;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

Result<std::vector<int>> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      int t = std::stoi(item);
      if (t < 1 || t > 1024) return make_error("bad thread count '", item, "'");
      out.push_back(t);
    } catch (...) {
      return make_error("bad thread count '", item, "'");
    }
  }
  if (out.empty()) return make_error("no thread counts in '", s, "'");
  return out;
}

// One timed prompt (pp) or generation (tg) run from an empty cache; returns tokens/s.
Result<double> time_test(Model& m, bool prompt, int n, std::mt19937& rng) {
  m.reset();
  const int vocab = m.vocab_size();
  const ModelInfo& info = m.info();
  int32_t start = info.add_bos && info.bos >= 0 ? info.bos : int32_t(rng() % uint32_t(vocab));
  std::vector<int32_t> toks(static_cast<size_t>(n));
  toks[0] = start;
  for (int i = 1; i < n; ++i) toks[size_t(i)] = int32_t(rng() % uint32_t(vocab));
  auto t0 = std::chrono::steady_clock::now();
  if (prompt) {
    KILN_RETURN_IF_ERROR(m.eval(toks).status());
  } else {
    for (int i = 0; i < n; ++i)
      KILN_RETURN_IF_ERROR(m.eval(std::span<const int32_t>(&toks[size_t(i)], 1)).status());
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return n / s;
}

int bench(const BenchArgs& a) {
  auto backend = parse_backend(a.backend);
  if (!backend.ok()) return fail("bench", backend.message());
  std::vector<int> threads;
  if (a.threads.empty()) {
    threads = {0};
  } else {
    auto t = parse_threads(a.threads);
    if (!t.ok()) return fail("bench", t.message());
    threads = *t;
  }
  if (a.p < 1 || a.n < 1 || a.reps < 1) return fail("bench", "-p, -n and -r must be at least 1");
  std::vector<Sample> samples;
  std::mt19937 rng(1234);
  ModelInfo info;
  double compile = 0;
  for (int t : threads) {
    LoadOptions lo;
    lo.backend = *backend;
    auto device = device_backend(a.device, lo.backend);  // [cuda]
    if (!device.ok()) return fail("bench", device.message());
    lo.backend = *device;
    lo.cuda_graph = !a.no_cuda_graph;  // [/cuda]
    lo.threads = t;
    lo.kv_type = a.kv;
    lo.ctx = a.ctx > 0 ? a.ctx : std::max(a.p, a.n);
    auto model = Model::load(a.model, lo);
    if (!model.ok()) return fail("bench", model.message());
    info = (*model)->info();
    Sample pp{info.threads, "pp" + std::to_string(a.p), {}};
    Sample tg{info.threads, "tg" + std::to_string(a.n), {}};
    for (int r = -1; r < a.reps; ++r) {  // r = -1: warm-up, not recorded
      auto p = time_test(**model, true, a.p, rng);
      if (!p.ok()) return fail("bench", p.message());
      auto g = time_test(**model, false, a.n, rng);
      if (!g.ok()) return fail("bench", g.message());
      if (r >= 0) {
        pp.tps.push_back(*p);
        tg.tps.push_back(*g);
      }
    }
    compile = (*model)->compile_seconds();
    samples.push_back(pp);
    samples.push_back(tg);
  }

  if (a.output == "json") {
    nlohmann::json j;
    j["model"] = info.path;
    j["backend"] = info.backend;
    j["kv_type"] = info.kv_type;
    j["compile_seconds"] = compile;
    for (const Sample& s : samples) {
      auto [lo, hi] = std::minmax_element(s.tps.begin(), s.tps.end());
      j["results"].push_back({{"threads", s.threads},
                              {"test", s.test},
                              {"median", median(s.tps)},
                              {"min", *lo},
                              {"max", *hi},
                              {"samples", s.tps}});
    }
    std::printf("%s\n", j.dump(1).c_str());
    return 0;
  }
  char size[32], params[32];
  std::snprintf(size, sizeof size, "%.2f MiB", double(info.weight_bytes) / (1 << 20));
  std::snprintf(params, sizeof params, "%.2f M", double(info.parameters) / 1e6);
  std::string name = info.name.empty() ? info.architecture : info.name;
  std::printf("| %-28s | %10s | %10s | %-7s | %7s | %7s | %30s |\n", "model", "size", "params",
              "backend", "threads", "test", "t/s: median (min - max)");
  std::printf("| %s | %s: | %s: | %s | %s: | %s: | %s: |\n", std::string(28, '-').c_str(),
              std::string(9, '-').c_str(), std::string(9, '-').c_str(), std::string(7, '-').c_str(),
              std::string(6, '-').c_str(), std::string(6, '-').c_str(),
              std::string(29, '-').c_str());
  for (const Sample& s : samples) {
    auto [lo, hi] = std::minmax_element(s.tps.begin(), s.tps.end());
    char tps[64];
    std::snprintf(tps, sizeof tps, "%.2f (%.2f - %.2f)", median(s.tps), *lo, *hi);
    std::printf("| %-28s | %10s | %10s | %-7s | %7d | %7s | %30s |\n", name.substr(0, 28).c_str(),
                size, params, info.backend.c_str(), s.threads, s.test.c_str(), tps);
  }
  std::fprintf(stderr, "kiln bench: %d repetitions, kv %s, graphs built in %.2f s\n", a.reps,
               info.kv_type.c_str(), compile);
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    bench,
    Command{
        "bench", "Prefill and decode speed (median and range, like llama-bench)", 23,
        [](CLI::App& app) -> std::function<int()> {
          auto a = std::make_shared<BenchArgs>();
          app.add_option("model", a->model, "GGUF model file or .kiln artifact")->required();
          app.add_option("-p,--n-prompt", a->p, "Prompt tokens (pp test)")->capture_default_str();
          app.add_option("-n,--n-gen", a->n, "Generated tokens (tg test)")->capture_default_str();
          app.add_option("-t,--threads", a->threads,
                         "Thread counts, comma-separated (default: one per core)");
          app.add_option("-r,--repetitions", a->reps, "Timed repetitions")->capture_default_str();
          app.add_option("-c,--ctx", a->ctx, "Context length (0: max(p, n))")
              ->capture_default_str();
          app.add_option("--kv", a->kv, "KV-cache type: f16 or q8_0")->capture_default_str();
          app.add_option("--backend", a->backend, "auto, cpu or interp")->capture_default_str();
          app.add_option("--device", a->device, "cpu, cuda or auto")  // [cuda]
              ->capture_default_str();
          app.add_flag("--no-cuda-graph", a->no_cuda_graph,
                       "cuda: launch every kernel");  // [cuda]
          app.add_option("-o,--output", a->output, "md or json")->capture_default_str();
          return [a] { return bench(*a); };
        }});

}  // namespace kiln::tools
