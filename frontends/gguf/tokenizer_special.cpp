#include "frontends/gguf/tokenizer_special.h"

#include <algorithm>

namespace kiln::gguf {
namespace {

bool is_c_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

SpecialMatcher::SpecialMatcher(const Vocab& vocab) : vocab_(vocab) {
  // Build with per-node child lists, then flatten.
  struct Node {
    int32_t rank = -1;
    std::vector<std::pair<uint8_t, int32_t>> kids;
  };
  std::vector<Node> nodes(1);
  for (size_t rank = 0; rank < vocab.special.size(); ++rank) {
    int32_t node = 0;
    for (char ch : vocab.text(vocab.special[rank])) {
      auto& kids = nodes[node].kids;
      auto it =
          std::find_if(kids.begin(), kids.end(), [&](auto& k) { return k.first == uint8_t(ch); });
      if (it != kids.end()) {
        node = it->second;
        continue;
      }
      int32_t next = int32_t(nodes.size());
      kids.emplace_back(uint8_t(ch), next);
      nodes.emplace_back();
      node = next;
    }
    if (node > 0 && nodes[node].rank < 0) nodes[node].rank = int32_t(rank);
  }
  root_kids_.fill(-1);
  for (auto [b, n] : nodes[0].kids) root_kids_[b] = n;
  for (const Node& n : nodes) {
    kid_begin_.push_back(uint32_t(kid_byte_.size()));
    for (auto [b, k] : n.kids) {
      kid_byte_.push_back(b);
      kid_node_.push_back(k);
    }
    rank_all_.push_back(n.rank);
    const bool user =
        n.rank >= 0 && !(vocab.attrs[vocab.special[n.rank]] & (kAttrControl | kAttrUnknown));
    rank_user_.push_back(user ? n.rank : -1);
  }
  kid_begin_.push_back(uint32_t(kid_byte_.size()));
}

void SpecialMatcher::partition(std::string_view text, bool parse_special,
                               std::vector<Fragment>& out, Method method) const {
  out.clear();
  if (text.empty()) return;
  const uint32_t n = uint32_t(text.size());
  const int32_t* node_rank = parse_special ? rank_all_.data() : rank_user_.data();

  // One trie walk per position finds every occurrence of every special text. Usually there are
  // few, and they are resolved directly (resolve_occurrences); a text that is one long run of
  // nested tokens ("\n" x 1M against "\n" .. "\n" x 31) has too many to keep, and is then
  // split token by token, searching each only where it occurs (split_by_search).
  const size_t cap = method == Method::kSearch        ? 0
                     : method == Method::kOccurrences ? SIZE_MAX - 1
                                                      : size_t(n) * 2 + 64;
  std::vector<Occurrence> occ;
  std::vector<Span> spans;
  std::vector<int32_t> present;
  for (uint32_t p = 0; p < n; ++p) {
    int32_t node = root_kids_[uint8_t(text[p])];
    for (uint32_t d = p + 1; node > 0; ++d) {
      const int32_t rank = node_rank[node];
      if (rank >= 0) {
        if (spans.empty()) spans.resize(vocab_.special.size());
        Span& s = spans[rank];
        if (s.first == kNone) {
          s.first = p;
          present.push_back(rank);
        }
        s.last = p;
        if (occ.size() <= cap) occ.push_back({rank, p});
      }
      if (d >= n) break;
      node = child(node, uint8_t(text[d]));
    }
  }
  if (present.empty()) {
    out.push_back({0, n, kNoToken});
    return;
  }
  if (occ.size() <= cap && method != Method::kSearch) {
    resolve_occurrences(text, occ, out);
  } else {
    std::sort(present.begin(), present.end());
    split_by_search(text, present, spans, out);
  }
}

// Tokens in rank order; each takes, left to right, its occurrences that lie wholly in text no
// earlier token took and do not overlap its own previous match -- exactly what llama.cpp's
// per-fragment std::string::find loop accepts.
void SpecialMatcher::resolve_occurrences(std::string_view text, std::vector<Occurrence>& occ,
                                         std::vector<Fragment>& out) const {
  const uint32_t n = uint32_t(text.size());
  enum : uint8_t { kRaw = 0, kTaken = 1, kStripped = 2 };
  std::vector<uint8_t> state(n, kRaw);
  std::vector<Fragment> matches;
  std::sort(occ.begin(), occ.end(), [](const Occurrence& a, const Occurrence& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
  });
  for (size_t i = 0; i < occ.size();) {
    const int32_t rank = occ[i].rank;
    const int32_t id = vocab_.special[rank];
    const uint32_t len = uint32_t(vocab_.text(id).size());
    const bool lstrip = vocab_.attrs[id] & kAttrLstrip, rstrip = vocab_.attrs[id] & kAttrRstrip;
    for (; i < occ.size() && occ[i].rank == rank; ++i) {
      // An occurrence overlapping the token's own previous match (or what its rstrip ate)
      // touches taken bytes too, so "wholly in raw text" is the whole test.
      const uint32_t p = occ[i].pos;
      bool raw = true;
      for (uint32_t k = p; k < p + len && raw; ++k) raw = state[k] == kRaw;
      if (!raw) continue;
      std::fill(state.begin() + p, state.begin() + p + len, kTaken);
      matches.push_back({p, len, id});
      if (lstrip)
        for (uint32_t k = p; k > 0 && state[k - 1] == kRaw && is_c_space(text[k - 1]); --k)
          state[k - 1] = kStripped;
      if (rstrip)
        for (uint32_t k = p + len; k < n && state[k] == kRaw && is_c_space(text[k]); ++k)
          state[k] = kStripped;
    }
  }
  std::sort(matches.begin(), matches.end(),
            [](const Fragment& a, const Fragment& b) { return a.offset < b.offset; });
  // Raw text between matches, less what lstrip/rstrip removed at its ends.
  auto raw = [&](uint32_t b, uint32_t e) {
    while (b < e && state[b] == kStripped) ++b;
    while (e > b && state[e - 1] == kStripped) --e;
    if (e > b) out.push_back({b, e - b, kNoToken});
  };
  uint32_t cursor = 0;
  for (const Fragment& m : matches) {
    raw(cursor, m.offset);
    out.push_back({m.offset, 0, m.token});
    cursor = m.offset + m.length;
  }
  raw(cursor, n);
}

// The same result by searching: for each present token (rank order), every raw fragment that
// overlaps the span where the token occurs is split at the token's matches.
void SpecialMatcher::split_by_search(std::string_view text, const std::vector<int32_t>& present,
                                     const std::vector<Span>& spans,
                                     std::vector<Fragment>& out) const {
  const uint32_t n = uint32_t(text.size());
  out.push_back({0, n, kNoToken});
  std::vector<Fragment> next;
  for (int32_t rank : present) {
    const int32_t id = vocab_.special[rank];
    const std::string_view tok = vocab_.text(id);
    const uint32_t len = uint32_t(tok.size());
    const bool lstrip = vocab_.attrs[id] & kAttrLstrip, rstrip = vocab_.attrs[id] & kAttrRstrip;
    const Span span = spans[rank];
    bool changed = false;
    next.clear();
    for (const Fragment& f : out) {
      const uint32_t end = f.offset + f.length;
      if (f.token != kNoToken || f.length < len || end <= span.first || f.offset > span.last) {
        next.push_back(f);
        continue;
      }
      uint32_t pos = f.offset;
      bool matched = false;
      for (;;) {
        size_t m = text.substr(0, end).find(tok, pos);
        if (m == std::string_view::npos) break;
        uint32_t left_end = uint32_t(m);
        if (lstrip)
          while (left_end > pos && is_c_space(text[left_end - 1])) --left_end;
        if (left_end > pos) next.push_back({pos, left_end - pos, kNoToken});
        next.push_back({uint32_t(m), 0, id});
        pos = uint32_t(m) + len;
        if (rstrip)
          while (pos < end && is_c_space(text[pos])) ++pos;
        matched = true;
      }
      if (!matched) {
        next.push_back(f);
        continue;
      }
      changed = true;
      if (pos < end) next.push_back({pos, end - pos, kNoToken});
    }
    if (changed) out.swap(next);
  }
}

}  // namespace kiln::gguf
