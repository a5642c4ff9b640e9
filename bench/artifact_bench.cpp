// Artifact costs: the checksums (CRC32C, SHA-256) per byte, parsing a whole artifact with every
// checksum, and load to first token of a tiny artifact against the JIT path. Real-model figures
// (compile time, load to first token, decode speed) come from `kiln compile` and `kiln run`
// (docs/artifact.md).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "codegen/cpu/cpu_codegen.h"
#include "frontends/gguf/make_model.h"
#include "frontends/gguf/model_presets.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_loader.h"
#include "runtime/artifact_writer.h"
#include "runtime/backend.h"
#include "runtime/kiln.h"

namespace {

using namespace kiln;

std::vector<uint8_t> random_bytes(size_t n) {
  std::mt19937_64 rng(1);
  std::vector<uint8_t> b(n);
  for (uint8_t& x : b) x = uint8_t(rng());
  return b;
}

void BM_Crc32c(benchmark::State& st) {
  auto b = random_bytes(size_t(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(artifact::crc32c(b));
  st.SetBytesProcessed(int64_t(st.iterations()) * st.range(0));
}
BENCHMARK(BM_Crc32c)->Arg(1 << 20)->Arg(16 << 20);

void BM_Sha256(benchmark::State& st) {
  auto b = random_bytes(size_t(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(artifact::sha256(b));
  st.SetBytesProcessed(int64_t(st.iterations()) * st.range(0));
}
BENCHMARK(BM_Sha256)->Arg(1 << 20);

// A tiny-llama GGUF and its artifact, made once.
struct Tiny {
  std::string gguf, kiln;
  Tiny() {
    const std::string dir = std::filesystem::temp_directory_path() / "kiln-artifact-bench";
    std::filesystem::create_directories(dir);
    gguf = dir + "/tiny.gguf";
    kiln = dir + "/tiny.kiln";
    gguf::MakeModelOptions mo;
    mo.quant = DType::Q4_0;
    auto w = gguf::make_model(*gguf::find_preset("tiny-llama"), mo);
    if (!w.ok() || !w->write(gguf).ok()) std::abort();
    artifact::CompileOptions co;
    co.ctx = 64;
    co.prefill_buckets = {8};
    if (!artifact::compile_artifact(gguf, kiln, co).ok()) std::abort();
  }
};
const Tiny& tiny() {
  static Tiny t;
  return t;
}

void BM_OpenArtifact(benchmark::State& st) {
  (void)tiny();  // made outside the timing
  for (auto _ : st) {
    auto a = artifact::load_artifact(tiny().kiln);
    if (!a.ok()) st.SkipWithError(a.message().c_str());
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_OpenArtifact)->Unit(benchmark::kMillisecond);

// Load and the first token of an 8-token prompt: artifact (0) vs JIT (1).
void BM_LoadToFirstToken(benchmark::State& st) {
  const bool jit = st.range(0) == 1;
  const std::vector<int32_t> prompt = {1, 5, 9, 13, 17, 21, 25, 29};
  (void)tiny();
  for (auto _ : st) {
    LoadOptions lo;
    lo.ctx = 64;
    lo.prefill_buckets = {8};
    auto m = Model::load(jit ? tiny().gguf : tiny().kiln, lo);
    if (!m.ok()) {
      st.SkipWithError(m.message().c_str());
      break;
    }
    auto l = (*m)->eval(prompt);
    benchmark::DoNotOptimize(l);
  }
  st.SetLabel(jit ? "jit" : "artifact");
}
BENCHMARK(BM_LoadToFirstToken)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

// CPU time of the whole process (all threads), in milliseconds.
double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
          double(u.ru_utime.tv_usec + u.ru_stime.tv_usec)) /
         1e3;
}

// The stages of loading a real artifact ($KILN_ARTIFACT; skipped when unset), as counters in
// milliseconds: mapping and checksums, the microkernel table (generated on first use in the
// process, so measured once), and for the decode graph: IR + plan parsing, linking, binding
// (which for an artifact with a constants section evaluates and repacks nothing: counted), and
// the first decode step.
void BM_RealArtifactStages(benchmark::State& st) {
  const char* path = std::getenv("KILN_ARTIFACT");
  if (!path) {
    st.SkipWithError("set KILN_ARTIFACT=MODEL.kiln");
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  for (auto _ : st) {
    auto t0 = Clock::now();
    auto mk = cpu::microkernel_table();
    st.counters["microkernels_ms"] = ms(t0);
    benchmark::DoNotOptimize(mk);
    const auto t_start = Clock::now();
    const double cpu_start = process_cpu_ms();
    t0 = Clock::now();
    auto a = artifact::load_artifact(path);
    if (!a.ok()) {
      st.SkipWithError(a.message().c_str());
      return;
    }
    st.counters["open_check_ms"] = ms(t0);
    runtime::BackendOptions bo;
    bo.ctx = (*a)->artifact->ctx();
    bo.kv_type = (*a)->artifact->kv_type();
    auto b = runtime::make_cpu_backend(
        *(*a)->weights, bo, std::make_unique<artifact::ArtifactGraphSource>(*(*a)->artifact));
    if (!b.ok()) {
      st.SkipWithError(b.message().c_str());
      return;
    }
    lower::GraphSpec spec;
    t0 = Clock::now();
    auto g = (*b)->graph(spec);
    if (!g.ok()) {
      st.SkipWithError(g.message().c_str());
      return;
    }
    st.counters["graph_total_ms"] = ms(t0);
    runtime::BackendStats s = (*b)->stats();
    st.counters["parse_ms"] = s.lower_seconds * 1e3;
    st.counters["link_ms"] = s.compile_seconds * 1e3;
    st.counters["bind_ms"] = s.bind_seconds * 1e3;
    std::vector<int32_t> tok = {1}, pos = {0}, seq = {0};
    (void)(*g)->set_input("tokens", tok);
    (void)(*g)->set_input("pos", pos);
    if ((*g)->has_input("seq")) (void)(*g)->set_input("seq", seq);
    if ((*g)->has_input("rows")) (void)(*g)->set_input("rows", std::vector<int32_t>{0});
    t0 = Clock::now();
    Status r = (*g)->run();
    st.counters["first_decode_ms"] = ms(t0);
    // Everything after the process's one-time microkernel generation: open to first logits.
    st.counters["load_to_first_token_ms"] = ms(t_start);
    st.counters["load_to_first_token_cpu_ms"] = process_cpu_ms() - cpu_start;
    st.counters["weights_packed"] = double(s.weights_packed);
    st.counters["constant_evaluations"] = double(s.constant_evaluations);
    st.counters["constants_mapped"] = double(s.constants_mapped);
    st.counters["heap_constant_mb"] = double(s.constant_bytes) / 1e6;
    if (!r.ok()) st.SkipWithError(r.message().c_str());
  }
}
BENCHMARK(BM_RealArtifactStages)->Iterations(1)->Unit(benchmark::kMillisecond);

// $KILN_ARTIFACT, else $KILN_MODEL (a GGUF, for the JIT path to compare); null, with the
// benchmark skipped, when neither is set.
const char* real_model(benchmark::State& st) {
  const char* path = std::getenv("KILN_ARTIFACT");
  if (!path) path = std::getenv("KILN_MODEL");
  if (!path) st.SkipWithError("set KILN_ARTIFACT=MODEL.kiln (or KILN_MODEL=MODEL.gguf)");
  return path;
}

// Model::load of a real artifact ($KILN_ARTIFACT, or $KILN_MODEL for the JIT path to compare)
// to the logits of the first new token, through the public API: the file checked, tokenizer
// built, decode graph linked and bound, and a prompt of range(0) tokens (a raw-prompt
// tokenization of an English sentence, cut to length) evaluated. Each iteration loads afresh.
void BM_RealLoadToFirstToken(benchmark::State& st) {
  const char* path = real_model(st);
  if (!path) return;
  (void)cpu::microkernel_table();  // once per process, as in any run
  Result<std::unique_ptr<Model>> m = make_error("not loaded");
  for (auto _ : st) {
    st.PauseTiming();  // unloading the previous model is not part of loading this one
    m = make_error("not loaded");
    st.ResumeTiming();
    m = Model::load(path, LoadOptions{});
    if (!m.ok()) {
      st.SkipWithError(m.message().c_str());
      return;
    }
    auto tokens = (*m)->tokenize(
        "The capital of France is a city that has been home to kings, artists and writers for "
        "centuries",
        true);
    if (!tokens.ok() || tokens->size() < size_t(st.range(0))) {
      st.SkipWithError("the prompt is too short");
      return;
    }
    tokens->resize(size_t(st.range(0)));
    auto l = (*m)->eval(*tokens);
    if (!l.ok()) {
      st.SkipWithError(l.message().c_str());
      return;
    }
    benchmark::DoNotOptimize(l->data());
  }
}

// Decode throughput of generate_batch with range(0) sequences on a real model ($KILN_ARTIFACT
// compiled with --batch 1,2,4, or $KILN_MODEL through the JIT): 32 new tokens each, greedy. The
// counter decode_tok_s counts every sequence's tokens per second of batched decode steps.
void BM_RealBatchDecode(benchmark::State& st) {
  const char* path = real_model(st);
  if (!path) return;
  const int n = int(st.range(0));
  LoadOptions lo;
  lo.batch = 4;
  static std::unique_ptr<Model> model;  // loaded once for every batch size
  static std::string loaded;
  if (loaded != path) {
    auto m = Model::load(path, lo);
    if (!m.ok()) {
      st.SkipWithError(m.message().c_str());
      return;
    }
    model = std::move(*m);
    loaded = path;
  }
  const char* texts[] = {"The capital of France is", "Once upon a time, there was a",
                         "The best way to learn a language is", "Water boils at"};
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n; ++i) {
    auto t = model->tokenize(texts[i % 4], true);
    if (!t.ok()) {
      st.SkipWithError(t.message().c_str());
      return;
    }
    prompts.push_back(*t);
  }
  GenerateOptions o;
  o.max_tokens = 32;
  o.sampling = SamplingOptions::greedy();
  o.ignore_eog = true;
  double tokens = 0, seconds = 0;
  for (auto _ : st) {
    auto g = model->generate_batch(prompts, o);
    if (!g.ok()) {
      st.SkipWithError(g.message().c_str());
      return;
    }
    for (const Generation& x : *g) tokens += x.decode_tokens;
    seconds += (*g)[0].decode_seconds;
  }
  st.counters["decode_tok_s"] = tokens / seconds;
}
BENCHMARK(BM_RealBatchDecode)->Arg(1)->Arg(2)->Arg(4)->Iterations(3)->Unit(benchmark::kMillisecond);

BENCHMARK(BM_RealLoadToFirstToken)
    ->Arg(1)
    ->Arg(8)
    ->Iterations(5)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
