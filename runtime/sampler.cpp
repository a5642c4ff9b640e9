#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kiln::runtime {

Sampler::Sampler(const SamplingOptions& options, int vocab_size)
    : o_(options), vocab_(std::max(vocab_size, 1)) {
  uint64_t seed = options.seed >= 0 ? uint64_t(options.seed) : std::random_device{}();
  rng_.seed(seed);
  work_.resize(size_t(vocab_));
  ids_.resize(size_t(vocab_));
  probs_.resize(size_t(vocab_));
  recent_.reserve(options.repeat_last_n > 0 ? size_t(options.repeat_last_n) : 64);
  top_.resize(size_t(std::max(options.top_logprobs, 0)));
}

double Sampler::uniform() {
  return double(rng_() >> 11) * 0x1.0p-53;
}

// llama.cpp's penalties sampler: for each token of the window, seen `count` times, a positive
// logit is divided by repeat_penalty and a negative one multiplied, then count * frequency and
// (once) presence are subtracted.
void Sampler::apply_penalties(std::span<const int32_t> history) {
  const bool off =
      o_.repeat_penalty == 1.0f && o_.frequency_penalty == 0.0f && o_.presence_penalty == 0.0f;
  if (off || o_.repeat_last_n == 0 || history.empty()) return;
  size_t n =
      o_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(o_.repeat_last_n));
  // Grows only when the window outgrows what was reserved (repeat_last_n = -1).
  recent_.assign(history.end() - std::ptrdiff_t(n), history.end());
  std::sort(recent_.begin(), recent_.end());
  for (size_t i = 0; i < recent_.size();) {
    size_t j = i;
    while (j < recent_.size() && recent_[j] == recent_[i]) ++j;
    const int32_t id = recent_[i];
    const float count = float(j - i);
    i = j;
    if (id < 0 || id >= vocab_) continue;
    float& l = work_[size_t(id)];
    l = l <= 0 ? l * o_.repeat_penalty : l / o_.repeat_penalty;
    l -= count * o_.frequency_penalty + o_.presence_penalty;
  }
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = std::min(logits.size(), size_t(vocab_));
  std::copy(logits.begin(), logits.begin() + std::ptrdiff_t(n), work_.begin());
  apply_penalties(history);
  const float* w = work_.data();
  auto better = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };

  int32_t chosen = 0;
  if (o_.temperature <= 0) {
    for (size_t i = 1; i < n; ++i)
      if (w[i] > w[chosen]) chosen = int32_t(i);
  } else {
    std::iota(ids_.begin(), ids_.begin() + std::ptrdiff_t(n), 0);
    size_t m = n;
    bool sorted = false;
    if (o_.top_k > 0 && size_t(o_.top_k) < n) {
      m = size_t(o_.top_k);
      std::partial_sort(ids_.begin(), ids_.begin() + std::ptrdiff_t(m),
                        ids_.begin() + std::ptrdiff_t(n), better);
      sorted = true;
    } else if (o_.top_p < 1.0f) {
      std::sort(ids_.begin(), ids_.begin() + std::ptrdiff_t(n), better);
      sorted = true;
    }
    float max_l = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < m; ++i) max_l = std::max(max_l, w[ids_[i]]);
    // top-p: the shortest best-first prefix whose probability reaches top_p.
    if (o_.top_p < 1.0f && sorted) {
      double sum = 0;
      for (size_t i = 0; i < m; ++i) sum += std::exp(double(w[ids_[i]]) - max_l);
      double cum = 0;
      for (size_t i = 0; i < m; ++i) {
        cum += std::exp(double(w[ids_[i]]) - max_l) / sum;
        if (cum >= o_.top_p) {
          m = i + 1;
          break;
        }
      }
    }
    // min-p: tokens at least min_p times as likely as the best one.
    if (o_.min_p > 0.0f) {
      const float threshold = max_l + std::log(o_.min_p);
      size_t kept = 0;
      for (size_t i = 0; i < m; ++i)
        if (w[ids_[i]] >= threshold) ids_[kept++] = ids_[i];
      if (kept > 0) m = kept;
    }
    // Temperature, then a draw from the softmax.
    const double inv_t = 1.0 / double(o_.temperature);
    double sum = 0;
    for (size_t i = 0; i < m; ++i) {
      probs_[i] = float(std::exp((double(w[ids_[i]]) - max_l) * inv_t));
      sum += probs_[i];
    }
    const double u = uniform() * sum;
    double cum = 0;
    chosen = ids_[m - 1];
    for (size_t i = 0; i < m; ++i) {
      cum += probs_[i];
      if (u < cum) {
        chosen = ids_[i];
        break;
      }
    }
  }
  if (o_.top_logprobs > 0) compute_logprobs(logits.first(n), chosen);
  return chosen;
}

void Sampler::compute_logprobs(std::span<const float> logits, int32_t chosen) {
  const size_t n = logits.size();
  float max_l = -std::numeric_limits<float>::infinity();
  for (float l : logits) max_l = std::max(max_l, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - max_l);
  const double lse = max_l + std::log(sum);
  logprob_ = float(double(logits[size_t(chosen)]) - lse);
  top_n_ = std::min(top_.size(), n);
  const float* l = logits.data();
  std::iota(ids_.begin(), ids_.begin() + std::ptrdiff_t(n), 0);
  std::partial_sort(ids_.begin(), ids_.begin() + std::ptrdiff_t(top_n_),
                    ids_.begin() + std::ptrdiff_t(n),
                    [l](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  for (size_t i = 0; i < top_n_; ++i)
    top_[i] = TokenLogprob{ids_[i], float(double(l[ids_[i]]) - lse)};
}

}  // namespace kiln::runtime
