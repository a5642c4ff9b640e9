// Tokenizer encode/decode throughput on the real models, in bytes of English prose per second
// (one thread). The prose is the license texts every Debian system has in
// /usr/share/common-licenses (about 250 KB: real English with its long tail of words); without
// them a built-in paragraph is used. Models come from $KILN_MODELS or ~/.cache/kiln/models.
//
// "Cold" starts each pass with a fresh tokenizer (empty word cache: one document read once);
// "Warm" reuses one tokenizer, as a server does. bytes_per_second is per CPU second of the one
// encoding thread.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"

namespace {

using kiln::gguf::GgufFile;
using kiln::gguf::Tokenizer;

std::string model_path(const char* file) {
  const char* dir = std::getenv("KILN_MODELS");
  std::string d = dir && *dir ? dir
                              : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") +
                                    "/.cache/kiln/models";
  std::string p = d + "/" + file;
  return std::filesystem::exists(p) ? p : "";
}

const std::string& prose() {
  static const std::string text = [] {
    std::string s;
    const char* files[] = {"GPL-3",    "GPL-2",   "LGPL-2.1", "LGPL-2", "GFDL-1.3",
                           "GFDL-1.2", "MPL-1.1", "MPL-2.0",  "GPL-1",  "Apache-2.0",
                           "LGPL-3",   "CC0-1.0", "Artistic", "BSD"};
    for (const char* f : files) {
      std::ifstream in(std::string("/usr/share/common-licenses/") + f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      s += ss.str();
    }
    if (s.size() < 10000) {
      const std::string para =
          "It was the best of times, it was the worst of times, it was the age of wisdom, it "
          "was the age of foolishness, it was the epoch of belief, it was the epoch of "
          "incredulity, it was the season of Light, it was the season of Darkness, it was the "
          "spring of hope, it was the winter of despair.\n";
      while (s.size() < 250000) s += para;
    }
    return s;
  }();
  return text;
}

struct Model {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

Model* load(const char* file) {
  std::string p = model_path(file);
  if (p.empty()) return nullptr;
  auto f = GgufFile::open(p);
  if (!f.ok()) return nullptr;
  auto m = new Model;
  m->file = std::move(*f);
  auto t = Tokenizer::from_gguf(m->file->metadata());
  if (!t.ok()) return nullptr;
  m->tok = std::move(*t);
  return m;
}

Model* smollm() {
  static Model* m = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  return m;
}
Model* gemma() {
  static Model* m = load("gemma-3-270m-q4_k_m.gguf");
  return m;
}

void encode(benchmark::State& state, Model* (*which)(), bool cold) {
  Model* m = which();
  if (!m) {
    state.SkipWithError("model not found in $KILN_MODELS / ~/.cache/kiln/models");
    return;
  }
  const std::string& text = prose();
  size_t tokens = 0;
  for (auto _ : state) {
    std::unique_ptr<Tokenizer> fresh;
    if (cold) {
      state.PauseTiming();
      fresh = std::move(Tokenizer::from_gguf(m->file->metadata()).value());
      state.ResumeTiming();
    }
    auto ids = (cold ? fresh.get() : m->tok.get())->encode(text, true, false);
    tokens = ids->size();
    benchmark::DoNotOptimize(ids->data());
    if (cold) {
      state.PauseTiming();
      fresh.reset();
      state.ResumeTiming();
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["tokens"] = double(tokens);
  state.counters["bytes/token"] = double(text.size()) / double(tokens ? tokens : 1);
}

void decode(benchmark::State& state, Model* (*which)()) {
  Model* m = which();
  if (!m) {
    state.SkipWithError("model not found");
    return;
  }
  auto ids = m->tok->encode(prose(), false, false);
  for (auto _ : state) {
    std::string s = m->tok->decode(*ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(prose().size()));
}

void BM_EncodeSmolLM2Cold(benchmark::State& s) {
  encode(s, smollm, true);
}
void BM_EncodeSmolLM2Warm(benchmark::State& s) {
  encode(s, smollm, false);
}
void BM_EncodeGemma3Cold(benchmark::State& s) {
  encode(s, gemma, true);
}
void BM_EncodeGemma3Warm(benchmark::State& s) {
  encode(s, gemma, false);
}
void BM_DecodeSmolLM2(benchmark::State& s) {
  decode(s, smollm);
}
void BM_DecodeGemma3(benchmark::State& s) {
  decode(s, gemma);
}

BENCHMARK(BM_EncodeSmolLM2Cold)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeSmolLM2Warm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeGemma3Cold)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeGemma3Warm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeSmolLM2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeGemma3)->Unit(benchmark::kMillisecond);

}  // namespace
