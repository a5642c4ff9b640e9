// The sampler (runtime/sampler.h) on fixed logits: each stage of llama.cpp's chain (penalties,
// top-k, top-p, min-p, temperature) checked against the probabilities worked out by hand, the
// draw's frequencies against them, seeds, and top-n log-probabilities. Also stop strings
// (runtime/stop_strings.h): held-back text and matches split over pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>

#include "runtime/sampler.h"
#include "runtime/stop_strings.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

using runtime::Sampler;

// Logits with softmax [0.6439, 0.2369, 0.0871, 0.0321].
const std::vector<float> kLogits = {2.0f, 1.0f, 0.0f, -1.0f};

SamplingOptions plain(float temperature = 1.0f) {
  SamplingOptions s;
  s.temperature = temperature;
  s.top_k = 0;
  s.top_p = 1.0f;
  s.min_p = 0.0f;
  s.seed = 1234;
  return s;
}

// Frequencies of each token over n draws.
std::vector<double> frequencies(const SamplingOptions& o, const std::vector<float>& logits,
                                int n = 40000) {
  Sampler s(o, int(logits.size()));
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < n; ++i) f[size_t(s.sample(logits, {}))] += 1.0 / n;
  return f;
}

std::vector<double> softmax(const std::vector<float>& l, std::vector<int> keep, double temp = 1) {
  std::vector<double> p(l.size(), 0.0);
  double sum = 0;
  for (int i : keep) sum += std::exp(l[size_t(i)] / temp);
  for (int i : keep) p[size_t(i)] = std::exp(l[size_t(i)] / temp) / sum;
  return p;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  // 40000 draws: the standard error of a frequency is at most 0.0025.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 0.012) << "token " << i;
    if (want[i] == 0) {
      EXPECT_EQ(got[i], 0) << "token " << i << " must be filtered out";
    }
  }
}

TEST(Sampler, GreedyTakesTheLargestLogit) {
  std::vector<float> l = test::random_floats(1000, 7, 5.0f);
  const int best = int(std::max_element(l.begin(), l.end()) - l.begin());
  Sampler s(SamplingOptions::greedy(), 1000);
  EXPECT_EQ(s.sample(l, {}), best);
  EXPECT_EQ(s.sample(l, {}), best);  // deterministic, no state
}

TEST(Sampler, TemperatureOneDrawsTheSoftmax) {
  expect_close(frequencies(plain(), kLogits), softmax(kLogits, {0, 1, 2, 3}));
}

TEST(Sampler, TemperatureScalesTheLogits) {
  expect_close(frequencies(plain(0.5f), kLogits), softmax(kLogits, {0, 1, 2, 3}, 0.5));
  expect_close(frequencies(plain(2.0f), kLogits), softmax(kLogits, {0, 1, 2, 3}, 2.0));
}

TEST(Sampler, TopKKeepsTheKBest) {
  SamplingOptions o = plain();
  o.top_k = 2;
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1}));
}

TEST(Sampler, TopPKeepsTheShortestPrefixReachingP) {
  SamplingOptions o = plain();
  o.top_p = 0.7f;  // 0.6439 < 0.7 <= 0.6439 + 0.2369
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1}));
  o.top_p = 0.9f;  // 0.8808 < 0.9 <= 0.9679
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1, 2}));
  o.top_p = 0.5f;  // the best token alone
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0}));
}

TEST(Sampler, MinPKeepsTokensAFractionAsLikelyAsTheBest) {
  SamplingOptions o = plain();
  o.min_p = 0.3f;  // p / p_max: 1, 0.368, 0.135, 0.050
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1}));
  o.min_p = 0.1f;
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1, 2}));
}

TEST(Sampler, MinPIsAppliedBeforeTemperature) {
  // llama.cpp's chain: min-p on the untempered logits, then temperature over what is left.
  SamplingOptions o = plain(0.5f);
  o.min_p = 0.3f;
  expect_close(frequencies(o, kLogits), softmax(kLogits, {0, 1}, 0.5));
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingOptions o = SamplingOptions::greedy();
  o.repeat_penalty = 1.1f;
  {
    Sampler s(o, 3);
    const std::vector<float> l = {2.0f, 1.9f, 0.5f};  // 2 / 1.1 = 1.82 < 1.9
    const std::vector<int32_t> history = {0};
    EXPECT_EQ(s.sample(l, {}), 0);
    EXPECT_EQ(s.sample(l, history), 1);
  }
  {
    o.repeat_penalty = 2.0f;
    Sampler s(o, 2);
    const std::vector<float> l = {-1.0f, -1.5f};  // -1 * 2 = -2 < -1.5 (dividing would keep 0)
    const std::vector<int32_t> history = {0};
    EXPECT_EQ(s.sample(l, history), 1);
  }
}

TEST(Sampler, PenaltiesLookOnlyAtTheLastNTokens) {
  SamplingOptions o = SamplingOptions::greedy();
  o.repeat_penalty = 2.0f;
  o.repeat_last_n = 2;
  Sampler s(o, 3);
  const std::vector<float> l = {2.0f, 1.9f, 0.5f};
  EXPECT_EQ(s.sample(l, std::vector<int32_t>{0, 2, 2}), 0);  // 0 is outside the window
  EXPECT_EQ(s.sample(l, std::vector<int32_t>{2, 0, 2}), 1);
}

