// The hand-written pre-tokenizer splitters against (1) llama.cpp's own unicode_regex_split on the
// corpus (tests/data/tokenizer/splits.json) and (2) PCRE2 running the same regexes, on the
// corpus and on random strings. PCRE2 is opened with dlopen (libpcre2-32), so nothing links it;
// the test skips when it is not installed. Its \p{..} classes are written out from our tables,
// so (2) checks the splitting logic; a third test compares the tables with PCRE2's own.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "frontends/gguf/tokenizer_pretok.h"
#include "frontends/gguf/tokenizer_unicode.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

using nlohmann::json;
namespace uc = unicode;

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

std::vector<std::string> corpus() {
  json j = json::parse(test::read_file(test::data_dir() + "/tokenizer/corpus.json"));
  std::vector<std::string> out;
  for (const json& e : j)
    out.push_back(e.contains("hex") ? unhex(e["hex"].get<std::string>())
                                    : e["text"].get<std::string>());
  return out;
}

const char* kFamilies[] = {"gpt2", "smollm", "llama3", "qwen2", "default", "falcon"};

// Piece end offsets (codepoints) from our splitters.
std::vector<uint32_t> ours(const std::string& family, const std::vector<uint32_t>& cps) {
  auto pre = pre_tokenizer_for(family);
  EXPECT_TRUE(pre.ok()) << pre.message();
  std::vector<uint8_t> cls(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) cls[i] = uc::classify(cps[i]);
  std::vector<uint32_t> ends, scratch;
  pre_tokenize(pre->splits, cps, cls, ends, scratch);
  return ends;
}

TEST(TokenizerPretok, MatchesLlamaCppOnCorpus) {
  json g = json::parse(test::read_file(test::data_dir() + "/tokenizer/splits.json"));
  auto strings = corpus();
  int checked = 0;
  for (const char* fam : kFamilies) {
    const json& want_all = g["pieces"][fam];
    ASSERT_EQ(want_all.size(), strings.size()) << fam;
    for (size_t i = 0; i < strings.size(); ++i) {
      std::vector<uint32_t> cps;
      uc::decode_utf8(strings[i], cps);
      std::vector<uint32_t> ends = ours(fam, cps);
      std::vector<size_t> got;  // byte lengths of the pieces' UTF-8
      uint32_t b = 0;
      for (uint32_t e : ends) {
        std::string u;
        for (uint32_t k = b; k < e; ++k) uc::append_utf8(cps[k], u);
        got.push_back(u.size());
        b = e;
      }
      EXPECT_EQ(got, want_all[i].get<std::vector<size_t>>()) << fam << " string #" << i;
      ++checked;
    }
  }
  std::printf("pre-tokenizer pieces equal llama.cpp's for %d (family x string)\n", checked);
}

// ---- PCRE2 through dlopen ----------------------------------------------------------------------

struct Pcre2 {
  using Compile = void* (*)(const uint32_t*, size_t, uint32_t, int*, size_t*, void*);
  using MatchDataCreate = void* (*)(const void*, void*);
  using Match = int (*)(const void*, const uint32_t*, size_t, size_t, uint32_t, void*, void*);
  using Ovector = size_t* (*)(void*);
  using Free = void (*)(void*);
  void* lib = nullptr;
  Compile compile = nullptr;
  MatchDataCreate md_create = nullptr;
  Match match = nullptr;
  Ovector ovector = nullptr;
  Free md_free = nullptr, code_free = nullptr;

  static Pcre2& get() {
    static Pcre2 p = [] {
      Pcre2 q;
      q.lib = dlopen("libpcre2-32.so.0", RTLD_NOW | RTLD_LOCAL);
      if (!q.lib) return q;
      q.compile = reinterpret_cast<Compile>(dlsym(q.lib, "pcre2_compile_32"));
      q.md_create = reinterpret_cast<MatchDataCreate>(
          dlsym(q.lib, "pcre2_match_data_create_from_pattern_32"));
      q.match = reinterpret_cast<Match>(dlsym(q.lib, "pcre2_match_32"));
      q.ovector = reinterpret_cast<Ovector>(dlsym(q.lib, "pcre2_get_ovector_pointer_32"));
      q.md_free = reinterpret_cast<Free>(dlsym(q.lib, "pcre2_match_data_free_32"));
      q.code_free = reinterpret_cast<Free>(dlsym(q.lib, "pcre2_code_free_32"));
      if (!q.compile || !q.md_create || !q.match || !q.ovector || !q.md_free || !q.code_free)
        q.lib = nullptr;
      return q;
    }();
    return p;
  }
};

constexpr uint32_t kPcre2Utf = 0x00080000u, kPcre2Ucp = 0x00020000u;

