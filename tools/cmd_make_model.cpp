// `kiln make-model --preset NAME --quant TYPE --seed N -o out.gguf`: a model with random weights
// and the real shapes, keys and tensor names of a preset (frontends/gguf/make_model.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/make_model.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct MakeModelArgs {
  std::string preset;
  std::string quant = "f32";
  uint64_t seed = 0;
  std::string out;
  std::string tokenizer_from;
  unsigned threads = 0;
  bool list = false;
};

std::string type_list() {
  std::string s;
  for (DType t : gguf::make_model_types())
    s += (s.empty() ? "" : ", ") + std::string(dtype_name(t));
  return s;
}

std::string preset_list() {
  std::string s;
  for (const gguf::ModelPreset& p : gguf::model_presets()) s += "\n  " + std::string(p.name);
  return s;
}

void print_presets() {
  std::printf("%-14s %-7s %6s %5s %6s %8s %5s %7s %7s  %s\n", "preset", "arch", "layers", "embd",
              "heads", "kv_heads", "hdim", "ffn", "vocab", "notes");
  for (const gguf::ModelPreset& p : gguf::model_presets()) {
    std::string vocab = p.n_vocab ? std::to_string(p.n_vocab) : "tok";
    std::printf("%-14s %-7s %6u %5u %6u %8u %5u %7u %7s  %s\n", std::string(p.name).c_str(),
                std::string(p.arch).c_str(), p.n_layer, p.n_embd, p.n_head, p.n_head_kv, p.head_dim,
                p.n_ff, vocab.c_str(), std::string(p.summary).c_str());
  }
  std::printf("\nvocab \"tok\": the size of the generated (or --tokenizer-from) vocab\n");
  std::printf("types: %s\n", type_list().c_str());
}

int run_make_model(const MakeModelArgs& a) {
  if (a.list) {
    print_presets();
    return 0;
  }
  if (a.preset.empty() || a.out.empty())
    return fail("make-model", "--preset and -o are required (see --list)");
  const gguf::ModelPreset* preset = gguf::find_preset(a.preset);
  if (!preset)
    return fail("make-model", "unknown preset '" + a.preset + "'; one of:" + preset_list());
  auto type = dtype_from_name(a.quant);
  auto types = gguf::make_model_types();
  if (!type || std::find(types.begin(), types.end(), *type) == types.end())
    return fail("make-model",
                "unknown or unsupported --quant '" + a.quant + "'; one of: " + type_list());

  gguf::MakeModelOptions opts;
  opts.quant = *type;
  opts.seed = a.seed;
  opts.threads = a.threads;
  std::unique_ptr<gguf::GgufFile> tok;
  if (!a.tokenizer_from.empty()) {
    auto f = gguf::GgufFile::open(a.tokenizer_from);
    if (!f.ok()) return fail("make-model", f.message());
    tok = std::move(*f);
    opts.tokenizer_from = &tok->metadata();
  }
  auto start = std::chrono::steady_clock::now();
  auto writer = gguf::make_model(*preset, opts);
  if (!writer.ok()) return fail("make-model", writer.message());
  Status st = writer->write(a.out);
  if (!st.ok()) return fail("make-model", st.message());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto check = gguf::GgufFile::open(a.out);
  if (!check.ok()) return fail("make-model", "wrote an unreadable file: " + check.message());
  std::printf("wrote %s: %s (%s), %s weights, seed %llu, %zu tensors, %.1f MiB in %.1f s\n",
              a.out.c_str(), a.preset.c_str(), std::string(preset->arch).c_str(), a.quant.c_str(),
              (unsigned long long)a.seed, (*check)->tensors().size(),
              double((*check)->file_size()) / (1 << 20), secs);
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    make_model,
    Command{"make-model", "Write a GGUF model with random weights and a preset's real shapes", 90,
            [](CLI::App& app) -> std::function<int()> {
              auto a = std::make_shared<MakeModelArgs>();
              app.add_option("--preset", a->preset, "Model shape (see --list):" + preset_list());
              app.add_option("--quant", a->quant,
                             "Weight type (matrices whose rows do not fit its blocks fall back as "
                             "llama.cpp's quantizer does; norms stay f32): " +
                                 type_list())
                  ->capture_default_str();
              app.add_option("--seed", a->seed, "Random seed (same seed, same bytes)")
                  ->capture_default_str();
              app.add_option("-o,--output", a->out, "Output .gguf file");
              app.add_option("--tokenizer-from", a->tokenizer_from,
                             "Copy every tokenizer.* key from this GGUF (the vocab size follows "
                             "it); default: a small generated vocab");
              app.add_option("--threads", a->threads, "Threads (0: all)")->capture_default_str();
              app.add_flag("--list", a->list, "List the presets and types, and exit");
              return [a] { return run_make_model(*a); };
            }});

}  // namespace kiln::tools
