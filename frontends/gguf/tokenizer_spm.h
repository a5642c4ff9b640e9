// SentencePiece-style BPE (tokenizer.ggml.model = "llama", e.g. Gemma 3), as llama.cpp's
// llm_tokenizer_spm: the text (spaces already written as U+2581 "▁") is split into UTF-8
// characters, and the adjacent pair whose concatenation is the highest-scoring token is merged
// (leftmost on ties) until no pair forms a token. A character that is not a token becomes its
// byte tokens <0xNN>.
//
// There is no pre-tokenizer, so a whole fragment is one merge problem. It is cut, exactly, into
// independent segments before each "▁" that no token can join to the character before it (the
// vocabulary is checked for tokens with an inner "▁" at load; Gemma 3 has one, ">▁</"): merges
// never cross such a cut, so each segment (usually one word) is merged alone, in a small queue,
// and its ids are cached like a BPE word's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/tokenizer_cache.h"
#include "frontends/gguf/tokenizer_queue.h"
#include "frontends/gguf/tokenizer_vocab.h"
#include "ir/status.h"

namespace kiln::gguf {

class SpmModel {
 public:
  explicit SpmModel(const Vocab& vocab);

  struct Scratch {
    struct Symbol {
      uint32_t start, n;
      int32_t prev, next;
    };
    std::vector<Symbol> syms;
    RankQueue queue;
    std::vector<int32_t> ids;
  };

  // Appends the ids of `text`; fails only when a byte has no token (neither <0xNN> nor itself).
  Status encode(std::string_view text, std::vector<int32_t>& out, Scratch& s) const;
  // The token of a raw byte, or kNoToken.
  int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }

 private:
  Status encode_segment(std::string_view seg, std::vector<int32_t>& out, Scratch& s) const;

  const Vocab& vocab_;
  // Position of each token's score among the distinct scores, highest first (NaN last): the
  // queue's rank, so that equal scores tie and fall back to the leftmost pair.
  std::vector<int32_t> score_rank_;
  size_t num_ranks_ = 0;
  int32_t byte_tokens_[256];
  // Bytes that some token has right before an inner "▁": no cut after those.
  bool joins_space_[256] = {};

  mutable WordCache cache_;
};

}  // namespace kiln::gguf