TEST(Sampler, FrequencyPenaltyCountsOccurrencesAndPresenceCountsOnce) {
  const std::vector<float> l = {2.0f, 1.3f, 0.5f};
  const std::vector<int32_t> once = {0}, twice = {0, 0}, thrice = {0, 0, 0};
  SamplingOptions o = SamplingOptions::greedy();
  o.frequency_penalty = 0.3f;  // 2 - 0.3 n: 1.7, 1.4, 1.1 against 1.3
  {
    Sampler s(o, 3);
    EXPECT_EQ(s.sample(l, once), 0);
    EXPECT_EQ(s.sample(l, twice), 0);
    EXPECT_EQ(s.sample(l, thrice), 1);
  }
  o.frequency_penalty = 0;
  o.presence_penalty = 0.6f;  // 2 - 0.6 = 1.4 > 1.3 however often
  {
    Sampler s(o, 3);
    EXPECT_EQ(s.sample(l, thrice), 0);
  }
  o.presence_penalty = 0.8f;  // 1.2 < 1.3
  {
    Sampler s(o, 3);
    EXPECT_EQ(s.sample(l, once), 1);
  }
}

TEST(Sampler, PenaltiesShapeTheDistribution) {
  // With history {0, 0}: logit 0 becomes 2 / 2 - 2 * 0.25 - 0.25 = 0.25.
  SamplingOptions o = plain();
  o.repeat_penalty = 2.0f;
  o.frequency_penalty = 0.25f;
  o.presence_penalty = 0.25f;
  Sampler s(o, 4);
  const std::vector<int32_t> history = {0, 0};
  std::vector<double> f(4, 0.0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) f[size_t(s.sample(kLogits, history))] += 1.0 / n;
  const std::vector<float> penalized = {0.25f, 1.0f, 0.0f, -1.0f};
  expect_close(f, softmax(penalized, {0, 1, 2, 3}));
}

TEST(Sampler, SameSeedSameTokensOtherSeedOthers) {
  std::vector<float> l(200, 0.0f);
  std::vector<float> noise = test::random_floats(200, 3, 0.1f);
  for (size_t i = 0; i < l.size(); ++i) l[i] = noise[i];  // nearly uniform over 200 tokens
  auto draw = [&](int64_t seed) {
    SamplingOptions o = plain();
    o.seed = seed;
    Sampler s(o, 200);
    std::vector<int32_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(s.sample(l, {}));
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, TopLogprobsAreTheModelsLogSoftmax) {
  std::vector<float> l = test::random_floats(500, 21, 4.0f);
  SamplingOptions o = plain();
  o.top_logprobs = 5;
  o.top_k = 3;
  o.repeat_penalty = 1.5f;  // log-probabilities ignore penalties and the filters
  Sampler s(o, 500);
  const std::vector<int32_t> history = {1, 2, 3};
  const int32_t chosen = s.sample(l, history);
  double mx = *std::max_element(l.begin(), l.end());
  double sum = 0;
  for (float x : l) sum += std::exp(double(x) - mx);
  const double lse = mx + std::log(sum);
  EXPECT_NEAR(s.logprob(), l[size_t(chosen)] - lse, 1e-5);
  std::vector<int32_t> order(500);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)]; });
  ASSERT_EQ(s.top().size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(s.top()[i].id, order[i]);
    EXPECT_NEAR(s.top()[i].logprob, l[size_t(order[i])] - lse, 1e-5);
  }
}

TEST(Sampler, ShortLogitsRowDoesNotReadPastIt) {
  Sampler s(plain(), 8);  // the row is shorter than the vocabulary
  const std::vector<float> l = {0.5f, 3.0f, -2.0f};
  for (int i = 0; i < 100; ++i) EXPECT_LT(s.sample(l, {}), 3);
}

// Stop strings.

std::string feed(runtime::StopStrings& s, const std::vector<std::string>& pieces, bool* stopped) {
  std::string shown, out;
  *stopped = false;
  for (const std::string& p : pieces) {
    if (s.push(p, &out)) {
      shown += out;
      *stopped = true;
      return shown;
    }
    shown += out;
  }
  return shown + s.flush("");
}

TEST(StopStrings, NoStopsPassesTextThrough) {
  runtime::StopStrings s({});
  std::string out;
  EXPECT_FALSE(s.push("Hello", &out));
  EXPECT_EQ(out, "Hello");
  EXPECT_FALSE(s.push(" world", &out));
  EXPECT_EQ(out, " world");
}

TEST(StopStrings, StopSplitOverPiecesIsNeverShown) {
  runtime::StopStrings s({"\nUser:"});
  std::string out;
  EXPECT_FALSE(s.push("Sure.\nUs", &out));
  EXPECT_EQ(out, "Sure.");  // "\nUs" could start the stop string
  EXPECT_TRUE(s.push("er: hi", &out));
  EXPECT_EQ(out, "");  // ends just before the stop string
}

TEST(StopStrings, HeldTextIsReleasedWhenItCannotMatch) {
  runtime::StopStrings s({"###"});
  std::string out;
  EXPECT_FALSE(s.push("a ##", &out));
  EXPECT_EQ(out, "a ");
  EXPECT_FALSE(s.push(" b", &out));
  EXPECT_EQ(out, "## b");
  EXPECT_EQ(s.flush("#"), "#");  // the end of generation releases what is held
}

TEST(StopStrings, EarliestOfSeveralStopsWins) {
  runtime::StopStrings s({"world", "lo w"});
  bool stopped = false;
  EXPECT_EQ(feed(s, {"hel", "lo", " wor", "ld"}, &stopped), "hel");
  EXPECT_TRUE(stopped);
}

TEST(StopStrings, FlushCutsAtAStopInTheTail) {
  runtime::StopStrings s({"END"});
  std::string out;
  EXPECT_FALSE(s.push("abc E", &out));
  EXPECT_EQ(out, "abc ");
  EXPECT_EQ(s.flush("ND more"), "");
}

}  // namespace
}  // namespace kiln
