// Model::generate_batch: several prompts decoded together, one KV-cache slot each, through the
// JIT and through an artifact compiled with --batch, against the same prompts generated one at a
// time. Tiny random-weight models (tests/support/tiny_model.h), greedy.
#include <gtest/gtest.h>

#include <random>

#include "codegen/cpu/microkernels.h"
#include "runtime/artifact_writer.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_model.h"

namespace kiln {
namespace {

constexpr int kCtx = 64;

// Prompts of 3, 12 and 5 tokens: short ones through the decode graph, the long one through a
// prefill bucket (8) and then the decode graph, each into a slot of its own.
std::vector<std::vector<int32_t>> prompts(int vocab) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> out;
  for (int n : {3, 12, 5}) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(int32_t(rng() % uint32_t(vocab)));
    out.push_back(p);
  }
  return out;
}

GenerateOptions greedy(int n) {
  GenerateOptions o;
  o.max_tokens = n;
  o.sampling = SamplingOptions::greedy();
  o.ignore_eog = true;
  return o;
}

LoadOptions options(int batch) {
  LoadOptions lo;
  lo.backend = BackendKind::kCpu;
  lo.threads = 2;
  lo.ctx = kCtx;
  lo.prefill_buckets = {8};
  lo.batch = batch;
  return lo;
}

// The tokens of each prompt generated on its own (single-sequence decode graph).
std::vector<std::vector<int32_t>> one_at_a_time(Model& m,
                                                const std::vector<std::vector<int32_t>>& ps,
                                                int n) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : ps) {
    m.reset();
    auto g = m.generate(p, greedy(n));
    EXPECT_TRUE(g.ok()) << g.message();
    out.push_back(g.ok() ? g->tokens : std::vector<int32_t>{});
  }
  return out;
}

class Batch : public ::testing::TestWithParam<const char*> {};

TEST_P(Batch, SameTokensAsOnePromptAtATime) {
  auto tiny = test::make_tiny_model(GetParam(), DType::Q8_0, 21, /*write=*/true);
  ASSERT_TRUE(tiny.file);
  auto m = Model::load(tiny.path, options(3));
  ASSERT_TRUE(m.ok()) << m.message();
  const auto ps = prompts((*m)->vocab_size());
  auto batched = (*m)->generate_batch(ps, greedy(10));
  ASSERT_TRUE(batched.ok()) << batched.message();
  ASSERT_EQ(batched->size(), ps.size());
  EXPECT_EQ((*m)->n_past(), 0);  // the cache is left empty
  const auto single = one_at_a_time(**m, ps, 10);
  for (size_t i = 0; i < ps.size(); ++i) {
    const Generation& g = (*batched)[i];
    EXPECT_EQ(g.tokens, single[i]) << "prompt " << i;
    EXPECT_EQ(g.prompt_tokens, int(ps[i].size()));
    EXPECT_EQ(g.decode_tokens, 9);
    EXPECT_EQ(g.finish, FinishReason::kLength);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, Batch, ::testing::Values("tiny-llama", "tiny-gemma3"));

TEST(Batch, ArtifactDecodesThreePromptsWithItsBatchOfFour) {
  auto tiny = test::make_tiny_model("tiny-qwen2", DType::Q4_0, 22, /*write=*/true);
  ASSERT_TRUE(tiny.file);
  const std::string art = test::temp_dir() + "/batch-1-4.kiln";
  artifact::CompileOptions co;
  co.ctx = kCtx;
  co.prefill_buckets = {8};
  co.batches = {4, 1};
  auto r = artifact::compile_artifact(tiny.path, art, co);
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r->graphs.size(), 3u);  // decode_b1, decode_b4, prefill_t8_b1
  EXPECT_EQ(r->graphs[1].name, "decode_b4");

  auto m = Model::load(art, LoadOptions{});
  ASSERT_TRUE(m.ok()) << m.message();
  const auto ps = prompts((*m)->vocab_size());
  auto batched = (*m)->generate_batch(ps, greedy(8));  // decode_b4, one row idle
  ASSERT_TRUE(batched.ok()) << batched.message();
  const auto single = one_at_a_time(**m, ps, 8);
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ((*batched)[i].tokens, single[i]) << i;

  // More prompts than the largest batch: a clear error, nothing run.
  std::vector<std::vector<int32_t>> five(5, ps[0]);
  auto too_many = (*m)->generate_batch(five, greedy(2));
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.message().find("compile the artifact with --batch 5"), std::string::npos)
      << too_many.message();
}

