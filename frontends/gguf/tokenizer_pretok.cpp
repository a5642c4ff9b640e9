#include "frontends/gguf/tokenizer_pretok.h"

#include <array>

#include "frontends/gguf/tokenizer_unicode.h"

namespace kiln::gguf {
namespace {

using unicode::is_letter;
using unicode::is_number;
using unicode::is_space;

// A family of names that share llama.cpp's regexes and defaults.
struct Family {
  const char* family;
  std::vector<Split> splits;
  bool ignore_merges, add_bos, no_bos;
  std::vector<std::pair<const char*, bool>> names;  // name, clean_spaces
};

const std::vector<Family>& families() {
  using S = Split;
  static const std::vector<Family> f = {
      {"default",
       {S::kPunctRuns, S::kGpt2, S::kNumberRuns, S::kAsciiTriples},
       false,
       false,
       false,
       {{"default", true}}},
      {"llama3",
       {S::kLlama3},
       true,
       true,
       false,
       {{"llama3", true},
        {"llama-v3", true},
        {"llama-bpe", true},
        {"falcon3", true},
        {"falcon-h1", true},
        {"pixtral", true},
        {"midm-2.0", true},
        {"lfm2", true},
        {"jina-v5-nano", true}}},
      {"llama3", {S::kLlama3}, false, false, false, {{"dbrx", true}, {"smaug-bpe", true}}},
      {"llama3", {S::kLlama3}, false, false, true, {{"glm4", true}, {"chatglm-bpe", true}}},
      {"falcon",
       {S::kPunctRunsTick, S::kGpt2, S::kAsciiTriples},
       false,
       false,
       false,
       {{"falcon", true}}},
      // "gpt2" is not a name llama.cpp knows (it says "gpt-2"); it is the obvious spelling.
      {"gpt2",
       {S::kGpt2},
       false,
       false,
       false,
       {{"gpt2", true},        {"gpt-2", true},
        {"phi-2", true},       {"jina-es", true},
        {"jina-de", true},     {"gigachat", true},
        {"jina-v2-es", true},  {"jina-v2-de", true},
        {"a.x-4.0", true},     {"mellum", true},
        {"modern-bert", true}, {"exaone4", true},
        {"jina-v1-en", true},  {"jina-v2-code", true},
        {"roberta-bpe", true}, {"mpt", true},
        {"olmo", true},        {"jais", true},
        {"trillion", false},   {"granite-docling", false}}},
      {"smollm",
       {S::kEachNumber, S::kGpt2},
       false,
       false,
       false,
       {{"smollm", false},
        {"starcoder", true},
        {"refact", true},
        {"command-r", false},
        {"codeshell", true},
        {"exaone", true},
        {"minerva-7b", true},
        {"mellum2", true}}},
      {"qwen2",
       {S::kQwen2},
       false,
       false,
       false,
       {{"qwen2", false},
        {"deepseek-r1-qwen", false},
        {"kormo", false},
        {"f2llmv2", false},
        {"megrez", true},
        {"stablelm2", true},
        {"hunyuan", false},
        {"solar-open", false},
        {"grok-2", false}}},
  };
  return f;
}

bool ascii_digit(uint32_t c) {
  return c >= '0' && c <= '9';
}
uint32_t ascii_lower(uint32_t c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

// Pieces where a predicate changes value: the matches of [class]+ and the gaps between them.
template <typename Pred>
void split_runs(const uint32_t* cp, const uint8_t* cls, uint32_t b, uint32_t e, Pred pred,
                std::vector<uint32_t>& out) {
  bool cur = pred(cp[b], cls[b]);
  for (uint32_t i = b + 1; i < e; ++i) {
    bool v = pred(cp[i], cls[i]);
    if (v != cur) out.push_back(i);
    cur = v;
  }
  out.push_back(e);
}

// \p{N}: every number codepoint alone; the runs between them are gaps.
void split_each_number(const uint8_t* cls, uint32_t b, uint32_t e, std::vector<uint32_t>& out) {
  for (uint32_t i = b; i < e; ++i) {
    if (is_number(cls[i])) {
      if (i > b && (out.empty() || out.back() != i)) out.push_back(i);
      out.push_back(i + 1);
    }
  }
  if (out.empty() || out.back() != e) out.push_back(e);
}

// [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits.
void split_ascii_triples(const uint32_t* cp, uint32_t b, uint32_t e, std::vector<uint32_t>& out) {
  uint32_t gap = b;
  for (uint32_t i = b; i + 3 <= e;) {
    if (ascii_digit(cp[i]) && ascii_digit(cp[i + 1]) && ascii_digit(cp[i + 2])) {
      if (i > gap) out.push_back(i);
      out.push_back(i + 3);
      i += 3;
      gap = i;
    } else {
      ++i;
    }
  }
  if (gap < e) out.push_back(e);
}

// Length of a contraction ('s 't 'm 'd 're 've 'll) at i, 0 if none.
uint32_t contraction(const uint32_t* cp, uint32_t i, uint32_t e, bool any_case) {
  if (cp[i] != '\'' || i + 1 >= e) return 0;
  auto low = [&](uint32_t c) { return any_case ? ascii_lower(c) : c; };
  uint32_t a = low(cp[i + 1]);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= e) return 0;
  uint32_t z = low(cp[i + 2]);
  if ((a == 'r' && z == 'e') || (a == 'v' && z == 'e') || (a == 'l' && z == 'l')) return 3;
  return 0;
}

// Neither \s, \p{L} nor \p{N}: what [^\s\p{L}\p{N}] matches.
bool is_other(uint8_t c) {
  return !is_space(c) && !is_letter(c) && !is_number(c);
}

// Which of \p{L}, \p{N} and [^\s\p{L}\p{N}] a non-space class belongs to (gpt2's " ?X+").
int word_kind(uint8_t c) {
  return is_letter(c) ? 1 : is_number(c) ? 2 : 3;
}

// Whitespace run at i: its length and, for llama3, the end of its last \r or \n (0 if none).
uint32_t space_run(const uint32_t* cp, const uint8_t* cls, uint32_t i, uint32_t e,
                   uint32_t* last_newline_end) {
  uint32_t j = i;
  *last_newline_end = 0;
  while (j < e && is_space(cls[j])) {
    if (cp[j] == '\r' || cp[j] == '\n') *last_newline_end = j + 1;
    ++j;
  }
  return j - i;
}

void split_gpt2(const uint32_t* cp, const uint8_t* cls, uint32_t b, uint32_t e,
                std::vector<uint32_t>& out) {
  uint32_t i = b;
  while (i < e) {
    if (uint32_t n = contraction(cp, i, e, false)) {
      i += n;
      out.push_back(i);
      continue;
    }
    // " ?X+" for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]: the class of the char after an optional
    // space decides; a space at the piece's end has nothing after it.
    uint32_t k = cp[i] == ' ' ? i + 1 : i;
    if (k < e && !is_space(cls[k])) {
      const int kind = word_kind(cls[k]);
      uint32_t j = k + 1;
      while (j < e && !is_space(cls[j]) && word_kind(cls[j]) == kind) ++j;
      out.push_back(j);
      i = j;
      continue;
    }
    uint32_t nl;
    uint32_t w = space_run(cp, cls, i, e, &nl);
    if (w > 1 && i + w < e) {
      i += w - 1;  // \s+(?!\S): leave the last space to the word after it
    } else {
      i += w > 0 ? w : 1;  // a lone space before a non-space matches nothing: a gap of one
    }
    out.push_back(i);
  }
}

void split_llama3(const uint32_t* cp, const uint8_t* cls, uint32_t b, uint32_t e,
                  uint32_t max_digits, std::vector<uint32_t>& out) {
  uint32_t i = b;
  while (i < e) {
    if (uint32_t n = contraction(cp, i, e, true)) {
      i += n;
      out.push_back(i);
      continue;
    }
    const uint32_t c = cp[i];
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !is_number(cls[i]) &&
        (is_letter(cls[i]) || (i + 1 < e && is_letter(cls[i + 1])))) {
      uint32_t j = i + 1;
      while (j < e && is_letter(cls[j])) ++j;
      out.push_back(j);
      i = j;
      continue;
    }
    // \p{N}{1,max}
    if (is_number(cls[i])) {
      uint32_t j = i;
      while (j < e && is_number(cls[j]) && j - i < max_digits) ++j;
      out.push_back(j);
      i = j;
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    uint32_t k = c == ' ' ? i + 1 : i;
    if (k < e && is_other(cls[k])) {
      uint32_t j = k + 1;
      while (j < e && is_other(cls[j])) ++j;
      while (j < e && (cp[j] == '\r' || cp[j] == '\n')) ++j;
      out.push_back(j);
      i = j;
      continue;
    }
    uint32_t nl;
    uint32_t w = space_run(cp, cls, i, e, &nl);
    if (nl > 0) {
      i = nl;  // \s*[\r\n]+
    } else if (w > 1 && i + w < e) {
      i += w - 1;  // \s+(?!\S)
    } else {
      i += w > 0 ? w : 1;  // \s+, or a codepoint nothing matches
    }
    out.push_back(i);
  }
}

bool in_ascii_set(uint32_t c, const char* set) {
  for (const char* p = set; *p; ++p)
    if (c == uint32_t(uint8_t(*p))) return true;
  return false;
}

void split_one(Split s, const uint32_t* cp, const uint8_t* cls, uint32_t b, uint32_t e,
               std::vector<uint32_t>& out) {
  switch (s) {
    case Split::kEachNumber:
      return split_each_number(cls, b, e, out);
    case Split::kNumberRuns:
      return split_runs(
          cp, cls, b, e, [](uint32_t, uint8_t c) { return is_number(c); }, out);
    case Split::kAsciiTriples:
      return split_ascii_triples(cp, b, e, out);
    case Split::kPunctRuns:
      return split_runs(
          cp, cls, b, e,
          [](uint32_t c, uint8_t k) {
            return unicode::is_punctuation(k) || in_ascii_set(c, "$+<=>^~|");
          },
          out);
    case Split::kPunctRunsTick:
      return split_runs(
          cp, cls, b, e,
          [](uint32_t c, uint8_t k) {
            return unicode::is_punctuation(k) || in_ascii_set(c, "$+<=>^~|`");
          },
          out);
    case Split::kGpt2:
      return split_gpt2(cp, cls, b, e, out);
    case Split::kLlama3:
      return split_llama3(cp, cls, b, e, 3, out);
    case Split::kQwen2:
      return split_llama3(cp, cls, b, e, 1, out);
  }
}

}  // namespace

Result<PreTokenizer> pre_tokenizer_for(std::string_view name) {
  std::string_view want = name.empty() ? "default" : name;
  for (const Family& f : families()) {
    for (const auto& [n, clean] : f.names) {
      if (want != n) continue;
      PreTokenizer p;
      p.family = f.family;
      p.splits = f.splits;
      p.ignore_merges = f.ignore_merges;
      p.add_bos = f.add_bos;
      p.no_bos = f.no_bos;
      p.clean_spaces = clean;
      return p;
    }
  }
  return make_error("tokenizer.ggml.pre: pre-tokenizer '", name,
                    "' is not supported (supported families: default, gpt2, llama3, qwen2, "
                    "smollm, falcon)");
}

void pre_tokenize(const std::vector<Split>& splits, const std::vector<uint32_t>& cps,
                  const std::vector<uint8_t>& cls, std::vector<uint32_t>& ends,
                  std::vector<uint32_t>& scratch) {
  ends.clear();
  if (cps.empty()) return;
  ends.push_back(uint32_t(cps.size()));
  for (Split s : splits) {
    scratch.clear();
    uint32_t b = 0;
    for (uint32_t e : ends) {
      split_one(s, cps.data(), cls.data(), b, e, scratch);
      b = e;
    }
    ends.swap(scratch);
  }
}

}  // namespace kiln::gguf
