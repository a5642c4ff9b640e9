// `kiln chat MODEL`: multi-turn chat in the model's own template. Each stdin line is a user turn;
// the reply streams to stdout. `/reset` starts a new conversation, `/exit` (or end of input)
// quits. The KV cache keeps the conversation, so each turn prefills only what is new.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "runtime/kiln.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct ChatArgs {
  std::string model, system, backend = "auto", kv = "f16";
  int n = 512, threads = 0, ctx = 0, top_k = 40;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  int64_t seed = -1;
  bool verbose = false;
};

int chat(const ChatArgs& a) {
  auto backend = parse_backend(a.backend);
  if (!backend.ok()) return fail("chat", backend.message());
  LoadOptions lo;
  lo.backend = *backend;
  lo.threads = a.threads;
  lo.ctx = a.ctx;
  lo.kv_type = a.kv;
  auto loaded = Model::load(a.model, lo);
  if (!loaded.ok()) return fail("chat", loaded.message());
  Model& model = **loaded;
  if (!model.info().chat_template_warning.empty())
    std::fprintf(stderr, "kiln chat: warning: %s\n", model.info().chat_template_warning.c_str());
  GenerateOptions go;
  go.max_tokens = a.n;
  go.sampling.temperature = a.temp;
  go.sampling.top_k = a.top_k;
  go.sampling.top_p = a.top_p;
  go.sampling.min_p = a.min_p;
  go.sampling.repeat_penalty = a.repeat_penalty;
  go.sampling.seed = a.seed;

  const bool interactive = isatty(STDIN_FILENO);
  std::vector<Message> messages;
  if (!a.system.empty()) messages.push_back({"system", a.system});
  std::string line;
  for (;;) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(a.system.empty() ? 0 : 1);
      model.reset();
      std::fprintf(stderr, "kiln chat: new conversation\n");
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    auto reply = model.chat(messages, go, [](const Token& t) {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    if (!reply.ok()) {
      // The turn is dropped; the conversation goes on (a context overflow says so here).
      messages.pop_back();
      std::fprintf(stderr, "kiln chat: error: %s\n", reply.message().c_str());
      continue;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    messages.push_back({"assistant", reply->text});
    if (a.verbose)
      std::fprintf(stderr, "kiln chat: %d prompt tokens (%d new), %zu generated, %.1f tok/s, %s\n",
                   reply->prompt_tokens, reply->prefill_tokens, reply->tokens.size(),
                   reply->decode_seconds > 0 ? reply->decode_tokens / reply->decode_seconds : 0.0,
                   finish_reason_name(reply->finish));
  }
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    chat,
    Command{
        "chat", "Chat with a model in its own chat template (stdin lines are turns)", 21,
        [](CLI::App& app) -> std::function<int()> {
          auto a = std::make_shared<ChatArgs>();
          app.add_option("model", a->model, "GGUF model file or .kiln artifact")->required();
          app.add_option("-s,--system", a->system, "System message");
          app.add_option("-n,--n-predict", a->n, "Most tokens per reply")->capture_default_str();
          app.add_option("--temp", a->temp, "Temperature (0: greedy)")->capture_default_str();
          app.add_option("--top-k", a->top_k, "Top-k (0: off)")->capture_default_str();
          app.add_option("--top-p", a->top_p, "Top-p (1: off)")->capture_default_str();
          app.add_option("--min-p", a->min_p, "Min-p (0: off)")->capture_default_str();
          app.add_option("--repeat-penalty", a->repeat_penalty, "Repetition penalty (1: off)")
              ->capture_default_str();
          app.add_option("--seed", a->seed, "Sampling seed (-1: random)")->capture_default_str();
          app.add_option("-t,--threads", a->threads, "Threads (0: one per core)")
              ->capture_default_str();
          app.add_option("-c,--ctx", a->ctx, "Context length (0: min(model, 4096))")
              ->capture_default_str();
          app.add_option("--kv", a->kv, "KV-cache type: f16 or q8_0")->capture_default_str();
          app.add_option("--backend", a->backend, "auto, cpu or interp")->capture_default_str();
          app.add_flag("-v,--verbose", a->verbose, "Statistics per turn on stderr");
          return [a] { return chat(*a); };
        }});

}  // namespace kiln::tools