class Regex {
 public:
  Regex(const std::string& pattern, uint32_t options = 0) {
    Pcre2& p = Pcre2::get();
    std::vector<uint32_t> pat(pattern.begin(), pattern.end());
    int err = 0;
    size_t off = 0;
    code_ = p.compile(pat.data(), pat.size(), options, &err, &off, nullptr);
    EXPECT_NE(code_, nullptr) << "pcre2 error " << err << " at " << off << " in "
                              << pattern.substr(0, 200);
    if (code_) md_ = p.md_create(code_, nullptr);
  }
  ~Regex() {
    if (md_) Pcre2::get().md_free(md_);
    if (code_) Pcre2::get().code_free(code_);
  }
  // Start and end of the first match at or after `from`, or false.
  bool find(const uint32_t* s, size_t n, size_t from, size_t* b, size_t* e) const {
    int rc = Pcre2::get().match(code_, s, n, from, 0, md_, nullptr);
    if (rc < 0) return false;
    size_t* ov = Pcre2::get().ovector(md_);
    *b = ov[0];
    *e = ov[1];
    return true;
  }

 private:
  void* code_ = nullptr;
  void* md_ = nullptr;
};

// "\x{a}-\x{b}..." for the codepoints our table puts in a class.
std::string ranges(bool (*pred)(uint32_t)) {
  std::string s;
  char buf[48];
  for (uint32_t cp = 0; cp <= 0x10FFFF;) {
    if (!pred(cp)) {
      ++cp;
      continue;
    }
    uint32_t end = cp;
    while (end + 1 <= 0x10FFFF && pred(end + 1)) ++end;
    std::snprintf(buf, sizeof buf, end > cp ? "\\x{%x}-\\x{%x}" : "\\x{%x}", cp, end);
    s += buf;
    cp = end + 1;
  }
  return s;
}

struct Classes {
  std::string L, N, P, W;
  Classes() {
    L = ranges([](uint32_t c) { return uc::is_letter(uc::classify(c)); });
    N = ranges([](uint32_t c) { return uc::is_number(uc::classify(c)); });
    P = ranges([](uint32_t c) { return uc::is_punctuation(uc::classify(c)); });
    W = ranges([](uint32_t c) { return uc::is_space(uc::classify(c)); });
  }
};

// The regexes of each family with \p{L}, \p{N}, \p{P}, \s, \S spelled out.
std::vector<std::string> regexes(const std::string& fam, const Classes& c) {
  const std::string L = "[" + c.L + "]", N = "[" + c.N + "]", W = "[" + c.W + "]",
                    notS = "[^" + c.W + "]", other = "[^" + c.W + c.L + c.N + "]";
  const std::string gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?" + L + "+| ?" + N + "+| ?" + other + "+|" +
                           W + "+(?!" + notS + ")";
  auto llama3 = [&](const std::string& digits) {
    return "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\\r\\n" + c.L + c.N + "]?" + L +
           "+|" + N + digits + "| ?" + other + "+[\\r\\n]*|" + W + "*[\\r\\n]+|" + W + "+(?!" +
           notS + ")|" + W + "+";
  };
  if (fam == "gpt2") return {gpt2};
  if (fam == "smollm") return {N, gpt2};
  if (fam == "llama3") return {llama3("{1,3}")};
  if (fam == "qwen2") return {llama3("")};
  if (fam == "default") return {"[" + c.P + "\\$\\+<=>\\^~\\|]+", gpt2, N + "+", "[0-9][0-9][0-9]"};
  if (fam == "falcon") return {"[" + c.P + "\\$\\+<=>\\^~\\|`]+", gpt2, "[0-9][0-9][0-9]"};
  ADD_FAILURE() << fam;
  return {};
}

// Regex split: each piece becomes its matches and the gaps between them.
std::vector<uint32_t> pcre_split(const std::vector<Regex*>& res, const std::vector<uint32_t>& cps) {
  std::vector<uint32_t> ends;
  if (cps.empty()) return ends;
  ends.push_back(uint32_t(cps.size()));
  for (const Regex* re : res) {
    std::vector<uint32_t> next;
    uint32_t b = 0;
    for (uint32_t e : ends) {
      size_t pos = 0, mb, me;
      const size_t n = e - b;
      while (pos < n && re->find(cps.data() + b, n, pos, &mb, &me)) {
        if (mb > pos) next.push_back(uint32_t(b + mb));
        if (me == mb) me = mb + 1;  // no regex here matches empty; never loop
        next.push_back(uint32_t(b + me));
        pos = me;
      }
      if (pos < n) next.push_back(e);
      b = e;
    }
    ends.swap(next);
  }
  return ends;
}

