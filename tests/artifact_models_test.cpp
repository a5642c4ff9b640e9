// The artifact on the real models (label: models): compile SmolLM2 and Gemma 3, then the
// artifact gives the JIT path's logits and greedy tokens. Lean on purpose: one short prompt, a
// few decode steps, small ctx and one prefill bucket, so it fits the ASan CI budget.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "runtime/artifact_writer.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"

namespace kiln::artifact {
namespace {

constexpr int kCtx = 128;

class ArtifactModel : public ::testing::TestWithParam<const char*> {};

TEST_P(ArtifactModel, SameLogitsAndTokensAsJit) {
  KILN_REQUIRE_MODEL(gguf, GetParam());
  const std::string kiln = test::temp_dir() + "/" + GetParam() + ".kiln";
  CompileOptions co;
  co.ctx = kCtx;
  co.prefill_buckets = {16};
  auto rep = compile_artifact(gguf, kiln, co);
  ASSERT_TRUE(rep.ok()) << rep.message();
  std::printf("compile %s: %.2f s\n", GetParam(), rep->seconds);

  LoadOptions jo;
  jo.backend = BackendKind::kCpu;
  jo.ctx = kCtx;
  jo.prefill_buckets = {16};
  auto jit = Model::load(gguf, jo);
  ASSERT_TRUE(jit.ok()) << jit.message();
  auto art = Model::load(kiln);
  ASSERT_TRUE(art.ok()) << art.message();

  auto prompt = (*jit)->tokenize("The quick brown fox jumps over the lazy");
  ASSERT_TRUE(prompt.ok());
  auto a = (*jit)->eval(*prompt);
  ASSERT_TRUE(a.ok()) << a.message();
  std::vector<float> ja(a->begin(), a->end());
  auto b = (*art)->eval(*prompt);
  ASSERT_TRUE(b.ok()) << b.message();
  ASSERT_EQ(ja.size(), b->size());
  EXPECT_EQ(std::memcmp(ja.data(), b->data(), ja.size() * 4), 0) << "prefill logits differ";

  (*jit)->reset();
  (*art)->reset();
  GenerateOptions go;
  go.max_tokens = 6;
  go.sampling = SamplingOptions::greedy();
  go.ignore_eog = true;
  auto gj = (*jit)->generate(std::span<const int32_t>(*prompt), go);
  auto ga = (*art)->generate(std::span<const int32_t>(*prompt), go);
  ASSERT_TRUE(gj.ok() && ga.ok());
  EXPECT_EQ(gj->tokens, ga->tokens);
  EXPECT_EQ(gj->text, ga->text);
}

INSTANTIATE_TEST_SUITE_P(Models, ArtifactModel, ::testing::Values("smollm2", "gemma3"));

}  // namespace
}  // namespace kiln::artifact
