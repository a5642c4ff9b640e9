#include "frontends/gguf/tokenizer_bpe.h"

#include <algorithm>
#include <unordered_map>

#include "frontends/gguf/tokenizer_pretok.h"
#include "frontends/gguf/tokenizer_unicode.h"

namespace kiln::gguf {
namespace {

constexpr uint64_t kEmptyKey = ~uint64_t(0);

uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xFF51AFD7ED558CCDull;
  k ^= k >> 33;
  k *= 0xC4CEB9FE1A85EC53ull;
  k ^= k >> 33;
  return k;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return uint64_t(uint32_t(a)) << 32 | uint32_t(b);
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::build(const Vocab& vocab, const Metadata& md) {
  KILN_ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                        md.get_string_array("tokenizer.ggml.merges"));
  std::unique_ptr<BpeModel> m(new BpeModel(vocab));
  const int32_t n_vocab = int32_t(vocab.size());

  // Every symbol string that can occur gets an id: tokens keep theirs, the rest follow them.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return size_t(hash_bytes(s)); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> extra_ids;
  auto lookup = [&](std::string_view s) -> int32_t {
    int32_t id = vocab.find(s);
    if (id != kNoToken) return id;
    auto it = extra_ids.find(s);
    return it == extra_ids.end() ? kNoToken : it->second;
  };
  auto intern = [&](std::string_view s) -> int32_t {
    int32_t id = lookup(s);
    if (id != kNoToken) return id;
    id = n_vocab + int32_t(m->extra_.size());
    m->extra_.emplace_back(s);
    extra_ids.emplace(std::string(s), id);
    return id;
  };
  for (int b = 0; b < 256; ++b) {
    unicode::append_utf8(unicode::byte_to_codepoint(uint8_t(b)), m->byte_spelling_[b]);
    m->byte_sym_[b] = intern(m->byte_spelling_[b]);
  }
  // llama.cpp splits "left right" at the first space after the first byte.
  auto split = [](const std::string& line, std::string_view* l, std::string_view* r) {
    size_t sp = line.find(' ', 1);
    if (sp == std::string::npos) return false;
    *l = std::string_view(line).substr(0, sp);
    *r = std::string_view(line).substr(sp + 1);
    return true;
  };
  std::vector<int32_t> results(merges->size(), kNoToken);
  std::string joined;
  for (size_t i = 0; i < merges->size(); ++i) {
    std::string_view l, r;
    // llama.cpp asserts here (and aborts); a merge is "left right" with both sides non-empty.
    if (!split((*merges)[i], &l, &r) || r.empty())
      return make_error("tokenizer.ggml.merges[", i, "]: '", (*merges)[i],
                        "' is not two symbols separated by a space");
    joined.assign(l).append(r);
    results[i] = intern(joined);
  }
  m->num_ranks_ = merges->size();
  size_t cap = 16;
  while (cap < merges->size() * 2) cap *= 2;
  m->merge_keys_.assign(cap, kEmptyKey);
  m->merge_vals_.assign(cap, Merge{0, 0});
  for (size_t i = 0; i < merges->size(); ++i) {
    std::string_view l, r;
    split((*merges)[i], &l, &r);
    int32_t a = lookup(l), b = lookup(r);
    // A side that is neither a token, a byte nor the result of some merge can never be formed:
    // the merges do not belong to these tokens. (A result that is not a token is allowed;
    // llama.cpp spells such a symbol out in one-byte tokens.)
    if (a == kNoToken || b == kNoToken)
      return make_error("tokenizer.ggml.merges[", i, "]: '", (*merges)[i], "' uses '",
                        a == kNoToken ? l : r, "', which is no token and no merge's result");
    uint64_t key = pair_key(a, b);
    for (size_t j = mix(key) & (cap - 1);; j = (j + 1) & (cap - 1)) {
      if (m->merge_keys_[j] == key) break;  // the first rank of a repeated merge wins
      if (m->merge_keys_[j] == kEmptyKey) {
        m->merge_keys_[j] = key;
        m->merge_vals_[j] = Merge{int32_t(i), results[i]};
        break;
      }
    }
  }
  return m;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_keys_.size() - 1;
  for (size_t j = mix(key) & mask;; j = (j + 1) & mask) {
    if (merge_keys_[j] == key) return &merge_vals_[j];
    if (merge_keys_[j] == kEmptyKey) return nullptr;
  }
}

void BpeModel::merge_symbols(Scratch& s) const {
  const int32_t n = int32_t(s.sym.size());
  s.next.resize(n);
  s.prev.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    s.next[i] = i + 1 < n ? i + 1 : -1;
    s.prev[i] = i - 1;
  }
  if (n < 2) return;
  RankQueue& q = s.queue;
  q.reset(num_ranks_, size_t(n));
  auto push = [&](int32_t left) {
    const int32_t right = s.next[left];
    if (right < 0) return;
    if (const Merge* mg = find_merge(s.sym[left], s.sym[right]))
      q.push(mg->rank, MergeCandidate{left, s.sym[left], s.sym[right]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  int32_t rank;
  MergeCandidate c;
  while (q.pop(&rank, &c)) {
    const int32_t left = c.pos, right = s.next[left];
    // Stale: the left symbol grew or was swallowed, or its right neighbour changed.
    if (s.sym[left] != c.a || right < 0 || s.sym[right] != c.b) continue;
    s.sym[left] = find_merge(c.a, c.b)->result;
    s.sym[right] = -1;
    s.next[left] = s.next[right];
    if (s.next[right] >= 0) s.prev[s.next[right]] = left;
    if (s.prev[left] >= 0) push(s.prev[left]);
    push(left);
  }
}

void BpeModel::emit(int32_t sym, std::vector<int32_t>& out) const {
  if (sym < int32_t(vocab_.size())) {
    out.push_back(sym);
    return;
  }
  // Not a token: llama.cpp looks up each byte of its spelling as a one-byte token.
  for (char c : extra_[sym - vocab_.size()]) {
    int32_t id = vocab_.find(std::string_view(&c, 1));
    if (id != kNoToken) out.push_back(id);
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out, Scratch& s) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= WordCache::kMaxKey;
  const uint64_t hash = cacheable ? hash_bytes(word) : 0;
  if (cacheable && cache_.find(word, hash, out)) return;
  const size_t start = out.size();
  bool done = false;
  if (vocab_.ignore_merges) {
    s.spelled.clear();
    for (char c : word) s.spelled += byte_spelling_[uint8_t(c)];
    int32_t id = vocab_.find(s.spelled);
    if (id != kNoToken) {
      out.push_back(id);
      done = true;
    }
  }
  if (!done) {
    s.sym.resize(word.size());
    for (size_t i = 0; i < word.size(); ++i) s.sym[i] = byte_sym_[uint8_t(word[i])];
    merge_symbols(s);
    for (int32_t i = 0; i >= 0; i = s.next[i]) emit(s.sym[i], out);
  }
  if (cacheable) cache_.insert(word, hash, out.data() + start, out.size() - start);
}

void BpeModel::encode(std::string_view text, std::vector<int32_t>& out, Scratch& s) const {
  s.cps.clear();
  const bool lossless = unicode::decode_utf8(text, s.cps);
  s.cls.resize(s.cps.size());
  for (size_t i = 0; i < s.cps.size(); ++i) s.cls[i] = unicode::classify(s.cps[i]);
  pre_tokenize(vocab_.pre.splits, s.cps, s.cls, s.ends, s.ends2);
  // Words are the UTF-8 of their codepoints: slices of text unless decoding replaced bytes.
  uint32_t b = 0;
  size_t byte = 0;
  for (uint32_t e : s.ends) {
    if (lossless) {
      size_t len = 0;
      for (uint32_t i = b; i < e; ++i) len += unicode::utf8_size(s.cps[i]);
      encode_word(text.substr(byte, len), out, s);
      byte += len;
    } else {
      s.utf8.clear();
      for (uint32_t i = b; i < e; ++i) unicode::append_utf8(s.cps[i], s.utf8);
      encode_word(s.utf8, out, s);
    }
    b = e;
  }
}

}  // namespace kiln::gguf
