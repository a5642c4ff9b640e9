// CPU code generation on whole models: every region of the fused decode and prefill graphs of the
// tiny presets (random weights from `kiln make-model`), and the first layers of the real models
// when they are in the cache, against the reference interpreter region by region.
#include <gtest/gtest.h>

#include <map>

#include <random>

#include "cpu_codegen_test_util.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "frontends/gguf/make_model.h"
#include "passes/pass_manager.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_model.h"

namespace kiln {
namespace {

// Under AddressSanitizer the interpreter runs several times slower; the real-model test then
// checks the decode step only (what issue #5 asks), so that it stays within CI's time.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

using test::TinyModel;

TinyModel make(const std::string& preset, DType quant) {
  return test::make_tiny_model(preset, quant, 3);
}

// Lowers, fuses and checks one graph of a model; returns the report.
test::CheckReport check_model(const gguf::GgufFile& file, int tokens, std::vector<int> threads,
                              bool microkernels, double quant_tol = 3e-2) {
  lower::GraphSpec spec;
  spec.tokens = tokens;
  spec.ctx = 64;
  auto g = lower::lower_gguf(file, spec);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return {};
  passes::PassContext ctx;
  Status st = passes::run_pipeline("default", **g, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  if (!st.ok()) return {};
  int64_t vocab = 0;
  for (const auto& n : (*g)->nodes())
    if (n->op == ir::Op::Weight && n->attrs.s("name") == "token_embd.weight")
      vocab = n->result()->type.dim(0);
  test::CheckOptions o;
  o.threads = std::move(threads);
  o.codegen.microkernels = microkernels;
  o.quant_tol = quant_tol;
  std::mt19937 rng(5);
  std::vector<int32_t> tok(static_cast<size_t>(tokens)), pos(static_cast<size_t>(tokens));
  for (int t = 0; t < tokens; ++t) {
    tok[size_t(t)] = int32_t(rng() % uint32_t(vocab));
    pos[size_t(t)] = 9 + t;
  }
  if (tokens > 2) pos.back() = -1;  // a padding token
  o.ints["tokens"] = tok;
  o.ints["pos"] = pos;
  o.ints["seq"] = {0};
  o.ints["rows"] = {tokens > 2 ? tokens - 2 : tokens - 1};
  runtime::GgufWeights weights(file);
  return test::check_graph(**g, weights, o);
}

struct Case {
  const char* preset;
  DType quant;
};

class TinyModels : public ::testing::TestWithParam<Case> {};

TEST_P(TinyModels, DecodeAndPrefillRegionsMatchTheInterpreter) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  TinyModel m = make(GetParam().preset, GetParam().quant);
  ASSERT_TRUE(m.file);
  for (bool mk : {false, true}) {
    SCOPED_TRACE(mk ? "microkernels" : "library");
    auto d = check_model(*m.file, 1, {1, 2, 3}, mk);
    EXPECT_GT(d.regions, 0);
    auto p = check_model(*m.file, 7, {2}, mk);
    EXPECT_GT(p.regions, 0);
    std::printf(
        "%s %s %s: decode %d regions (%zu distinct, %.2fs), prefill %d (%zu, %.2fs), worst %.2g in "
        "%s\n",
        GetParam().preset, std::string(dtype_name(GetParam().quant)).c_str(), mk ? "mk" : "lib",
        d.regions, d.distinct, d.compile_seconds, p.regions, p.distinct, p.compile_seconds,
        std::max(d.worst, p.worst), d.worst_region.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Presets, TinyModels,
    ::testing::Values(Case{"tiny-llama", DType::Q4_0}, Case{"tiny-llama", DType::F16},
                      Case{"tiny-qwen2", DType::Q8_0}, Case{"tiny-qwen3", DType::Q4_K},
                      Case{"tiny-gemma3", DType::Q6_K}, Case{"tiny-gemma3", DType::Q4_1}),
    [](const auto& info) {
      std::string s =
          std::string(info.param.preset) + "_" + std::string(dtype_name(info.param.quant));
      for (char& c : s)
        if (c == '-') c = '_';
      return s;
    });

// The real models: every region of the decode graph and of a short prefill against the
// interpreter, and the compile time of decode + a 128-token prefill graph (issue #5: <= 5 s).
class RealModels : public ::testing::TestWithParam<const char*> {};

TEST_P(RealModels, RegionsMatchTheInterpreterAndCompileFast) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  KILN_REQUIRE_MODEL(path, GetParam());
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  // The microkernels (whose 8-bit activations the interpreter rounds the same way, per
  // mul_mat's act), then the library path.
  auto q = check_model(**file, 1, {2}, true, 1e-3);
  EXPECT_GT(q.regions, 0);
  std::printf("%s decode, microkernels: %d regions, worst %.2g in %s\n", GetParam(), q.regions,
              q.worst, q.worst_region.c_str());
  // How many kernels already round exactly as llama.cpp (issue 5's parity work), and which kinds
  // do not, by the ops they compute.
  std::map<std::string, int> kinds;
  for (const std::string& ops : q.inexact) ++kinds[ops];
  std::printf("%s decode: %d of %d regions bit-identical to the interpreter; not yet:", GetParam(),
              q.exact_regions, q.regions);
  for (const auto& [k, n] : kinds) std::printf("\n  %dx %s", n, k.c_str());
  std::printf("\n");
  if (!kSanitized) {
    auto d = check_model(**file, 1, {2}, false);
    EXPECT_GT(d.regions, 0);
    auto p = check_model(**file, 5, {2}, false);
    EXPECT_GT(p.regions, 0);
  }
  double total = 0;
  for (int tokens : {1, 128}) {
    if (kSanitized && tokens > 1) break;
    lower::GraphSpec spec;
    spec.tokens = tokens;
    auto g = lower::lower_gguf(**file, spec);
    ASSERT_TRUE(g.ok()) << g.message();
    passes::PassContext ctx;
    ASSERT_TRUE(passes::run_pipeline("default", **g, ctx).ok());
    auto prog = cpu::jit_compile(**g);
    ASSERT_TRUE(prog.ok()) << prog.message();
    std::printf("%s %s: %zu kernels, %zu distinct, compiled in %.2f s\n", GetParam(),
                tokens == 1 ? "decode" : "prefill_t128", (*prog)->kernels().size(),
                (*prog)->distinct_kernels(), (*prog)->compile_seconds());
    total += (*prog)->compile_seconds();
  }
  std::printf("%s: decode + prefill compile %.2f s\n", GetParam(), total);
}

INSTANTIATE_TEST_SUITE_P(Models, RealModels, ::testing::Values("smollm2", "gemma3"));

}  // namespace
}  // namespace kiln
