// One sequence in a backend's KV cache: the tokens the cache holds, and evaluation of new ones.
//
// New tokens go through the prefill graphs, compiled for a few bucketed lengths, and the decode
// graph (one token). A run of n tokens is split into chunks by plan_chunks: each chunk is a
// bucket's graph, the last one padded (padding has position -1, which kv_write skips, and the
// `rows` input picks the last real token's logits). Buffers are sized once, so decoding one token
// allocates nothing.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "runtime/backend.h"

namespace kiln::runtime {

// The graphs to run for n new tokens: bucket lengths (1 = the decode graph), in order; only the
// last may be longer than the tokens it gets (padding). A run that one bucket holds is one call
// of the smallest such bucket, as llama.cpp evaluates a prompt as one batch: ggml-cpu picks its
// kernels, and so its summation orders, by the number of tokens in the batch (one, or more), and
// kiln's compiled kernels reproduce those orders (docs/parity.md), so splitting a prompt into a
// prefill and a few decode steps would change the last bits of the logits and, at a near tie,
// the tokens. Longer runs take the largest bucket as often as needed, then one bucket for the
// rest. Runs of up to `decode_up_to` tokens go through the decode graph one at a time instead
// (0 or 1: a single token is what the decode graph computes anyway).
inline constexpr int kDecodePrefill = 1;
std::vector<int> plan_chunks(int n, std::span<const int> buckets,
                             int decode_up_to = kDecodePrefill);

// With exact lengths, new tokens run in chunks of their own length, at most this many (llama.cpp's
// default batch).
inline constexpr int kExactChunk = 512;

class Context {
 public:
  // `buckets`: the prefill lengths (those above ctx are dropped). Runs of up to `decode_up_to`
  // tokens use the decode graph (plan_chunks).
  Context(Backend& backend, std::vector<int> buckets, int ctx, int decode_up_to = kDecodePrefill);
  // Exact lengths instead of buckets: a prompt runs as llama.cpp batches it, in chunks of its own
  // length (kExactChunk at most), each with a graph of that length. For the reference
  // interpreter, whose graphs cost nothing to build and whose kernels then choose llama.cpp's
  // summation orders for that batch (docs/parity.md).
  struct ExactLengths {};
  Context(Backend& backend, int ctx, ExactLengths);

  // Evaluates `tokens` at positions n_past() ... and returns the last one's logits (valid until
  // the next evaluation). An error, with nothing evaluated, when they do not fit the context.
  Result<std::span<const float>> eval(std::span<const int32_t> tokens);
  // Keeps the cache's first n tokens; later positions are overwritten by the next evaluation.
  void truncate(int n);
  // Empties the cache (and zeroes the backend's KV memory).
  void reset();
  // Builds now the graphs that evaluating n new tokens uses (n = 1: the decode graph), so that
  // compilation is not timed as evaluation.
  Status prepare(int n);

  // The KV-cache sequence slot this context writes and reads (0 by default; a backend holds
  // BackendOptions::slots of them). Set before the first evaluation.
  void use_slot(int slot) { slot_ = slot; }
  int slot() const { return slot_; }

  int n_past() const { return int(tokens_.size()); }
  int ctx() const { return ctx_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::vector<int>& buckets() const { return buckets_; }
  int decode_up_to() const { return decode_up_to_; }

 private:
  Result<std::span<const float>> run_chunk(std::span<const int32_t> tokens, int bucket);
  Result<GraphRunner*> runner(int bucket);
  std::vector<int> chunks(int n) const;

  Backend& backend_;
  std::vector<int> buckets_;
  int ctx_;
  int decode_up_to_;
  std::vector<int32_t> tokens_;  // reserved for ctx tokens
  std::vector<int32_t> in_tokens_, in_pos_;
  // Graphs by bucket index (decode last), looked up once: the backend's lookup builds a name.
  std::vector<GraphRunner*> runners_;  // per bucket, then the decode graph
  bool exact_ = false;
  int32_t slot_ = 0;
  std::map<int, GraphRunner*> exact_runners_;  // by length, with exact lengths
};

}  // namespace kiln::runtime
