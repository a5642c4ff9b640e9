// Generation through the public API (runtime/kiln.h) on a tiny model with random weights: the
// stream sees what the result holds, cancellation, stop strings, a full context, context overflow
// as an error, chunked prefill against token-by-token evaluation, and KV-cache reuse.
#include <gtest/gtest.h>

#include <cmath>

#include "codegen/cpu/cpu_codegen.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

class Generate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = test::temp_dir() + "/gen-tiny-qwen2.gguf";
    auto r = test::run_kiln("make-model --preset tiny-qwen2 --quant q8_0 --seed 4 --threads 2 -o " +
                            path_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static std::unique_ptr<Model> load(int ctx, std::vector<int> buckets = {16, 64}) {
    LoadOptions o;
    o.ctx = ctx;
    o.threads = 2;
    o.prefill_buckets = std::move(buckets);
    auto m = Model::load(path_, o);
    EXPECT_TRUE(m.ok()) << m.message();
    return m.ok() ? std::move(*m) : nullptr;
  }
  static GenerateOptions greedy(int n) {
    GenerateOptions g;
    g.max_tokens = n;
    g.sampling = SamplingOptions::greedy();
    g.ignore_eog = true;
    return g;
  }
  static std::string path_;
};
std::string Generate::path_;

TEST_F(Generate, StreamSeesEveryTokenAndTheText) {
  auto m = load(128);
  ASSERT_TRUE(m);
  std::string streamed;
  std::vector<int32_t> ids;
  auto g = m->generate("the cat sat on the mat", greedy(12), [&](const Token& t) {
    EXPECT_EQ(t.index, int(ids.size()));
    streamed += t.text;
    ids.push_back(t.id);
    return true;
  });
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(g->finish, FinishReason::kLength);
  EXPECT_EQ(g->tokens, ids);
  EXPECT_EQ(g->tokens.size(), 12u);
  EXPECT_EQ(streamed, g->text);
  EXPECT_EQ(g->decode_tokens, 11);
  EXPECT_EQ(m->n_past(), g->prompt_tokens + 11);
}

TEST_F(Generate, CallbackCancels) {
  auto m = load(128);
  ASSERT_TRUE(m);
  int calls = 0;
  auto g = m->generate("one two three", greedy(50), [&](const Token&) { return ++calls < 3; });
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(g->finish, FinishReason::kCancelled);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(g->tokens.size(), 3u);
}

TEST_F(Generate, StopStringEndsBeforeIt) {
  auto m = load(128);
  ASSERT_TRUE(m);
  auto full = m->generate("a b c", greedy(24));
  ASSERT_TRUE(full.ok()) << full.message();
  ASSERT_GE(full->text.size(), 6u) << full->text;
  // A stop string taken from the middle of the greedy text: the same run ends just before it.
  const size_t at = full->text.size() / 2;
  const std::string stop = full->text.substr(at, 2);
  const size_t first = full->text.find(stop);
  GenerateOptions o = greedy(24);
  o.stop = {stop};
  std::string streamed;
  auto g = m->generate("a b c", o, [&](const Token& t) {
    streamed += t.text;
    return true;
  });
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(g->finish, FinishReason::kStop);
  EXPECT_EQ(g->text, full->text.substr(0, first));
  EXPECT_EQ(streamed, g->text);
}

TEST_F(Generate, FullContextEndsGenerationAndOverflowIsAnError) {
  auto m = load(24);
  ASSERT_TRUE(m);
  auto prompt = m->tokenize("x y z w");
  ASSERT_TRUE(prompt.ok());
  const int n = int(prompt->size());
  auto g = m->generate(*prompt, greedy(100));
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(g->finish, FinishReason::kContextFull);
  EXPECT_EQ(m->n_past(), 24);
  EXPECT_EQ(int(g->tokens.size()), 24 - n + 1);  // the last token sampled, not evaluated
  std::vector<int32_t> long_prompt(30, (*prompt)[0]);
  auto bad = m->generate(long_prompt, greedy(4));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("context overflow"), std::string::npos) << bad.message();
  EXPECT_FALSE(m->eval(long_prompt).ok());
}

TEST_F(Generate, ChunkedPrefillEqualsTokenByToken) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  auto m = load(128, {16});
  ASSERT_TRUE(m);
  std::vector<int32_t> prompt;
  std::vector<float> noise = test::random_floats(40, 8, 1.0f);
  for (size_t i = 0; i < 40; ++i)
    prompt.push_back(int32_t(std::fabs(noise[i]) * float(m->vocab_size() - 1)));
  auto chunked = m->eval(prompt);  // 16 + 16 + 16 (padded)
  ASSERT_TRUE(chunked.ok()) << chunked.message();
  std::vector<float> want(chunked->begin(), chunked->end());
  m->reset();
  std::span<const float> last;
  for (int32_t t : prompt) {
    auto r = m->eval(std::span<const int32_t>(&t, 1));
    ASSERT_TRUE(r.ok()) << r.message();
    last = *r;
  }
  ASSERT_EQ(last.size(), want.size());
  double scale = 1e-9, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, double(std::fabs(want[i])));
    err = std::max(err, std::fabs(double(last[i]) - double(want[i])));
  }
  EXPECT_LE(err / scale, 0.02) << "max |diff| " << err << " over max |logit| " << scale;
  EXPECT_EQ(m->n_past(), 40);
}

TEST_F(Generate, NextCallReusesTheCachedPrefix) {
  auto m = load(128);
  ASSERT_TRUE(m);
  auto a = m->generate("red green blue red green blue", greedy(4));
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->prefill_tokens, a->prompt_tokens);
  auto b = m->generate("red green blue red green blue yellow", greedy(4));
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_LT(b->prefill_tokens, b->prompt_tokens);
  // The same answer as from an empty cache.
  m->reset();
  auto c = m->generate("red green blue red green blue yellow", greedy(4));
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(b->tokens, c->tokens);
}

}  // namespace
}  // namespace kiln
