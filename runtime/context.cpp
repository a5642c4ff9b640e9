#include "runtime/context.h"

#include <algorithm>

namespace kiln::runtime {

std::vector<int> plan_chunks(int n, std::span<const int> buckets, int decode_up_to) {
  std::vector<int> chunks;
  std::vector<int> sizes;
  for (int b : buckets)
    if (b > 1) sizes.push_back(b);
  std::sort(sizes.begin(), sizes.end());
  if (n <= decode_up_to || sizes.empty()) return std::vector<int>(size_t(std::max(n, 0)), 1);
  while (n > 1 && n > sizes.back()) {
    chunks.push_back(sizes.back());
    n -= sizes.back();
  }
  if (n == 1) {
    chunks.push_back(1);
  } else if (n > 1) {
    chunks.push_back(*std::lower_bound(sizes.begin(), sizes.end(), n));
  }
  return chunks;
}

Context::Context(Backend& backend, std::vector<int> buckets, int ctx, int decode_up_to)
    : backend_(backend), ctx_(ctx), decode_up_to_(decode_up_to) {
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  for (int b : buckets)
    if (b > 1 && b <= ctx) buckets_.push_back(b);
  tokens_.reserve(size_t(ctx));
  int most = buckets_.empty() ? 1 : buckets_.back();
  in_tokens_.resize(size_t(most));
  in_pos_.resize(size_t(most));
  runners_.assign(buckets_.size() + 1, nullptr);
}

Context::Context(Backend& backend, int ctx, ExactLengths) : Context(backend, {}, ctx, 0) {
  exact_ = true;
  in_tokens_.resize(size_t(std::min(ctx, kExactChunk)));
  in_pos_.resize(in_tokens_.size());
}

std::vector<int> Context::chunks(int n) const {
  if (!exact_) return plan_chunks(n, buckets_, decode_up_to_);
  std::vector<int> out;
  for (; n > 0; n -= kExactChunk) out.push_back(std::min(n, kExactChunk));
  return out;
}

Result<GraphRunner*> Context::runner(int bucket) {
  if (exact_ && bucket > 1) {
    GraphRunner*& r = exact_runners_[bucket];
    if (!r) {
      lower::GraphSpec spec;
      spec.tokens = bucket;
      KILN_ASSIGN_OR_RETURN(r, backend_.graph(spec));
    }
    return r;
  }
  size_t slot = buckets_.size();  // decode
  if (bucket > 1)
    slot = size_t(std::find(buckets_.begin(), buckets_.end(), bucket) - buckets_.begin());
  if (!runners_[slot]) {
    lower::GraphSpec spec;
    spec.tokens = bucket;
    KILN_ASSIGN_OR_RETURN(runners_[slot], backend_.graph(spec));
  }
  return runners_[slot];
}

Result<std::span<const float>> Context::run_chunk(std::span<const int32_t> tokens, int bucket) {
  KILN_ASSIGN_OR_RETURN(GraphRunner * g, runner(bucket));
  const int n = int(tokens.size());
  for (int i = 0; i < bucket; ++i) {
    // Padding repeats the last token at position -1: kv_write skips it and nothing attends to it.
    in_tokens_[size_t(i)] = i < n ? tokens[size_t(i)] : tokens[size_t(n - 1)];
    in_pos_[size_t(i)] = i < n ? int32_t(tokens_.size()) + i : -1;
  }
  const int32_t seq = slot_, last = n - 1;
  const auto b = size_t(bucket);
  KILN_RETURN_IF_ERROR(g->set_input("tokens", std::span<const int32_t>(in_tokens_.data(), b)));
  KILN_RETURN_IF_ERROR(g->set_input("pos", std::span<const int32_t>(in_pos_.data(), b)));
  KILN_RETURN_IF_ERROR(g->set_input("seq", std::span<const int32_t>(&seq, 1)));
  if (bucket > 1) KILN_RETURN_IF_ERROR(g->set_input("rows", std::span<const int32_t>(&last, 1)));
  KILN_RETURN_IF_ERROR(g->run());
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  return g->output("logits");
}

Result<std::span<const float>> Context::eval(std::span<const int32_t> tokens) {
  if (tokens.empty()) return make_error("no tokens to evaluate");
  if (tokens.size() > size_t(ctx_) - tokens_.size())
    return make_error("context overflow: ", tokens_.size(), " tokens in the context plus ",
                      tokens.size(), " new ones exceed its ", ctx_, " (use a larger --ctx)");
  if (tokens.size() == 1) return run_chunk(tokens, 1);  // decode: no planning, no allocation
  std::span<const float> logits;
  size_t done = 0;
  for (int bucket : chunks(int(tokens.size()))) {
    size_t n = std::min(size_t(bucket), tokens.size() - done);
    KILN_ASSIGN_OR_RETURN(logits, run_chunk(tokens.subspan(done, n), bucket));
    done += n;
  }
  return logits;
}

Status Context::prepare(int n) {
  if (n == 1) return runner(1).status();
  std::vector<int> sizes = chunks(n);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (int b : sizes) KILN_RETURN_IF_ERROR(runner(b).status());
  return Status::Ok();
}

void Context::truncate(int n) {
  if (n >= 0 && size_t(n) < tokens_.size()) tokens_.resize(size_t(n));
}

void Context::reset() {
  tokens_.clear();
  backend_.reset_states();
}

}  // namespace kiln::runtime