std::vector<uint32_t> random_codepoints(std::mt19937& rng) {
  static const std::vector<std::pair<uint32_t, uint32_t>> pools = {
      {0x20, 0x7E},       {0x20, 0x7E},       {0x09, 0x0D},       {'0', '9'},
      {0x80, 0x17F},      {0x300, 0x36F},     {0x4E00, 0x4E7F},   {0x3040, 0x30FF},
      {0x600, 0x6FF},     {0x900, 0x97F},     {0x1F600, 0x1F64F}, {0x2000, 0x206F},
      {0xFF00, 0xFF5F},   {0x2150, 0x218F},   {0xD7F0, 0xE010},   {0, 0x10FFFF},
      {0x2EBF0, 0x2EBFF}, {0x11F00, 0x11F5F}, {'\'', '\''},       {'s', 's'},
      {'S', 'S'},         {' ', ' '},         {'\n', '\n'},       {'\r', '\r'},
      {0x85, 0x85},       {0x3000, 0x3000},   {0x180E, 0x180E}};
  std::vector<uint32_t> cps(rng() % 48);
  size_t a = rng() % pools.size(), b = rng() % pools.size();
  for (uint32_t& c : cps) {
    const auto& [lo, hi] = pools[rng() % 3 == 0 ? rng() % pools.size() : (rng() % 2 ? a : b)];
    c = lo + rng() % (hi - lo + 1);
  }
  return cps;
}

TEST(TokenizerPretok, MatchesPcre2) {
  if (!Pcre2::get().lib)
    GTEST_SKIP() << "libpcre2-32.so.0 not installed (apt-get install libpcre2-dev)";
  Classes classes;
  auto strings = corpus();
  std::mt19937 rng(42);
  std::vector<std::vector<uint32_t>> inputs;
  for (const std::string& s : strings) {
    inputs.emplace_back();
    uc::decode_utf8(s, inputs.back());
  }
  for (int i = 0; i < 20000; ++i) inputs.push_back(random_codepoints(rng));
  for (const char* fam : kFamilies) {
    std::vector<std::unique_ptr<Regex>> owned;
    std::vector<Regex*> res;
    for (const std::string& r : regexes(fam, classes)) {
      owned.push_back(std::make_unique<Regex>(r));
      res.push_back(owned.back().get());
    }
    int bad = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto want = pcre_split(res, inputs[i]);
      auto got = ours(fam, inputs[i]);
      if (got != want && ++bad <= 5) {
        std::string cps;
        for (uint32_t c : inputs[i]) cps += std::to_string(c) + " ";
        ADD_FAILURE() << fam << " input #" << i << " codepoints: " << cps;
      }
    }
    EXPECT_EQ(bad, 0) << fam;
    std::printf("%-8s splitter vs PCRE2: %d of %zu strings differ (%zu corpus + random)\n", fam,
                bad, inputs.size(), strings.size());
  }
}

// Our Unicode 15.1 tables against PCRE2's own (its Unicode version is older): every difference
// must be a codepoint PCRE2 does not know yet (\p{Cn}), or U+180E, which PCRE2 keeps in \s
// while White_Space dropped it in Unicode 6.3.
TEST(TokenizerPretok, TablesAgreeWithPcre2) {
  if (!Pcre2::get().lib) GTEST_SKIP() << "libpcre2-32.so.0 not installed";
  const uint32_t opts = kPcre2Utf | kPcre2Ucp;
  Regex unassigned("^\\p{Cn}$", opts), letter("^\\p{L}$", opts), number("^\\p{N}$", opts),
      punct("^\\p{P}$", opts), space("^\\s$", opts);
  int newer = 0, checked = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // not characters in PCRE2's UTF mode
    size_t b, e;
    const uint8_t c = uc::classify(cp);
    bool diff = letter.find(&cp, 1, 0, &b, &e) != uc::is_letter(c) ||
                number.find(&cp, 1, 0, &b, &e) != uc::is_number(c) ||
                punct.find(&cp, 1, 0, &b, &e) != uc::is_punctuation(c) ||
                (space.find(&cp, 1, 0, &b, &e) != uc::is_space(c) && cp != 0x180E);
    ++checked;
    if (!diff) continue;
    if (unassigned.find(&cp, 1, 0, &b, &e)) {
      ++newer;
      continue;
    }
    ADD_FAILURE() << "category of U+" << std::hex << cp << " differs from PCRE2's";
  }
  std::printf(
      "Unicode %s tables: %d codepoints checked against PCRE2, %d differ only because "
      "PCRE2's Unicode is older\n",
      uc::version(), checked, newer);
}

}  // namespace
}  // namespace kiln::gguf
