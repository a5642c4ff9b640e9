// Model::generate_batch: several sequences decoded together (runtime/kiln.h).
//
// Each prompt is prefilled on its own into a KV-cache slot of its own (the prefill graphs write
// the slot their `seq` input names), then a decode graph of batch B advances every live
// sequence by one token per run: B rows of tokens, positions and slots in, B rows of logits out.
// A decode step reads the weights once whatever B is, so the batch's tokens per second grow
// almost with B until the products stop being memory bound. Rows without a live sequence (a
// batch graph larger than the prompts, or a sequence that has stopped) run at position -1, which
// kv_write skips; their logits are ignored.
#include <algorithm>
#include <chrono>
#include <optional>

#include "frontends/gguf/tokenizer.h"
#include "runtime/memory_trace.h"
#include "runtime/model_impl.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"

namespace kiln {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One sequence of the batch: its slot's context (prompt tokens), sampler and text.
struct Sequence {
  // `like`: the model's own context, whose buckets and short-prompt policy this one follows.
  Sequence(runtime::Backend& backend, const runtime::Context& like, int slot,
           const SamplingOptions& sampling, int vocab, const gguf::Tokenizer& tok,
           const std::vector<std::string>& stop)
      : context(backend, like.buckets(), like.ctx(), like.decode_up_to()),
        sampler(sampling, vocab),
        decoder(tok),
        stops(stop) {
    context.use_slot(slot);
  }
  runtime::Context context;
  runtime::Sampler sampler;
  gguf::StreamDecoder decoder;
  runtime::StopStrings stops;
  std::vector<int32_t> history;  // prompt and generated tokens, for the penalties
  std::vector<float> logits;     // the next token's
  Generation gen;
  bool live = true;
};

}  // namespace

Result<std::vector<Generation>> Model::generate_batch(std::span<const std::vector<int32_t>> prompts,
                                                      const GenerateOptions& o) {
  Impl& m = *impl_;
  const int n = int(prompts.size());
  if (n == 0) return std::vector<Generation>{};
  if (n > m.slots)
    return make_error("generate_batch: ", n, " prompts, but the model holds ", m.slots,
                      " sequences (load it with a larger batch, or compile the artifact with "
                      "--batch ",
                      n, ")");
  if (o.max_tokens < 0) return make_error("max_tokens must not be negative");
  // The decode graph: an artifact's smallest batch that fits, else exactly n (built now).
  int batch = n;
  if (!m.batches.empty()) {
    batch = 0;
    for (int b : m.batches)
      if (b >= n && (batch == 0 || b < batch)) batch = b;
    if (batch == 0)
      return make_error("generate_batch: the artifact has no decode graph for ", n,
                        " sequences (it has batch sizes up to ", m.slots, ")");
  }
  for (const auto& p : prompts) {
    if (p.empty()) return make_error("generate_batch: an empty prompt");
    if (p.size() >= size_t(m.context->ctx()))
      return make_error("context overflow: a prompt has ", p.size(),
                        " tokens and the context holds ", m.context->ctx());
  }
  lower::GraphSpec spec;
  spec.batch = batch;
  KILN_ASSIGN_OR_RETURN(runtime::GraphRunner * step, m.backend->graph(spec));

  m.context->reset();  // every slot starts empty, the single-sequence context's too
  const int vocab = m.info.vocab_size;
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int i = 0; i < n; ++i) {
    SamplingOptions so = o.sampling;
    if (so.seed >= 0) so.seed += i;  // deterministic, but not the same draw for every sequence
    seqs.push_back(
        std::make_unique<Sequence>(*m.backend, *m.context, i, so, vocab, *m.tokenizer, o.stop));
    Sequence& s = *seqs.back();
    s.history = prompts[size_t(i)];
    s.gen.prompt_tokens = s.gen.prefill_tokens = int(s.history.size());
    auto t0 = Clock::now();
    KILN_ASSIGN_OR_RETURN(std::span<const float> l, s.context.eval(s.history));
    s.gen.prefill_seconds = seconds_since(t0);
    s.logits.assign(l.begin(), l.end());
  }
  if (o.max_tokens == 0) {
    m.context->reset();
    std::vector<Generation> out;
    for (auto& s : seqs) out.push_back(std::move(s->gen));
    return out;
  }

  const size_t rows = size_t(batch);
  std::vector<int32_t> tokens(rows, 0), pos(rows, -1), slot(rows, 0);
  for (size_t r = 0; r < rows; ++r) slot[r] = int32_t(r);  // batch <= slots
  for (int i = 0;; ++i) {
    // Sample each live sequence, then decide whether it goes on.
    int live = 0;
    for (int r = 0; r < n; ++r) {
      Sequence& s = *seqs[size_t(r)];
      pos[size_t(r)] = -1;
      if (!s.live) continue;
      const int32_t id = s.sampler.sample(s.logits, s.history);
      s.history.push_back(id);
      s.gen.tokens.push_back(id);
      const bool eog = !o.ignore_eog && m.tokenizer->is_eog(id);
      std::string text;
      const bool stopped = s.stops.push(eog ? std::string() : s.decoder.push(id), &text);
      // The reason it ends here, if it does (the order generate() checks them in).
      std::optional<FinishReason> end;
      if (eog)
        end = FinishReason::kEndOfGeneration;
      else if (stopped)
        end = FinishReason::kStop;
      else if (i + 1 == o.max_tokens)
        end = FinishReason::kLength;
      else if (int(s.history.size()) > m.context->ctx())
        end = FinishReason::kContextFull;
      const bool done = end.has_value();
      if (done) s.gen.finish = *end;
      if (done && !stopped) text += s.stops.flush(s.decoder.flush());
      s.gen.text += text;
      if (done) {
        s.live = false;
        continue;
      }
      tokens[size_t(r)] = id;
      pos[size_t(r)] = int32_t(s.history.size()) - 1;
      ++live;
    }
    if (live == 0) break;
    auto t0 = Clock::now();
    KILN_RETURN_IF_ERROR(step->set_input("tokens", tokens));
    KILN_RETURN_IF_ERROR(step->set_input("pos", pos));
    KILN_RETURN_IF_ERROR(step->set_input("seq", slot));
    KILN_RETURN_IF_ERROR(step->run());
    KILN_ASSIGN_OR_RETURN(std::span<const float> logits, step->output("logits"));
    if (logits.size() != size_t(batch) * size_t(vocab))
      return make_error("generate_batch: logits of ", logits.size(), " values, expected ", batch,
                        " x ", vocab);
    const double dt = seconds_since(t0);
    for (int r = 0; r < n; ++r) {
      Sequence& s = *seqs[size_t(r)];
      if (pos[size_t(r)] < 0) continue;
      s.logits.assign(logits.begin() + ptrdiff_t(r) * vocab,
                      logits.begin() + ptrdiff_t(r + 1) * vocab);
      s.gen.decode_tokens++;
      s.gen.decode_seconds += dt;
    }
  }
  m.context->reset();
  runtime::trace_rss("batch generated");
  std::vector<Generation> out;
  for (auto& s : seqs) out.push_back(std::move(s->gen));
  return out;
}

}  // namespace kiln
