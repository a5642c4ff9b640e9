// kiln's C++ API: load a model, generate text, chat with the model's own template, stream.
//
//   #include "runtime/kiln.h"
//
//   auto model = kiln::Model::load("SmolLM2-135M-Instruct.Q4_1.gguf");
//   if (!model.ok()) { std::fprintf(stderr, "%s\n", model.message().c_str()); return 1; }
//   auto out = (*model)->generate("The capital of France is", {.max_tokens = 32},
//                                 [](const kiln::Token& t) { std::fputs(t.text.c_str(), stdout);
//                                                            return true; });  // false: stop
//
//   std::vector<kiln::Message> chat = {{"user", "Hi! Who are you?"}};
//   auto reply = (*model)->chat(chat, {});          // rendered with the model's chat template
//   chat.push_back({"assistant", reply->text});     // the next turn prefills only what is new
//
// Errors are values (kiln::Result, kiln::Status from ir/status.h): a bad file, a prompt longer
// than the context or a bad option gives a message, never an exception or a crash.
//
// A Model keeps one KV cache (one sequence; generate_batch uses more slots of it). Every call
// reuses the part of the cache that equals the start of its prompt, so a chat prefills only the new
// turn. A Model is not thread-safe; use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln {

enum class BackendKind {
  kAuto,         // the CPU executor when kiln has LLVM, else the interpreter
  kCpu,          // compiled kernels (LLVM + xbyak microkernels) on a thread pool
  kInterpreter,  // the reference interpreter: slow, obviously correct
  // [cuda] generated CUDA kernels on the GPU (runtime/cuda_backend.h); fails without a device.
  kCuda,
  kAutoCuda,  // [cuda] CUDA when a device is there, else one line on stderr and kAuto
};

// "auto", "cpu", "interp", "cuda" (command-line spellings).
Result<BackendKind> parse_backend(std::string_view name);
// [cuda] `--device cpu|cuda|auto` over the --backend choice: cpu keeps it, cuda is kCuda, auto
// is kAutoCuda (CUDA when a device is there, else kAuto after one line on stderr).
Result<BackendKind> device_backend(std::string_view device, BackendKind backend);

struct LoadOptions {
  BackendKind backend = BackendKind::kAuto;
  int threads = 0;              // 0: one per core
  int ctx = 0;                  // KV-cache length in tokens (0: min(model's context, 4096))
  std::string kv_type = "f16";  // KV-cache element type: "f16" or "q8_0"
  // Prefill graphs are compiled for these lengths (each on first use); longer prompts are split,
  // shorter ones padded (docs/runtime.md). Lengths above ctx are dropped. Padding costs at most
  // 2x here; each length's graph compiles once.
  std::vector<int> prefill_buckets = {8, 16, 32, 64, 128, 256};
  bool microkernels = true;  // cpu: xbyak kernels for quantized products (false: LLVM only)
  // Sequences generate_batch may decode together: the KV cache holds this many (an artifact's
  // own batch sizes decide instead).
  int batch = 1;
  bool cuda_graph = true;  // [cuda] replay the decode step as a CUDA graph (--no-cuda-graph)
};

// llama.cpp's sampler chain, in its order: penalties, top-k, top-p, min-p, temperature, draw.
struct SamplingOptions {
  float temperature = 0.8f;  // <= 0: greedy (the most likely token after penalties)
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty =
      1.0f;                // 1: off; divides positive logits of recent tokens, multiplies negative
  int repeat_last_n = 64;  // window of recent tokens (prompt included); -1: the whole context
  float presence_penalty = 0.0f;   // subtracted once from each recent token's logit
  float frequency_penalty = 0.0f;  // subtracted per occurrence
  int64_t seed = -1;               // -1: a random seed; otherwise deterministic
  int top_logprobs = 0;            // > 0: report the chosen token's and the top-n log-probabilities

  static SamplingOptions greedy() {
    SamplingOptions s;
    s.temperature = 0;
    return s;
  }
};

struct GenerateOptions {
  int max_tokens = 256;  // new tokens at most (also bounded by the context)
  SamplingOptions sampling;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any of these
  bool ignore_eog = false;        // keep going past end-of-generation tokens
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;  // natural log of the model's probability (before penalties and temperature)
};

// One generated token, as the stream callback sees it.
struct Token {
  int32_t id = 0;
  // Text this token releases: always whole UTF-8 characters, so it may be empty (a character
  // split over tokens, or text held back while it could still be the start of a stop string).
  std::string text;
  int index = 0;                  // 0 for the first generated token
  float logprob = 0;              // when top_logprobs > 0
  std::vector<TokenLogprob> top;  // the top_logprobs most likely tokens, best first
};

// Called once per generated token; return false to stop (finish reason kCancelled).
using StreamFn = std::function<bool(const Token&)>;