TEST(Batch, MoreSequencesThanLoadedSlotsIsAnError) {
  auto tiny = test::make_tiny_model("tiny-llama", DType::Q8_0, 23, /*write=*/true);
  ASSERT_TRUE(tiny.file);
  auto m = Model::load(tiny.path, options(1));
  ASSERT_TRUE(m.ok()) << m.message();
  const auto ps = prompts((*m)->vocab_size());
  auto g = (*m)->generate_batch(ps, greedy(2));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("3 prompts, but the model holds 1 sequences"), std::string::npos)
      << g.message();
  std::vector<std::vector<int32_t>> with_empty = {ps[0], {}};
  auto m2 = Model::load(tiny.path, options(2));
  ASSERT_TRUE(m2.ok());
  EXPECT_FALSE((*m2)->generate_batch(with_empty, greedy(2)).ok());
}

TEST(Batch, StopsEachSequenceOnItsOwn) {
  auto tiny = test::make_tiny_model("tiny-llama", DType::Q8_0, 24, /*write=*/true);
  ASSERT_TRUE(tiny.file);
  auto m = Model::load(tiny.path, options(2));
  ASSERT_TRUE(m.ok()) << m.message();
  const auto ps = prompts((*m)->vocab_size());
  const std::vector<std::vector<int32_t>> two = {ps[0], ps[2]};
  auto free_run = (*m)->generate_batch(two, greedy(6));
  ASSERT_TRUE(free_run.ok()) << free_run.message();
  ASSERT_EQ((*free_run)[0].tokens.size(), 6u);
  // Stop on the text of the first sequence's third token, when only that sequence produces it:
  // the first then ends (kStop) early, the other runs to max_tokens.
  const std::string stop = (*m)->detokenize(std::span((*free_run)[0].tokens).subspan(2, 1));
  const std::string before = (*m)->detokenize(std::span((*free_run)[0].tokens).first(2));
  if (stop.empty() || before.find(stop) != std::string::npos ||
      (*free_run)[1].text.find(stop) != std::string::npos)
    GTEST_SKIP() << "the random model's text does not give a usable stop string";
  GenerateOptions o = greedy(6);
  o.stop = {stop};
  auto stopped = (*m)->generate_batch(two, o);
  ASSERT_TRUE(stopped.ok()) << stopped.message();
  EXPECT_EQ((*stopped)[0].finish, FinishReason::kStop);
  EXPECT_LT((*stopped)[0].tokens.size(), 6u);
  EXPECT_EQ((*stopped)[0].text.find(stop), std::string::npos);
  // As generate() stops the same prompt on its own.
  (*m)->reset();
  auto alone = (*m)->generate(two[0], o);
  ASSERT_TRUE(alone.ok()) << alone.message();
  EXPECT_EQ((*stopped)[0].tokens, alone->tokens);
  EXPECT_EQ((*stopped)[0].text, alone->text);
  EXPECT_EQ((*stopped)[1].finish, FinishReason::kLength);
  EXPECT_EQ((*stopped)[1].tokens, (*free_run)[1].tokens);
  auto none = (*m)->generate_batch(two, greedy(0));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE((*none)[0].tokens.empty());
}

// The real models, four prompts decoded together through the JIT: each sequence's tokens are those
// of the same batch on the reference interpreter, which rounds as llama.cpp does for a batch of
// four (docs/parity.md). A batched step does not round as four single steps do: ggml-cpu, and so
// kiln, picks the f16 attention product (and the K-quant kernels) by the number of token rows,
// so a batched sequence may leave its solo path at a near tie, as it would in llama.cpp.
class RealBatch : public ::testing::TestWithParam<const char*> {};

TEST_P(RealBatch, FourPromptsTogetherGiveTheInterpretersTokens) {
  KILN_REQUIRE_MODEL(path, GetParam());
  if (!mk::ggml_order())
    GTEST_SKIP() << "the microkernels sum in ggml's order only on AVX-512 VNNI";
  std::vector<std::vector<int32_t>> out[2];
  for (BackendKind kind : {BackendKind::kCpu, BackendKind::kInterpreter}) {
    LoadOptions lo;
    lo.backend = kind;
    lo.ctx = 64;
    lo.batch = 4;
    auto m = Model::load(path, lo);
    ASSERT_TRUE(m.ok()) << m.message();
    std::vector<std::vector<int32_t>> ps;
    for (const char* t : {"The capital of France is", "Once upon a time, there was a little",
                          "def fibonacci(n):", "The three primary colors are red, yellow and"}) {
      auto ids = (*m)->tokenize(t, true);
      ASSERT_TRUE(ids.ok());
      ps.push_back(*ids);
    }
    auto batched = (*m)->generate_batch(ps, greedy(8));
    ASSERT_TRUE(batched.ok()) << batched.message();
    for (const auto& g : *batched) out[kind == BackendKind::kCpu ? 0 : 1].push_back(g.tokens);
  }
  ASSERT_EQ(out[0].size(), 4u);
  for (size_t i = 0; i < out[0].size(); ++i) EXPECT_EQ(out[0][i], out[1][i]) << "prompt " << i;
}

INSTANTIATE_TEST_SUITE_P(Models, RealBatch, ::testing::Values("smollm2", "gemma3"));

}  // namespace
}  // namespace kiln
