// Picks the next token from a row of logits: llama.cpp's default sampler chain (penalties, top-k,
// top-p, min-p, temperature, a seeded draw), or greedy. Every buffer is sized once for the
// vocabulary, so sampling allocates nothing per token.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "runtime/kiln.h"

namespace kiln::runtime {

class Sampler {
 public:
  Sampler(const SamplingOptions& options, int vocab_size);

  // The next token. `history` is every token so far (prompt and generated), for the penalties.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // After sample(), when options.top_logprobs > 0: the chosen token's log-probability under the
  // model (raw logits) and the top_logprobs best tokens, best first.
  float logprob() const { return logprob_; }
  std::span<const TokenLogprob> top() const { return {top_.data(), top_n_}; }

  const SamplingOptions& options() const { return o_; }

 private:
  void apply_penalties(std::span<const int32_t> history);
  void compute_logprobs(std::span<const float> logits, int32_t chosen);
  double uniform();

  SamplingOptions o_;
  int vocab_;
  std::mt19937_64 rng_;
  std::vector<float> work_;        // logits after penalties
  std::vector<int32_t> ids_;       // candidate ids
  std::vector<float> probs_;       // candidate probabilities
  std::vector<int32_t> recent_;    // the penalty window, sorted
  std::vector<TokenLogprob> top_;  // top_logprobs entries
  size_t top_n_ = 0;
  float logprob_ = 0;
};

}  // namespace kiln::runtime
