// `kiln perplexity MODEL -f FILE [--ctx N]`: perplexity of a text, computed as llama.cpp's
// perplexity tool does (non-overlapping windows of N tokens, BOS first in each when the model adds
// BOS, the second half of each window scored). The last line of stdout is `ppl = X`.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/kiln.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct PplArgs {
  std::string model, file, backend = "auto", kv = "f16";
  int ctx = 512, threads = 0;
};

int perplexity(const PplArgs& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) return fail("perplexity", "cannot read " + a.file);
  std::stringstream ss;
  ss << in.rdbuf();
  auto backend = parse_backend(a.backend);
  if (!backend.ok()) return fail("perplexity", backend.message());
  if (a.ctx < 4) return fail("perplexity", "--ctx must be at least 4");
  LoadOptions lo;
  lo.backend = *backend;
  lo.threads = a.threads;
  lo.ctx = a.ctx;
  lo.kv_type = a.kv;
  auto model = Model::load(a.model, lo);
  if (!model.ok()) return fail("perplexity", model.message());
  auto p = (*model)->perplexity(ss.str());
  if (!p.ok()) return fail("perplexity", p.message());
  std::printf("%d tokens, %d windows of %d, %d scored, %.2f s (%s backend, %d threads)\n",
              p->tokens, p->windows, (*model)->ctx(), p->scored, p->seconds,
              (*model)->info().backend.c_str(), (*model)->info().threads);
  std::printf("ppl = %.4f\n", p->ppl);
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    perplexity,
    Command{"perplexity", "Perplexity of a text file (as llama.cpp's perplexity tool)", 24,
            [](CLI::App& app) -> std::function<int()> {
              auto a = std::make_shared<PplArgs>();
              app.add_option("model", a->model, "GGUF model file")->required();
              app.add_option("-f,--file", a->file, "Text file")->required();
              app.add_option("-c,--ctx", a->ctx, "Window (context) length in tokens")
                  ->capture_default_str();
              app.add_option("-t,--threads", a->threads, "Threads (0: one per core)")
                  ->capture_default_str();
              app.add_option("--kv", a->kv, "KV-cache type: f16 or q8_0")->capture_default_str();
              app.add_option("--backend", a->backend, "auto, cpu or interp")->capture_default_str();
              return [a] { return perplexity(*a); };
            }});

}  // namespace kiln::tools
