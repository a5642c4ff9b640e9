#include "frontends/gguf/tokenizer_spm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "frontends/gguf/tokenizer_unicode.h"

namespace kiln::gguf {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";

}  // namespace

SpmModel::SpmModel(const Vocab& vocab) : vocab_(vocab) {
  std::vector<float> scores = vocab.scores;
  for (float& f : scores)
    if (std::isnan(f)) f = -std::numeric_limits<float>::infinity();
  // Ids by descending score, as (score key, id) pairs in one integer each, put in order of the
  // key by a radix sort (two 16-bit digits): a comparison sort of Gemma 3's 262k scores took
  // 20 ms of every start.
  std::vector<uint64_t> order(scores.size()), tmp(scores.size());
  for (size_t i = 0; i < order.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &scores[i], 4);
    // Float order as unsigned order (-0 and +0 compare equal as floats: make them one key),
    // inverted so that an ascending sort puts the highest score first.
    if (scores[i] == 0) bits = 0;
    const uint32_t key = bits & 0x80000000u ? ~bits : bits | 0x80000000u;
    order[i] = uint64_t(~key) << 32 | uint32_t(i);
  }
  for (int shift : {32, 48}) {
    std::vector<uint32_t> start(65537, 0);
    for (uint64_t x : order) ++start[(x >> shift & 0xffff) + 1];
    for (size_t d = 1; d < start.size(); ++d) start[d] += start[d - 1];
    for (uint64_t x : order) tmp[start[x >> shift & 0xffff]++] = x;
    order.swap(tmp);
  }
  score_rank_.assign(scores.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && order[i] >> 32 != order[i - 1] >> 32) ++num_ranks_;
    score_rank_[uint32_t(order[i])] = int32_t(num_ranks_);
  }
  ++num_ranks_;
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    int32_t id = vocab.find(hex);
    if (id == kNoToken) {
      char c = char(b);
      id = vocab.find(std::string_view(&c, 1));
    }
    byte_tokens_[b] = id;
  }
  for (int32_t id = 0; id < int32_t(vocab.size()); ++id) {
    std::string_view t = vocab.text(id);
    for (size_t p = t.find(kSpace, 1); p != std::string_view::npos; p = t.find(kSpace, p + 1))
      joins_space_[uint8_t(t[p - 1])] = true;
  }
}

Status SpmModel::encode(std::string_view text, std::vector<int32_t>& out, Scratch& s) const {
  // Characters by lead byte, as llama.cpp splits them (invalid bytes included).
  size_t seg = 0;
  for (size_t off = 0; off < text.size();) {
    size_t n = std::min<size_t>(unicode::utf8_len(uint8_t(text[off])), text.size() - off);
    if (off > seg && n == 3 && text.compare(off, 3, kSpace) == 0 &&
        !joins_space_[uint8_t(text[off - 1])]) {
      KILN_RETURN_IF_ERROR(encode_segment(text.substr(seg, off - seg), out, s));
      seg = off;
    }
    off += n;
  }
  if (seg < text.size()) KILN_RETURN_IF_ERROR(encode_segment(text.substr(seg), out, s));
  return Status::Ok();
}

Status SpmModel::encode_segment(std::string_view text, std::vector<int32_t>& out,
                                Scratch& s) const {
  const bool cacheable = text.size() <= WordCache::kMaxKey;
  const uint64_t hash = cacheable ? hash_bytes(text) : 0;
  if (cacheable && cache_.find(text, hash, out)) return Status::Ok();
  using Symbol = Scratch::Symbol;
  auto& syms = s.syms;
  syms.clear();
  for (uint32_t off = 0; off < text.size();) {
    uint32_t n =
        uint32_t(std::min<size_t>(unicode::utf8_len(uint8_t(text[off])), text.size() - off));
    int32_t idx = int32_t(syms.size());
    syms.push_back(Symbol{off, n, idx - 1, off + n == text.size() ? -1 : idx + 1});
    off += n;
  }
  // llama.cpp's order: the highest score first, then the leftmost pair.
  RankQueue& q = s.queue;
  q.reset(num_ranks_, syms.size());
  auto try_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    uint32_t size = syms[left].n + syms[right].n;
    int32_t id = vocab_.find(text.substr(syms[left].start, size));
    if (id != kNoToken) q.push(score_rank_[id], MergeCandidate{left, right, int32_t(size)});
  };
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_pair(i - 1, i);
  int32_t rank;
  MergeCandidate c;
  while (q.pop(&rank, &c)) {
    Symbol& l = syms[c.pos];
    Symbol& r = syms[c.a];
    if (l.n == 0 || r.n == 0 || l.n + r.n != uint32_t(c.b)) continue;  // a side already merged
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.pos;
    try_pair(l.prev, c.pos);
    try_pair(c.pos, l.next);
  }
  // A symbol that is not a token can only be a single character (merges always make tokens),
  // so llama.cpp's resegment() reduces to the byte fallback here.
  std::vector<int32_t>& ids = s.ids;
  ids.clear();
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    std::string_view t = text.substr(syms[i].start, syms[i].n);
    int32_t id = vocab_.find(t);
    if (id != kNoToken) {
      ids.push_back(id);
      continue;
    }
    for (char ch : t) {
      int32_t b = byte_tokens_[uint8_t(ch)];
      if (b == kNoToken) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%02X", unsigned(uint8_t(ch)));
        return make_error("tokenizer: no token for byte 0x", hex, " (neither <0x", hex,
                          "> nor the byte itself)");
      }
      ids.push_back(b);
    }
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) cache_.insert(text, hash, ids.data(), ids.size());
  return Status::Ok();
}

}  // namespace kiln::gguf
