// `kiln run MODEL -p TEXT`: continues a raw prompt. Only the generated text goes to stdout, as it
// is generated, so the command composes in pipes; prompt and generation speed go to stderr.
// Several -p: the prompts are decoded together (Model::generate_batch) and each continuation is
// printed, in order, on a line of its own once all are done.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "runtime/kiln.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct RunArgs {
  std::string model, backend = "auto", kv = "f16";
  std::vector<std::string> prompts;
  int n = 128, threads = 0, ctx = 0, top_k = 40, repeat_last_n = 64;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  float presence_penalty = 0, frequency_penalty = 0;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false, quiet = false;
  std::string device = "cpu";  // [cuda] cpu, cuda or auto
  bool no_cuda_graph = false;  // [cuda]
};

// Several prompts decoded together: each continuation on a line of its own, in prompt order.
int run_batch(Model& model, const RunArgs& a, const GenerateOptions& go) {
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& p : a.prompts) {
    auto t = model.tokenize(p, true);
    if (!t.ok()) return fail("run", t.message());
    ids.push_back(std::move(*t));
  }
  auto out = model.generate_batch(ids, go);
  if (!out.ok()) return fail("run", out.message());
  int tokens = 0;
  double decode = 0;
  for (const Generation& g : *out) {
    std::fwrite(g.text.data(), 1, g.text.size(), stdout);
    std::fputc('\n', stdout);
    tokens += g.decode_tokens;
    decode = std::max(decode, g.decode_seconds);
  }
  std::fflush(stdout);
  if (!a.quiet)
    std::fprintf(stderr,
                 "kiln run: %zu prompts decoded together: %d tokens in %.3f s = %.1f tok/s; "
                 "%s backend, %d threads; load %.3f s, compile %.3f s\n",
                 out->size(), tokens, decode, decode > 0 ? tokens / decode : 0.0,
                 model.info().backend.c_str(), model.info().threads, model.info().load_seconds,
                 model.compile_seconds());
  return 0;
}

int run(const RunArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto backend = parse_backend(a.backend);
  if (!backend.ok()) return fail("run", backend.message());
  LoadOptions lo;
  lo.backend = *backend;
  // [cuda] --device: cuda fails without a GPU; auto falls back to the CPU with one line.
  auto device = device_backend(a.device, lo.backend);
  if (!device.ok()) return fail("run", device.message());
  lo.backend = *device;
  lo.cuda_graph = !a.no_cuda_graph;
  // [/cuda]
  lo.threads = a.threads;
  lo.ctx = a.ctx;
  lo.kv_type = a.kv;
  lo.batch = int(a.prompts.size());
  auto model = Model::load(a.model, lo);
  if (!model.ok()) return fail("run", model.message());
  GenerateOptions go;
  go.max_tokens = a.n;
  go.stop = a.stop;
  go.ignore_eog = a.ignore_eos;
  SamplingOptions& s = go.sampling;
  s.temperature = a.temp;
  s.top_k = a.top_k;
  s.top_p = a.top_p;
  s.min_p = a.min_p;
  s.repeat_penalty = a.repeat_penalty;
  s.repeat_last_n = a.repeat_last_n;
  s.presence_penalty = a.presence_penalty;
  s.frequency_penalty = a.frequency_penalty;
  s.seed = a.seed;
  if (a.prompts.size() > 1) return run_batch(**model, a, go);
  double first_token = -1;
  auto out = (*model)->generate(a.prompts[0], go, [&](const Token& t) {
    if (first_token < 0)
      first_token = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (!out.ok()) return fail("run", out.message());
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!a.quiet) {
    const ModelInfo& info = (*model)->info();
    std::fprintf(stderr,
                 "kiln run: prompt %d tokens (%d evaluated) in %.3f s = %.1f tok/s; generated %zu "
                 "tokens, %d decoded in %.3f s = %.1f tok/s; first token after %.3f s; stop: %s\n"
                 "kiln run: %s backend, %d threads, ctx %d, kv %s; load %.3f s, compile %.3f s "
                 "(%d graphs: %s)\n",
                 out->prompt_tokens, out->prefill_tokens, out->prefill_seconds,
                 out->prefill_seconds > 0 ? out->prefill_tokens / out->prefill_seconds : 0.0,
                 out->tokens.size(), out->decode_tokens, out->decode_seconds,
                 out->decode_seconds > 0 ? out->decode_tokens / out->decode_seconds : 0.0,
                 first_token, finish_reason_name(out->finish), info.backend.c_str(), info.threads,
                 info.ctx, info.kv_type.c_str(), info.load_seconds, (*model)->compile_seconds(),
                 (*model)->graphs_built(), (*model)->compile_breakdown().c_str());
  }
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    run,
    Command{
        "run", "Generate text from a raw prompt (streams to stdout)", 20,
        [](CLI::App& app) -> std::function<int()> {
          auto a = std::make_shared<RunArgs>();
          app.add_option("model", a->model, "GGUF model file or .kiln artifact")->required();
          app.add_option("-p,--prompt", a->prompts,
                         "Prompt text (repeatable: the prompts are decoded together)")
              ->required();
          app.add_option("-n,--n-predict", a->n, "Tokens to generate")->capture_default_str();
          app.add_option("--temp", a->temp, "Temperature (0: greedy)")->capture_default_str();
          app.add_option("--top-k", a->top_k, "Top-k (0: off)")->capture_default_str();
          app.add_option("--top-p", a->top_p, "Top-p (1: off)")->capture_default_str();
          app.add_option("--min-p", a->min_p, "Min-p (0: off)")->capture_default_str();
          app.add_option("--repeat-penalty", a->repeat_penalty, "Repetition penalty (1: off)")
              ->capture_default_str();
          app.add_option("--repeat-last-n", a->repeat_last_n,
                         "Tokens the penalties look back at (-1: all)")
              ->capture_default_str();
          app.add_option("--presence-penalty", a->presence_penalty, "Presence penalty")
              ->capture_default_str();
          app.add_option("--frequency-penalty", a->frequency_penalty, "Frequency penalty")
              ->capture_default_str();
          app.add_option("--seed", a->seed, "Sampling seed (-1: random)")->capture_default_str();
          app.add_option("--stop", a->stop, "Stop string (repeatable)");
          app.add_flag("--ignore-eos", a->ignore_eos,
                       "Keep generating past end-of-generation tokens");
          app.add_option("-t,--threads", a->threads, "Threads (0: one per core)")
              ->capture_default_str();
          app.add_option("-c,--ctx", a->ctx, "Context length (0: min(model, 4096))")
              ->capture_default_str();
          app.add_option("--kv", a->kv, "KV-cache type: f16 or q8_0")->capture_default_str();
          app.add_option("--backend", a->backend, "auto, cpu or interp")->capture_default_str();
          app.add_option("--device", a->device,
                         "cpu, cuda (fails without a GPU) or auto (cuda when there is one)")
              ->capture_default_str();                                                     // [cuda]
          app.add_flag("--no-cuda-graph", a->no_cuda_graph, "cuda: launch every kernel");  // [cuda]
          app.add_flag("-q,--quiet", a->quiet, "No statistics on stderr");
          return [a] { return run(*a); };
        }});

}  // namespace kiln::tools