enum class FinishReason {
  kLength,           // max_tokens reached
  kEndOfGeneration,  // the model produced an end-of-generation token
  kStop,             // a stop string
  kCancelled,        // the callback returned false
  kContextFull,      // the KV cache is full
};
const char* finish_reason_name(FinishReason r);

struct Generation {
  std::string text;             // the generated text (without a stop string or EOG token)
  std::vector<int32_t> tokens;  // the generated tokens (an EOG token included when produced)
  FinishReason finish = FinishReason::kLength;
  int prompt_tokens = 0;       // tokens of the prompt
  int prefill_tokens = 0;      // of those, the ones evaluated (the rest was in the cache)
  double prefill_seconds = 0;  // evaluating the prompt (ends with the first token's logits)
  int decode_tokens = 0;       // tokens evaluated one at a time after the prompt
  double decode_seconds = 0;   // evaluating them
};

struct Message {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct Perplexity {
  double ppl = 0;
  double nll = 0;   // mean negative log-likelihood (nats)
  int windows = 0;  // windows of ctx tokens
  int scored = 0;   // tokens scored
  int tokens = 0;   // tokens of the text
  double seconds = 0;
};

// What a loaded model is and what loading it cost.
struct ModelInfo {
  std::string path, architecture, name;
  std::string backend;  // "cpu" or "interp"
  int threads = 1;
  int ctx = 0;
  int vocab_size = 0;
  uint64_t parameters = 0;    // elements of every tensor
  uint64_t weight_bytes = 0;  // bytes of every tensor
  uint64_t file_bytes = 0;
  std::string kv_type;
  bool add_bos = false;               // the tokenizer adds BOS to a raw prompt
  int32_t bos = -1;                   // BOS token id (-1: none)
  std::string chat_template_warning;  // set when the model has no template (ChatML is used)
  double load_seconds = 0;            // file, tokenizer, template, backend
};

class Model {
 public:
  // Loads a GGUF model (an artifact made by `kiln compile` with issue #6).
  static Result<std::unique_ptr<Model>> load(const std::string& path,
                                             const LoadOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Continues a raw prompt, tokenized as llama.cpp tokenizes one: BOS when the model's metadata
  // asks for it, special-token text not parsed, no template.
  Result<Generation> generate(std::string_view prompt, const GenerateOptions& options = {},
                              const StreamFn& stream = {});
  Result<Generation> generate(std::span<const int32_t> prompt, const GenerateOptions& options = {},
                              const StreamFn& stream = {});
  // Continues several raw prompts together: each is prefilled into a KV-cache slot of its own,
  // then one decode step advances all of them (one pass over the weights for every sequence),
  // each sampled and stopped as generate() would. At most LoadOptions::batch prompts (an
  // artifact: its largest --batch). Tokens only, no streaming; Generation::decode_seconds is the
  // time of the batched steps the sequence took part in. Uses, and then empties, the KV cache.
  Result<std::vector<Generation>> generate_batch(std::span<const std::vector<int32_t>> prompts,
                                                 const GenerateOptions& options = {});
  // Answers the conversation (its last message is usually the user's) in the model's chat
  // template. The KV cache keeps the conversation, so the next call prefills only the new turn.
  Result<Generation> chat(const std::vector<Message>& messages, const GenerateOptions& options = {},
                          const StreamFn& stream = {});
  // The prompt text chat() would feed the model.
  Result<std::string> apply_chat_template(const std::vector<Message>& messages,
                                          bool add_generation_prompt = true) const;

  Result<std::vector<int32_t>> tokenize(std::string_view text, bool add_special = true,
                                        bool parse_special = false) const;
  std::string detokenize(std::span<const int32_t> ids) const;
  bool is_eog(int32_t id) const;

  // Low level: evaluates `tokens` after what the cache holds and returns the logits of the last
  // one (vocab_size floats, valid until the next call).
  Result<std::span<const float>> eval(std::span<const int32_t> tokens);
  // Empties the KV cache.
  void reset();
  int n_past() const;  // tokens in the KV cache

  // Perplexity as llama.cpp's perplexity tool computes it: non-overlapping windows of ctx()
  // tokens, the first of each replaced by BOS when the model adds one, the second half of each
  // window scored. Uses (and then empties) the KV cache.
  Result<Perplexity> perplexity(std::string_view text);

  const ModelInfo& info() const;
  int ctx() const;
  int vocab_size() const;
  // Seconds spent building graphs (lowering, passes, code generation) so far, and their count.
  double compile_seconds() const;
  int graphs_built() const;
  // compile_seconds() by stage: "lower 0.01 s, passes 0.02 s, codegen 1.20 s, bind 0.30 s".
  std::string compile_breakdown() const;
  // Builds the decode graph and the prefill graphs now instead of on first use.
  Status warm_up();

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
