// The compiled CPU backend on the real models against llama.cpp: greedy continuations of the
// prompts of tests/data/generation/*.json (llama-cpp-python's, scripts/goldens/
// make_generation_goldens.py) through the public API, and perplexity over
// tests/data/perplexity/text.txt with windows of 256 tokens against llama.cpp's.
//
// Agreement, strictly: a prompt passes when its 64 tokens equal llama.cpp's, or when the first
// difference sits where llama.cpp's own top-2 logits are within 1e-3 (a tie either way). With the
// AVX-512 VNNI microkernels every compiled kernel sums in ggml-cpu's order (docs/parity.md), so
// every prompt must pass that rule. Elsewhere (AVX2 or scalar microkernels, or KILN_MK_ORDER=fast)
// the products sum in another order, a one-ulp difference can flip an 8-bit activation rounding,
// and a greedy path may leave llama.cpp's at a near tie: there a difference where llama.cpp's gap
// is kNearTie or more fails, which rounding does not explain (measured with the AVX2 kernels,
// 2026-11-28: first differences at gaps up to 0.47).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "codegen/cpu/cpu_codegen.h"
#include "codegen/cpu/microkernels.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

constexpr double kStrictTie = 1e-3;
constexpr double kNearTie = 1.0;

class RealModel : public ::testing::TestWithParam<const char*> {};

using mk::ggml_order;

std::unique_ptr<Model> load(const std::string& path, int ctx) {
  LoadOptions o;
  o.backend = BackendKind::kCpu;
  o.ctx = ctx;
  auto m = Model::load(path, o);
  EXPECT_TRUE(m.ok()) << m.message();
  return m.ok() ? std::move(*m) : nullptr;
}

TEST_P(RealModel, GreedyTokensEqualLlamaCpp) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  const std::string which = GetParam();
  KILN_REQUIRE_MODEL(path, which);
  auto golden =
      nlohmann::json::parse(test::read_file(test::data_dir() + "/generation/" + which + ".json"));
  auto model = load(path, 256);
  ASSERT_TRUE(model);
  int strict = 0, total_equal = 0, total = 0;
  std::vector<double> other_gaps;
  // Every golden prompt (12; issue 5 asks for at least 10).
  const int prompts = int(golden["cases"].size());
  EXPECT_GE(prompts, 10);
  for (int p = 0; p < prompts; ++p) {
    const auto& c = golden["cases"][size_t(p)];
    const auto prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    const auto expect = c["tokens"].get<std::vector<int32_t>>();
    const auto gaps = c["top2_gap"].get<std::vector<double>>();
    model->reset();  // each prompt from an empty cache, as the goldens were made
    GenerateOptions o;
    o.max_tokens = int(expect.size());
    o.sampling = SamplingOptions::greedy();
    o.ignore_eog = true;
    auto gen = model->generate(prompt, o);
    ASSERT_TRUE(gen.ok()) << gen.message();
    const std::vector<int32_t>& got = gen->tokens;
    ASSERT_EQ(got.size(), expect.size());
    int first_diff = -1;
    for (size_t i = 0; i < expect.size() && first_diff < 0; ++i)
      if (got[i] != expect[i]) first_diff = int(i);
    const int equal = first_diff < 0 ? int(expect.size()) : first_diff;
    total_equal += equal;
    total += int(expect.size());
    if (first_diff < 0) {
      ++strict;
      std::printf("%s prompt %d: %d of %zu tokens equal\n", which.c_str(), p, equal, expect.size());
      continue;
    }
    const double gap = gaps[size_t(first_diff)];
    if (gap < kStrictTie)
      ++strict;
    else
      other_gaps.push_back(gap);
    std::printf(
        "%s prompt %d: %d of %zu tokens equal; first difference at %d (kiln %d, llama.cpp "
        "%d), llama.cpp top-2 gap %.4g%s\n",
        which.c_str(), p, equal, expect.size(), first_diff, got[size_t(first_diff)],
        expect[size_t(first_diff)], gap, gap < kStrictTie ? " (a tie)" : "");
    if (!ggml_order()) {
      EXPECT_LT(gap, kNearTie) << which << " prompt " << p << " leaves llama.cpp's path at token "
                               << first_diff << ", where llama.cpp's top-2 gap is " << gap;
    }
  }
  std::printf(
      "%s: %d of %d prompts pass the strict rule (equal, or first difference at a top-2 "
      "gap < %g); %d of %d tokens before the first difference; other gaps:",
      which.c_str(), strict, prompts, kStrictTie, total_equal, total);
  for (double g : other_gaps) std::printf(" %.4g", g);
  std::printf("\n");
  if (ggml_order()) {
    EXPECT_EQ(strict, prompts) << which << ": kernels in ggml's order";
  }
}

TEST_P(RealModel, PerplexityWithinOnePercentOfLlamaCpp) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  const std::string which = GetParam();
  KILN_REQUIRE_MODEL(path, which);
  auto golden =
      nlohmann::json::parse(test::read_file(test::data_dir() + "/generation/" + which + ".json"));
  const auto& want = golden["perplexity"];
  const int n_ctx = want["n_ctx"].get<int>();
  auto model = load(path, n_ctx);
  ASSERT_TRUE(model);
  auto p = model->perplexity(test::read_file(test::data_dir() + "/perplexity/text.txt"));
  ASSERT_TRUE(p.ok()) << p.message();
  const double ref = want["ppl"].get<double>();
  std::printf("%s: ppl %.4f, llama.cpp %.4f (%+.3f%%); %d tokens, %d windows, %d scored, %.1f s\n",
              which.c_str(), p->ppl, ref, 100.0 * (p->ppl / ref - 1.0), p->tokens, p->windows,
              p->scored, p->seconds);
  EXPECT_EQ(p->tokens, want["tokens"].get<int>());
  EXPECT_EQ(p->windows, want["chunks"].get<int>());
  EXPECT_EQ(p->scored, want["scored"].get<int>());
  EXPECT_NEAR(p->ppl, ref, 0.01 * ref);
}

// The same API on the reference interpreter (--backend interp): it rounds as ggml-cpu does and
// evaluates a prompt as one exact-length batch, so its greedy tokens are llama.cpp's exactly
// (docs/parity.md). Three prompts of 16 tokens each, to keep the interpreter's time bounded.
TEST_P(RealModel, InterpreterBackendTokensAreLlamaCppsExactly) {
  const std::string which = GetParam();
  KILN_REQUIRE_MODEL(path, which);
  auto golden =
      nlohmann::json::parse(test::read_file(test::data_dir() + "/generation/" + which + ".json"));
  LoadOptions lo;
  lo.backend = BackendKind::kInterpreter;
  lo.ctx = 256;
  auto model = Model::load(path, lo);
  ASSERT_TRUE(model.ok()) << model.message();
  for (int p = 0; p < 3; ++p) {
    const auto& c = golden["cases"][size_t(p)];
    const auto expect = c["tokens"].get<std::vector<int32_t>>();
    (*model)->reset();
    GenerateOptions o;
    o.max_tokens = 16;
    o.sampling = SamplingOptions::greedy();
    o.ignore_eog = true;
    auto gen = (*model)->generate(c["prompt_tokens"].get<std::vector<int32_t>>(), o);
    ASSERT_TRUE(gen.ok()) << gen.message();
    EXPECT_EQ(gen->tokens, std::vector<int32_t>(expect.begin(), expect.begin() + 16))
        << which << " prompt " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, RealModel, ::testing::Values("smollm2", "gemma3"));

}  // namespace
}  // namespace kiln
