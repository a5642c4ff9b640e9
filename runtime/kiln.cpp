// The public API (kiln.h): a model file, its tokenizer and chat template, a backend, one context
// (KV cache), and the generation loop.
#include "runtime/kiln.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <optional>

#include "codegen/cpu/cpu_codegen.h"

#include "frontends/gguf/chat_template.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "runtime/artifact_cuda.h"  // [cuda]
#include "runtime/artifact_loader.h"
#include "runtime/backend.h"
#include "runtime/context.h"
#include "runtime/cuda_backend.h"  // [cuda]
#include "runtime/cuda_driver.h"   // [cuda]
#include "runtime/memory_trace.h"
#include "runtime/model_impl.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"

namespace kiln {

using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kEndOfGeneration:
      return "eog";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kContextFull:
      return "context_full";
  }
  return "?";
}

Result<BackendKind> parse_backend(std::string_view name) {
  if (name == "auto") return BackendKind::kAuto;
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "interp" || name == "interpreter") return BackendKind::kInterpreter;
  if (name == "cuda") return BackendKind::kCuda;  // [cuda]
  return make_error("unknown backend '", name, "' (auto, cpu, interp, cuda)");
}

Result<BackendKind> device_backend(std::string_view device, BackendKind backend) {  // [cuda]
  if (device == "cpu") return backend;
  if (device == "cuda") return BackendKind::kCuda;
  if (device == "auto") return BackendKind::kAutoCuda;
  return make_error("unknown device '", device, "' (cpu, cuda, auto)");
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& o) {
  auto t0 = Clock::now();
  runtime::trace_rss("load started");
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  // Issue 6: an artifact brings its weights, tokenizer, graphs, ctx, KV type and buckets.
  LoadOptions eff = o;
  // An artifact's tokenizer is built while its big sections are checked (a 262k vocabulary
  // takes tens of ms to index).
  std::future<Result<std::unique_ptr<gguf::Tokenizer>>> early_tokenizer;
  if (artifact::is_artifact_file(path)) {
    KILN_ASSIGN_OR_RETURN(impl->artifact, artifact::load_artifact(path, [&](auto md) {
                            // Holds the metadata: it outlives a load that fails meanwhile.
                            early_tokenizer = std::async(std::launch::async, [md] {
                              return gguf::Tokenizer::from_gguf(md->metadata());
                            });
                          }));
    impl->file = std::move(impl->artifact->weights);
    const artifact::Artifact& a = *impl->artifact->artifact;
    eff.ctx = a.ctx();
    eff.kv_type = std::string(dtype_name(a.kv_type()));
    eff.prefill_buckets = a.prefill_buckets();
  } else {
    KILN_ASSIGN_OR_RETURN(impl->file, gguf::GgufFile::open(path));
  }
  runtime::trace_rss("file mapped and checked");

  runtime::BackendOptions bo;
  bo.threads = o.threads;
  bo.ctx = eff.ctx;
  bo.microkernels = o.microkernels;
  bo.release_merged_weights = true;  // GgufFile::open maps the file
  bo.release_compiler_pages = true;
  // KV-cache slots: an artifact's graphs were compiled for its own.
  impl->slots = impl->artifact ? impl->artifact->artifact->slots() : std::max(1, o.batch);
  if (impl->artifact) impl->batches = impl->artifact->artifact->batches();
  bo.slots = impl->slots;
  if (eff.kv_type == "f16")
    bo.kv_type = DType::F16;
  else if (eff.kv_type == "q8_0")
    bo.kv_type = DType::Q8_0;
  else
    return make_error("KV cache type '", eff.kv_type, "' is not supported (f16, q8_0)");
  BackendKind kind = o.backend;
  // [cuda] --device cuda / auto (runtime/cuda_backend.h).
  if (kind == BackendKind::kAutoCuda) {
    if (Status st = runtime::cuda_status(); st.ok()) {
      kind = BackendKind::kCuda;
    } else {
      std::fprintf(stderr, "kiln: %s\n", runtime::cuda_fallback_message(st).c_str());
      kind = BackendKind::kAuto;
    }
  }
  // A CUDA artifact holds GPU code only (loading it already checked that CUDA works here).
  const bool cuda_artifact = impl->artifact && impl->artifact->artifact->is_cuda();
  if (cuda_artifact && kind != BackendKind::kCuda)
    return make_error(path, ": compiled for CUDA (target ",
                      impl->artifact->artifact->header().get("target"),
                      "): run it with --device cuda or --device auto");
  std::unique_ptr<runtime::Backend> cuda_backend;
  if (kind == BackendKind::kCuda) {
    runtime::CudaBackendOptions co;
    co.cuda_graph = o.cuda_graph;
    auto b = cuda_artifact
                 ? runtime::make_cuda_backend(
                       *impl->file, bo, co,
                       std::make_unique<artifact::CudaArtifactSource>(*impl->artifact->artifact))
                 : runtime::make_cuda_backend(*impl->file, bo, co);
    if (!b.ok()) return b.error().wrap("--device cuda");
    cuda_backend = std::move(*b);
  }
  // [/cuda]
  if (kind == BackendKind::kAuto)
    kind = cpu::llvm_available() ? BackendKind::kCpu : BackendKind::kInterpreter;
  if (kind == BackendKind::kInterpreter && impl->artifact &&
      impl->artifact->artifact->header().get("weights.subset") == "kernels")
    return make_error(path,
                      ": the artifact embeds only the weights its compiled kernels read, and the "
                      "reference interpreter needs all of them: run the source GGUF instead",
                      cpu::llvm_available() ? "" : " (this kiln was built without LLVM)");
  auto backend =
      cuda_backend ? Result<std::unique_ptr<runtime::Backend>>(std::move(cuda_backend))
      : kind != BackendKind::kCpu ? runtime::make_interpreter_backend(*impl->file, bo)
      : impl->artifact
          ? runtime::make_cpu_backend(
                *impl->file, bo,
                std::make_unique<artifact::ArtifactGraphSource>(*impl->artifact->artifact))
          : runtime::make_cpu_backend(*impl->file, bo);
  if (!backend.ok()) return backend.error().wrap(path);
  impl->backend = std::move(*backend);
  KILN_ASSIGN_OR_RETURN(int ctx, runtime::resolve_ctx(*impl->file, eff.ctx));
  // The interpreter evaluates prompts in exact-length batches, as llama.cpp does, so that its
  // tokens are llama.cpp's bit for bit (docs/parity.md); the compiled backends evaluate a prompt
  // as one padded bucket (plan_chunks), which their kernels' summation orders do not notice.
  if (kind == BackendKind::kInterpreter)
    impl->context =
        std::make_unique<runtime::Context>(*impl->backend, ctx, runtime::Context::ExactLengths{});
  else
    impl->context = std::make_unique<runtime::Context>(*impl->backend, eff.prefill_buckets, ctx);
  runtime::trace_rss("backend made");
  // An artifact's decode graph is linked and bound now (no compilation: milliseconds), while
  // its tokenizer may still be being built.
  if (impl->artifact && kind == BackendKind::kCpu)
    if (Status st = impl->context->prepare(1); !st.ok()) return st.error().wrap(path);
  const gguf::Metadata& md =
      impl->artifact ? impl->artifact->metadata->metadata() : impl->file->metadata();
  auto tok = early_tokenizer.valid() ? early_tokenizer.get() : gguf::Tokenizer::from_gguf(md);
  if (!tok.ok()) return tok.error().wrap(path + ": tokenizer");
  impl->tokenizer = std::move(*tok);
  std::string warning;
  auto tmpl = gguf::ChatTemplate::from_gguf(md, &warning);
  if (tmpl.ok())
    impl->chat_template = std::move(*tmpl);
  else
    warning = "chat template: " + tmpl.message();  // chat() then reports it
  runtime::trace_rss("file and tokenizer loaded");

  ModelInfo& info = impl->info;
  info.path = path;
  info.architecture = impl->file->architecture();
  if (auto name = md.get_string_or("general.name", ""); name.ok()) info.name = *name;
  info.backend = impl->backend->name();
  info.threads = impl->backend->threads();
  info.ctx = ctx;
  if (const gguf::TensorInfo* t = impl->file->find_tensor("token_embd.weight");
      t && t->dims.size() == 2)
    info.vocab_size = int(t->dims[1]);
  for (const gguf::TensorInfo& t : impl->file->tensors()) {
    info.parameters += t.elements();
    info.weight_bytes += t.bytes;
  }
  // An artifact's embedded GGUF may hold only some weights: the model's figures are recorded.
  if (impl->artifact) {
    const artifact::Header& h = impl->artifact->artifact->header();
    auto get = [&](const char* key, auto& out) {
      if (auto v = h.get_int(key); v.ok() && *v > 0) out = std::decay_t<decltype(out)>(*v);
    };
    get("model.vocab_size", info.vocab_size);
    get("model.parameters", info.parameters);
    get("model.weight_bytes", info.weight_bytes);
  }
  info.file_bytes = impl->file->file_size();
  info.kv_type = eff.kv_type;
  info.add_bos = impl->tokenizer->add_bos();
  info.bos = impl->tokenizer->bos();
  info.chat_template_warning = warning;
  info.load_seconds = seconds_since(t0);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelInfo& Model::info() const {
  return impl_->info;
}
int Model::ctx() const {
  return impl_->context->ctx();
}
int Model::vocab_size() const {
  return impl_->info.vocab_size;
}
int Model::n_past() const {
  return impl_->context->n_past();
}
void Model::reset() {
  impl_->context->reset();
}
bool Model::is_eog(int32_t id) const {
  return impl_->tokenizer->is_eog(id);
}

double Model::compile_seconds() const {
  runtime::BackendStats s = impl_->backend->stats();
  return s.lower_seconds + s.passes_seconds + s.compile_seconds + s.bind_seconds;
}
int Model::graphs_built() const {
  return impl_->backend->stats().graphs;
}

std::string Model::compile_breakdown() const {
  runtime::BackendStats s = impl_->backend->stats();
  char buf[160];
  std::snprintf(buf, sizeof buf, "lower %.2f s, passes %.2f s, codegen %.2f s, bind %.2f s",
                s.lower_seconds, s.passes_seconds, s.compile_seconds, s.bind_seconds);
  return buf;
}

Status Model::warm_up() {
  lower::GraphSpec spec;
  KILN_RETURN_IF_ERROR(impl_->backend->graph(spec).status());
  for (int b : impl_->context->buckets()) {
    spec.tokens = b;
    KILN_RETURN_IF_ERROR(impl_->backend->graph(spec).status());
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> Model::tokenize(std::string_view text, bool add_special,
                                             bool parse_special) const {
  return impl_->tokenizer->encode(text, add_special, parse_special);
}

std::string Model::detokenize(std::span<const int32_t> ids) const {
  return impl_->tokenizer->decode(ids);
}

Result<std::span<const float>> Model::eval(std::span<const int32_t> tokens) {
  return impl_->context->eval(tokens);
}

Result<Generation> Model::generate(std::string_view prompt, const GenerateOptions& options,
                                   const StreamFn& stream) {
  KILN_ASSIGN_OR_RETURN(auto ids, tokenize(prompt, /*add_special=*/true, /*parse_special=*/false));
  return impl_->generate(ids, options, stream);
}

Result<Generation> Model::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                   const StreamFn& stream) {
  return impl_->generate(prompt, options, stream);
}

Result<std::string> Model::apply_chat_template(const std::vector<Message>& messages,
                                               bool add_generation_prompt) const {
  if (!impl_->chat_template) return make_error(impl_->info.chat_template_warning);
  std::vector<gguf::ChatMessage> msgs;
  for (const Message& m : messages) msgs.push_back(gguf::ChatMessage{m.role, m.content, {}});
  return impl_->chat_template->apply(msgs, add_generation_prompt);
}

Result<Generation> Model::chat(const std::vector<Message>& messages, const GenerateOptions& options,
                               const StreamFn& stream) {
  KILN_ASSIGN_OR_RETURN(std::string text, apply_chat_template(messages, true));
  // As llama.cpp: the template's own BOS text is dropped when the tokenizer adds BOS anyway;
  // special-token text in the rendered prompt is parsed.
  const gguf::Tokenizer& tok = *impl_->tokenizer;
  const std::string& bos = impl_->chat_template->bos_token();
  std::string_view body = text;
  if (tok.add_bos() && !bos.empty() && body.starts_with(bos)) body.remove_prefix(bos.size());
  KILN_ASSIGN_OR_RETURN(auto ids, tok.encode(body, /*add_special=*/true, /*parse_special=*/true));
  return impl_->generate(ids, options, stream);
}

Result<Generation> Model::Impl::generate(std::span<const int32_t> prompt, const GenerateOptions& o,
                                         const StreamFn& stream) {
  runtime::Context& cx = *context;
  if (prompt.empty()) return make_error("empty prompt");
  if (prompt.size() > size_t(cx.ctx()))
    return make_error("context overflow: the prompt has ", prompt.size(),
                      " tokens and the context holds ", cx.ctx(), " (use a larger --ctx)");
  if (o.max_tokens < 0) return make_error("max_tokens must not be negative");
  Generation gen;
  gen.prompt_tokens = int(prompt.size());

  // Reuse the cached prefix; at least the last prompt token is evaluated, for its logits.
  size_t keep = 0;
  const std::vector<int32_t>& cached = cx.tokens();
  while (keep < cached.size() && keep + 1 < prompt.size() && cached[keep] == prompt[keep]) ++keep;
  cx.truncate(int(keep));
  gen.prefill_tokens = int(prompt.size() - keep);
  // Graphs are built (compiled) on first use; that is compile time, not evaluation.
  KILN_RETURN_IF_ERROR(cx.prepare(gen.prefill_tokens));
  auto t0 = Clock::now();
  KILN_ASSIGN_OR_RETURN(std::span<const float> logits, cx.eval(prompt.subspan(keep)));
  gen.prefill_seconds = seconds_since(t0);
  runtime::trace_rss("prompt evaluated");

  runtime::Sampler sampler(o.sampling, info.vocab_size);
  gguf::StreamDecoder decoder(*tokenizer);
  runtime::StopStrings stops(o.stop);
  Token ev;
  double decode = 0;
  for (int i = 0; i < o.max_tokens; ++i) {
    const int32_t id = sampler.sample(logits, cx.tokens());
    gen.tokens.push_back(id);
    const bool eog = !o.ignore_eog && tokenizer->is_eog(id);
    bool done = eog;
    if (eog) gen.finish = FinishReason::kEndOfGeneration;
    // Text: the decoder keeps UTF-8 whole, the stop matcher holds back what could start a stop.
    std::string piece = eog ? std::string() : decoder.push(id);
    bool stopped = stops.push(piece, &ev.text);
    if (stopped) {
      done = true;
      gen.finish = FinishReason::kStop;
    } else if (!done && i + 1 == o.max_tokens) {
      done = true;
      gen.finish = FinishReason::kLength;
    } else if (!done && cx.n_past() >= cx.ctx()) {
      done = true;
      gen.finish = FinishReason::kContextFull;
    }
    if (done && !stopped) ev.text += stops.flush(decoder.flush());
    ev.id = id;
    ev.index = i;
    if (o.sampling.top_logprobs > 0) {
      ev.logprob = sampler.logprob();
      ev.top.assign(sampler.top().begin(), sampler.top().end());
    }
    gen.text += ev.text;
    if (stream && !stream(ev)) {
      gen.finish = FinishReason::kCancelled;
      break;
    }
    if (done) break;
    // The decode graph is built (compiled) once the first token is out, so its compile time
    // delays neither the first token nor the timed decode steps.
    if (i == 0) KILN_RETURN_IF_ERROR(cx.prepare(1));
    auto t1 = Clock::now();
    auto next = cx.eval(std::span<const int32_t>(&id, 1));
    decode += seconds_since(t1);
    gen.decode_tokens++;
    if (!next.ok()) return next.error();
    logits = *next;
  }
  if (o.max_tokens == 0) gen.finish = FinishReason::kLength;
  gen.decode_seconds = decode;
  runtime::trace_rss("generated");
  return gen;
}

Result<Perplexity> Model::perplexity(std::string_view text) {
  auto t0 = Clock::now();
  Impl& m = *impl_;
  KILN_ASSIGN_OR_RETURN(auto toks, tokenize(text, /*add_special=*/true, /*parse_special=*/false));
  const int n_ctx = ctx();
  const int n_chunk = int(toks.size()) / n_ctx;
  if (n_chunk < 1)
    return make_error("perplexity: the text has ", toks.size(),
                      " tokens, fewer than one window of ", n_ctx, " (use a smaller --ctx)");
  lower::GraphSpec spec;
  spec.tokens = n_ctx;
  spec.all_logits = true;
  KILN_ASSIGN_OR_RETURN(runtime::GraphRunner * g, m.backend->graph(spec));
  m.context->reset();
  const int vocab = vocab_size();
  std::vector<int32_t> window(static_cast<size_t>(n_ctx)), pos(static_cast<size_t>(n_ctx));
  for (int i = 0; i < n_ctx; ++i) pos[size_t(i)] = i;
  const int32_t seq = 0;
  const int32_t bos = m.tokenizer->bos();
  double nll = 0;
  int scored = 0;
  // llama.cpp's perplexity: scores tokens first+1 .. n_ctx-1 of each window, first = n_ctx / 2.
  const int first = n_ctx / 2;
  for (int c = 0; c < n_chunk; ++c) {
    const int32_t* w = toks.data() + size_t(c) * size_t(n_ctx);
    std::copy(w, w + n_ctx, window.begin());
    if (m.tokenizer->add_bos() && bos >= 0) window[0] = bos;
    KILN_RETURN_IF_ERROR(g->set_input("tokens", window));
    KILN_RETURN_IF_ERROR(g->set_input("pos", pos));
    KILN_RETURN_IF_ERROR(g->set_input("seq", std::span<const int32_t>(&seq, 1)));
    KILN_RETURN_IF_ERROR(g->run());
    KILN_ASSIGN_OR_RETURN(std::span<const float> logits, g->output("logits"));
    if (logits.size() != size_t(n_ctx) * size_t(vocab))
      return make_error("perplexity: logits of ", logits.size(), " values, expected ", n_ctx, " x ",
                        vocab);
    for (int j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + size_t(j) * size_t(vocab);
      double mx = row[0];
      for (int v = 1; v < vocab; ++v) mx = std::max(mx, double(row[v]));
      double sum = 0;
      for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
      nll += mx + std::log(sum) - double(row[w[j + 1]]);
      ++scored;
    }
  }
  m.context->reset();
  Perplexity p;
  p.nll = nll / scored;
  p.ppl = std::exp(p.nll);
  p.windows = n_chunk;
  p.scored = scored;
  p.tokens = int(toks.size());
  p.seconds = seconds_since(t0);
  return p;
}

}  // namespace kiln
