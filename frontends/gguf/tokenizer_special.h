// Finding special-token text inside the input, the way llama.cpp's tokenizer_st_partition does
// it: control, user-defined and unknown tokens, longest first, each one splitting every raw
// fragment left over by the tokens before it at its leftmost non-overlapping occurrences.
// User-defined tokens are always matched; control and unknown tokens only with parse_special.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "frontends/gguf/tokenizer_vocab.h"

namespace kiln::gguf {

struct Fragment {
  uint32_t offset = 0;  // raw text: bytes [offset, offset + length) of the input
  uint32_t length = 0;
  int32_t token = kNoToken;  // a special token, or kNoToken for raw text
};

class SpecialMatcher {
 public:
  explicit SpecialMatcher(const Vocab& vocab);
  // Splits text (at most 4 GiB) into raw fragments and special tokens. The two ways of doing
  // it give the same fragments; tests pick one to check that.
  enum class Method { kAuto, kOccurrences, kSearch };
  void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out,
                 Method method = Method::kAuto) const;

 private:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;
  struct Occurrence {
    int32_t rank;
    uint32_t pos;
  };
  struct Span {
    uint32_t first = kNone, last = 0;
  };
  void resolve_occurrences(std::string_view text, std::vector<Occurrence>& occ,
                           std::vector<Fragment>& out) const;
  void split_by_search(std::string_view text, const std::vector<int32_t>& present,
                       const std::vector<Span>& spans, std::vector<Fragment>& out) const;

  // A trie of the special texts, flattened: node i's children are kid_byte_/kid_node_ in
  // [kid_begin_[i], kid_begin_[i + 1]). Node 0 is the root, whose children are also in
  // root_kids_ for a direct lookup of the first byte.
  int32_t child(int32_t node, uint8_t b) const {
    for (uint32_t k = kid_begin_[node], e = kid_begin_[node + 1]; k < e; ++k)
      if (kid_byte_[k] == b) return kid_node_[k];
    return -1;
  }

  const Vocab& vocab_;
  std::vector<uint32_t> kid_begin_;
  std::vector<uint8_t> kid_byte_;
  std::vector<int32_t> kid_node_;
  // The rank (index into vocab.special) of the token ending at each node, -1 if none; the
  // second list only has the tokens matched without parse_special (user-defined ones).
  std::vector<int32_t> rank_all_, rank_user_;
  std::array<int32_t, 256> root_kids_{};
};

}  // namespace kiln::gguf
