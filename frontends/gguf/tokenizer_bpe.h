// GPT-2 style byte-level BPE (tokenizer.ggml.model = "gpt2"): the pre-tokenizer cuts the text
// into words, each word's bytes become symbols, and adjacent symbols are merged in the order of
// tokenizer.ggml.merges (lowest rank first, leftmost first on ties) until no merge applies.
//
// Symbols are ids, not strings: every symbol string that can ever occur (a byte's character, a
// vocabulary token, a merge result) is interned once at load, and the merge table maps an id
// pair to (rank, merged id). Words are encoded with a linked list of symbols and a heap of
// candidate merges (tokenizer_queue.h), and the ids of common words are cached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/tokenizer_cache.h"
#include "frontends/gguf/tokenizer_queue.h"
#include "frontends/gguf/tokenizer_vocab.h"
#include "ir/status.h"

namespace kiln::gguf {

class BpeModel {
 public:
  static Result<std::unique_ptr<BpeModel>> build(const Vocab& vocab, const Metadata& md);

  // Reusable buffers for encoding, one per caller.
  struct Scratch {
    std::vector<uint32_t> cps;
    std::vector<uint8_t> cls;
    std::vector<uint32_t> ends, ends2;
    std::string utf8;  // the fragment re-encoded from its codepoints
    std::string spelled;
    std::vector<int32_t> sym, next, prev;
    RankQueue queue;
  };

  // Appends the ids of a raw text fragment (pre-tokenized, then BPE per word).
  void encode(std::string_view text, std::vector<int32_t>& out, Scratch& s) const;
  // Appends the ids of one word given as UTF-8 bytes (before the byte-to-character mapping).
  void encode_word(std::string_view word, std::vector<int32_t>& out, Scratch& s) const;

 private:
  explicit BpeModel(const Vocab& vocab) : vocab_(vocab) {}
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  const Merge* find_merge(int32_t left, int32_t right) const;
  void merge_symbols(Scratch& s) const;
  void emit(int32_t sym, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  int32_t byte_sym_[256] = {};
  std::string byte_spelling_[256];
  // Symbols beyond the vocabulary (merge results that are not tokens), by id - vocab size.
  std::vector<std::string> extra_;
  // Open addressing: key = left << 32 | right (UINT64_MAX is empty).
  std::vector<uint64_t> merge_keys_;
  std::vector<Merge> merge_vals_;
  size_t num_ranks_ = 0;

  mutable WordCache cache_;
};

}  // namespace kiln::gguf
