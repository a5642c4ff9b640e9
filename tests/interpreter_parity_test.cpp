// The reference interpreter on the real models against llama.cpp's greedy continuations
// (tests/data/generation/*.json, made by scripts/goldens/make_generation_goldens.py).
//
// The lowering asks for llama.cpp's CPU numerics (8-bit activations in quantized products, f16
// q and probabilities in attention, ggml's f16 GELU table), and the interpreter sums in
// ggml-cpu's orders (runtime/interp_ggml_math.h, runtime/interp_matmul.cpp, docs/parity.md), so
// its logits are bit-identical to llama.cpp's on both models: the test asserts exact tokens and
// exact top-8 logits at the first new token.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "frontends/gguf/lower.h"
#include "runtime/interpreter.h"
#include "runtime/weights.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

constexpr int kPrompts = 5;
constexpr int kNewTokens = 16;

std::vector<int32_t> ints(const nlohmann::json& a) {
  return a.get<std::vector<int32_t>>();
}

int argmax(std::span<const float> v) {
  int best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)]) best = int(i);
  return best;
}

// Greedy continuation: the prompt through a prefill graph of its exact length, then decode.
void check_parity(const std::string& which) {
  KILN_REQUIRE_MODEL(path, which);
  auto golden =
      nlohmann::json::parse(test::read_file(test::data_dir() + "/generation/" + which + ".json"));
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  runtime::GgufWeights weights(**file);
  const int ctx = 128;
  lower::GraphSpec dspec;
  dspec.ctx = ctx;
  auto decode = lower::lower_gguf(**file, dspec);
  ASSERT_TRUE(decode.ok()) << decode.message();
  int matched = 0;
  for (int p = 0; p < kPrompts; ++p) {
    const auto& c = golden["cases"][size_t(p)];
    std::vector<int32_t> prompt = ints(c["prompt_tokens"]);
    std::vector<int32_t> expect = ints(c["tokens"]);
    std::vector<double> gaps = c["top2_gap"].get<std::vector<double>>();
    runtime::StateStore states;
    lower::GraphSpec pspec = dspec;
    pspec.tokens = int(prompt.size());
    auto prefill = lower::lower_gguf(**file, pspec);
    ASSERT_TRUE(prefill.ok()) << prefill.message();
    auto pre = runtime::Interpreter::create(**prefill, weights, states);
    ASSERT_TRUE(pre.ok()) << pre.message();
    std::vector<int32_t> pos(prompt.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i);
    const int32_t seq = 0, last = int32_t(prompt.size() - 1);
    ASSERT_TRUE((*pre)->set_input("tokens", prompt).ok());
    ASSERT_TRUE((*pre)->set_input("pos", pos).ok());
    ASSERT_TRUE((*pre)->set_input("seq", std::span<const int32_t>(&seq, 1)).ok());
    ASSERT_TRUE((*pre)->set_input("rows", std::span<const int32_t>(&last, 1)).ok());
    ASSERT_TRUE((*pre)->run().ok());
    auto logits = *(*pre)->output("logits");
    for (const auto& e : c["top"][0]) {
      int id = e[0].get<int>();
      // The goldens hold llama.cpp's f32 logits exactly (as JSON doubles).
      EXPECT_EQ(logits[size_t(id)], float(e[1].get<double>()))
          << which << " prompt " << p << " token " << id;
    }
    int32_t tok = argmax(logits);
    auto dec = runtime::Interpreter::create(**decode, weights, states);
    ASSERT_TRUE(dec.ok()) << dec.message();
    std::vector<int32_t> got = {tok};
    for (int i = 1; i < kNewTokens; ++i) {
      int32_t position = int32_t(prompt.size()) + i - 1;
      ASSERT_TRUE((*dec)->set_input("tokens", std::span<const int32_t>(&tok, 1)).ok());
      ASSERT_TRUE((*dec)->set_input("pos", std::span<const int32_t>(&position, 1)).ok());
      ASSERT_TRUE((*dec)->set_input("seq", std::span<const int32_t>(&seq, 1)).ok());
      ASSERT_TRUE((*dec)->run().ok());
      tok = argmax(*(*dec)->output("logits"));
      got.push_back(tok);
    }
    int first_diff = -1;
    for (int i = 0; i < kNewTokens && first_diff < 0; ++i)
      if (got[size_t(i)] != expect[size_t(i)]) first_diff = i;
    if (first_diff < 0) {
      ++matched;
    } else {
      ADD_FAILURE() << which << " prompt " << p << " differs from llama.cpp at token " << first_diff
                    << " (kiln " << got[size_t(first_diff)] << ", llama.cpp "
                    << expect[size_t(first_diff)] << ", llama.cpp top-2 gap "
                    << gaps[size_t(first_diff)] << ")";
    }
  }
  std::printf("%s: %d of %d prompts x %d tokens equal llama.cpp\n", which.c_str(), matched,
              kPrompts, kNewTokens);
}

TEST(InterpreterParity, SmolLM2) {
  check_parity("smollm2");
}
TEST(InterpreterParity, Gemma3) {
  check_parity("gemma3");
}

}  // namespace
}  // namespace kiln
