// Tokenizer behaviour on small vocabularies built in code (merges, scores, byte fallback,
// special tokens, EOG, decoding, streaming, errors), and on the real models with bad and huge
// inputs and through `kiln tokenize`. Parity with llama.cpp is in tokenizer_parity_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "frontends/gguf/tokenizer_special.h"
#include "frontends/gguf/tokenizer_unicode.h"
#include "frontends/gguf/tokenizer_vocab.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

// GPT-2 spelling of raw bytes ("hello world" -> "helloĠworld").
std::string spell(std::string_view raw) {
  std::string s;
  for (char c : raw) unicode::append_utf8(unicode::byte_to_codepoint(uint8_t(c)), s);
  return s;
}

// A byte-level BPE vocabulary: the 256 byte tokens (ids 0..255, byte order), then `extra`.
struct BpeSpec {
  std::vector<std::string> extra;                     // raw text, spelled here
  std::vector<std::string> merges;                    // raw "left right", spelled here
  std::vector<std::pair<std::string, int>> specials;  // raw text, token type (3 control, 4 user)
  std::string pre = "gpt2";
  std::string name;
};

Metadata bpe_md(const BpeSpec& spec) {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  for (int b = 0; b < 256; ++b) tokens.push_back(spell(std::string(1, char(b))));
  for (const auto& e : spec.extra) tokens.push_back(spell(e));
  types.assign(tokens.size(), 1);
  for (const auto& [text, type] : spec.specials) {
    tokens.push_back(text);
    types.push_back(type);
  }
  std::vector<std::string> merges;
  for (const auto& m : spec.merges) {
    size_t sp = m.find(' ', 1);
    merges.push_back(spell(m.substr(0, sp)) + " " + spell(m.substr(sp + 1)));
  }
  Metadata md;
  md.set("general.name", Value::of_string(spec.name));
  md.set("tokenizer.ggml.model", Value::of_string("gpt2"));
  md.set("tokenizer.ggml.pre", Value::of_string(spec.pre));
  md.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
  md.set("tokenizer.ggml.merges", Value::of_strings(merges));
  md.set("tokenizer.ggml.bos_token_id", Value::of_u32(uint32_t(tokens.size() - 1)));
  md.set("tokenizer.ggml.eos_token_id", Value::of_u32(uint32_t(tokens.size() - 1)));
  return md;
}

std::unique_ptr<Tokenizer> make(const Metadata& md) {
  auto t = Tokenizer::from_gguf(md);
  EXPECT_TRUE(t.ok()) << t.message();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<int32_t> enc(const Tokenizer& t, std::string_view s, bool add = false,
                         bool special = false) {
  auto r = t.encode(s, add, special);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : std::vector<int32_t>{};
}

int32_t id(const Tokenizer& t, std::string_view raw) {
  return t.find_token(spell(raw));
}
int32_t byte(char c) {
  return int32_t(uint8_t(c));
}

TEST(Tokenizer, BpeMergesByRank) {
  BpeSpec spec;
  spec.extra = {"he", "ll", "hell", "hello", " w", "or", " wor", "ld", " world"};
  spec.merges = {"h e", "l l", "he ll", "hell o", "  w", "o r", " w or", "l d", " wor ld"};
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "hello world"), (std::vector<int32_t>{id(*t, "hello"), id(*t, " world")}));
  EXPECT_EQ(t->decode(enc(*t, "hello world")), "hello world");
  EXPECT_EQ(enc(*t, "help"), (std::vector<int32_t>{id(*t, "he"), byte('l'), byte('p')}));
  EXPECT_TRUE(enc(*t, "").empty());
}

TEST(Tokenizer, BpeLowestRankFirstThenLeftmost) {
  BpeSpec spec;
  spec.extra = {"bc", "ab", "aa"};
  spec.merges = {"b c", "a b", "a a"};
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "abc"), (std::vector<int32_t>{byte('a'), id(*t, "bc")}));
  EXPECT_EQ(enc(*t, "aaa"), (std::vector<int32_t>{id(*t, "aa"), byte('a')}));
  EXPECT_EQ(enc(*t, "aaaa"), (std::vector<int32_t>{id(*t, "aa"), id(*t, "aa")}));
}

// A merge whose result is not a token: llama.cpp looks each byte of its spelling up as a
// one-byte token, so "ab" comes out as "a" "b" and " a" loses the space (Ġ is two bytes).
TEST(Tokenizer, BpeMergeResultMissingFromVocab) {
  BpeSpec spec;
  spec.merges = {"a b", "  a"};
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "ab"), (std::vector<int32_t>{byte('a'), byte('b')}));
  EXPECT_EQ(enc(*t, " a"), (std::vector<int32_t>{byte('a')}));
}

// A vocabulary whose texts fit in a short string: the text -> id map must not point into a
// string that moved (found by the fuzzer under ASan; this test fails there without the fix).
TEST(Tokenizer, TinyVocabularyKeepsItsTexts) {
  Metadata md;
  md.set("tokenizer.ggml.model", Value::of_string("gpt2"));
  md.set("tokenizer.ggml.pre", Value::of_string("gpt2"));
  md.set("tokenizer.ggml.tokens", Value::of_strings({"a", "b", "ab"}));
  md.set("tokenizer.ggml.merges", Value::of_strings({"a b"}));
  auto t = make(md);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->find_token("ab"), 2);
  EXPECT_EQ(enc(*t, "abba"), (std::vector<int32_t>{2, 1, 0}));
  EXPECT_EQ(t->decode(enc(*t, "abba")), "abba");
}

TEST(Tokenizer, Llama3TakesWholeWordTokens) {
  BpeSpec spec;
  spec.extra = {"ab", "abc"};
  spec.merges = {"a b"};
  spec.pre = "llama3";
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "abc"), (std::vector<int32_t>{id(*t, "abc")}));
  EXPECT_TRUE(t->add_bos());  // llama3's default
  EXPECT_EQ(enc(*t, "abc", true).front(), t->bos());
  spec.pre = "gpt2";
  auto g = make(bpe_md(spec));
  ASSERT_TRUE(g);
  EXPECT_EQ(enc(*g, "abc"), (std::vector<int32_t>{id(*g, "ab"), byte('c')}));
  EXPECT_FALSE(g->add_bos());
}

TEST(Tokenizer, SpecialTokensLongestFirst) {
  BpeSpec spec;
  spec.specials = {{"<|im_start|>", 3}, {"ab", 3}, {"bcd", 3}, {"<tag>", 4}};
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  const int32_t im = t->find_token("<|im_start|>"), tag = t->find_token("<tag>");
  EXPECT_EQ(enc(*t, "<|im_start|>x", false, true), (std::vector<int32_t>{im, byte('x')}));
  // Control tokens are text without parse_special; user-defined ones are matched either way.
  EXPECT_EQ(enc(*t, "<|im_start|>", false, false).size(), 12u);
  EXPECT_EQ(enc(*t, "x<tag>", false, false), (std::vector<int32_t>{byte('x'), tag}));
  // Longer tokens claim their text first, wherever they are: "bcd" wins over "ab".
  EXPECT_EQ(enc(*t, "abcd", false, true), (std::vector<int32_t>{byte('a'), t->find_token("bcd")}));
  EXPECT_EQ(enc(*t, "<|im_start|><|im_start|>", false, true), (std::vector<int32_t>{im, im}));
  EXPECT_EQ(t->decode(enc(*t, "x<|im_start|>y", false, true)), "xy");
  EXPECT_EQ(t->decode(enc(*t, "x<|im_start|>y", false, true), true), "x<|im_start|>y");
}

TEST(Tokenizer, Phi3SpecialTokensEatFollowingSpaces) {
  BpeSpec spec;
  spec.specials = {{"<|end|>", 3}};
  spec.name = "Phi-3 mini";
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "<|end|>  \nx", false, true),
            (std::vector<int32_t>{t->find_token("<|end|>"), byte('x')}));
}

// The two ways of finding special text (resolving all occurrences at once, or searching token
// by token as llama.cpp does) agree, with nested tokens and lstrip/rstrip in play.
TEST(Tokenizer, SpecialPartitionMethodsAgree) {
  std::mt19937 rng(11);
  const std::vector<std::string> alphabet = {"a", "b", "c",      "d",  "\n",   " ",    "<",
                                             ">", "x", "<mask>", "ab", "\n\n", "<|x|>"};
  for (const char* variant : {"plain", "Phi-3", "jina"}) {
    BpeSpec spec;
    spec.specials = {{"\n", 4},     {"\n\n", 4},  {"\n\n\n", 4}, {"ab", 3},  {"bcd", 3},
                     {"<mask>", 3}, {"<|x|>", 3}, {" a", 4},     {"cab", 4}, {"d d", 3}};
    if (std::string(variant) == "Phi-3") spec.name = "Phi-3";
    if (std::string(variant) == "jina") spec.pre = "jina-v2-de";
    auto vocab = load_vocab(bpe_md(spec));
    ASSERT_TRUE(vocab.ok()) << vocab.message();
    SpecialMatcher matcher(**vocab);
    for (int i = 0; i < 3000; ++i) {
      std::string text;
      for (int k = int(rng() % 24); k > 0; --k) text += alphabet[rng() % alphabet.size()];
      for (bool special : {false, true}) {
        std::vector<Fragment> a, b;
        matcher.partition(text, special, a, SpecialMatcher::Method::kOccurrences);
        matcher.partition(text, special, b, SpecialMatcher::Method::kSearch);
        ASSERT_EQ(a.size(), b.size()) << variant << " '" << text << "'";
        for (size_t k = 0; k < a.size(); ++k) {
          EXPECT_EQ(a[k].offset, b[k].offset) << variant << " '" << text << "' #" << k;
          EXPECT_EQ(a[k].length, b[k].length) << variant << " '" << text << "' #" << k;
          EXPECT_EQ(a[k].token, b[k].token) << variant << " '" << text << "' #" << k;
        }
      }
    }
  }
}

TEST(Tokenizer, EndOfGenerationSet) {
  BpeSpec spec;
  spec.extra = {"<|im_end|>"};  // a normal token by type: made control, as llama.cpp does
  spec.specials = {{"<|eot_id|>", 3}, {"<end_of_turn>", 3}, {"<|eom_id|>", 3}, {"<other>", 3}};
  Metadata md = bpe_md(spec);
  md.set("tokenizer.ggml.eos_token_id", Value::of_u32('.'));
  auto t = make(md);
  ASSERT_TRUE(t);
  const int32_t im_end = t->find_token("<|im_end|>");
  for (const char* s : {"<|eot_id|>", "<end_of_turn>", "<|eom_id|>"})
    EXPECT_TRUE(t->is_eog(t->find_token(s))) << s;
  EXPECT_TRUE(t->is_eog(t->eos()));
  EXPECT_TRUE(t->is_eog(im_end));
  EXPECT_TRUE(t->is_control(im_end));
  EXPECT_FALSE(t->is_eog(t->find_token("<other>")));
  EXPECT_FALSE(t->is_eog(byte('a')));
  EXPECT_FALSE(t->is_eog(-1));
  EXPECT_EQ(t->eom(), t->find_token("<|eom_id|>"));
  EXPECT_EQ(t->eot(), im_end);  // the lowest id among the candidates
}

TEST(Tokenizer, DecodeCleansSpacesForGpt2) {
  BpeSpec spec;
  spec.extra = {"Hello", " ,", " world", " !", " it", " 's", " ' "};
  auto t = make(bpe_md(spec));
  ASSERT_TRUE(t);
  std::vector<int32_t> ids = {id(*t, "Hello"), id(*t, " ,"),  id(*t, " world"),
                              id(*t, " !"),    id(*t, " it"), id(*t, " 's")};
  EXPECT_EQ(t->decode(ids), "Hello, world! it's");
  EXPECT_EQ(t->piece(id(*t, " ,")), " ,");
  // smollm does not clean up.
  spec.pre = "smollm";
  auto s = make(bpe_md(spec));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->decode(ids), "Hello , world ! it 's");
}

// A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then scored pieces.
Metadata spm_md(bool add_space_prefix) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int64_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    tokens.push_back(hex);
    types.push_back(6);
    scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {{"\xE2\x96\x81", -1},
                                                             {"h", -2},
                                                             {"e", -2},
                                                             {"l", -2},
                                                             {"o", -2},
                                                             {"he", -3},
                                                             {"ll", -3.5f},
                                                             {"hell", -4},
                                                             {"hello", -5},
                                                             {"\xE2\x96\x81hello", -6},
                                                             {"lo", -7}};
  for (const auto& [p, s] : pieces) {
    tokens.push_back(p);
    types.push_back(1);
    scores.push_back(s);
  }
  Metadata md;
  md.set("tokenizer.ggml.model", Value::of_string("llama"));
  md.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
  md.set("tokenizer.ggml.scores", Value::of_floats(scores));
  md.set("tokenizer.ggml.add_space_prefix", Value::of_bool(add_space_prefix));
  return md;
}

TEST(Tokenizer, SpmScoresSpacesAndByteFallback) {
  auto t = make(spm_md(true));
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->is_spm());
  const int32_t bos = t->bos(), hello = t->find_token("\xE2\x96\x81hello");
  EXPECT_EQ(bos, 1);
  EXPECT_EQ(enc(*t, "hello", true), (std::vector<int32_t>{bos, hello}));
  // "\xC3\xA9" is not a piece: its bytes, <0xC3> <0xA9>.
  auto ids = enc(*t, "hello\xC3\xA9");
  EXPECT_EQ(ids, (std::vector<int32_t>{hello, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode(ids), "hello\xC3\xA9");  // the prefix space is removed again
  EXPECT_EQ(t->piece(hello), " hello");
  EXPECT_EQ(t->piece(3 + 0x41), "A");
  EXPECT_EQ(t->newline(), 3 + 0x0A);
  auto plain = make(spm_md(false));
  ASSERT_TRUE(plain);
  EXPECT_EQ(enc(*plain, "hello"), (std::vector<int32_t>{plain->find_token("hello")}));
  EXPECT_EQ(enc(*plain, "", true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(enc(*plain, "").empty());
}

// Special ids and the add_bos/add_eos flags come from the metadata, over the model's defaults
// (SentencePiece: unk 0, bos 1, eos 2, add BOS); an id outside the vocabulary keeps the default.
TEST(Tokenizer, SpecialIdsAndFlagsFromMetadata) {
  Metadata md = spm_md(false);
  auto d = make(md);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->unk(), 0);
  EXPECT_EQ(d->bos(), 1);
  EXPECT_EQ(d->eos(), 2);
  EXPECT_EQ(d->pad(), -1);
  EXPECT_TRUE(d->add_bos());
  EXPECT_FALSE(d->add_eos());
  const int32_t hello = d->find_token("hello");
  md.set("tokenizer.ggml.add_bos_token", Value::of_bool(false));
  md.set("tokenizer.ggml.add_eos_token", Value::of_bool(true));
  md.set("tokenizer.ggml.eos_token_id", Value::of_u32(uint32_t(hello + 1)));
  md.set("tokenizer.ggml.padding_token_id", Value::of_u32(2));
  md.set("tokenizer.ggml.unknown_token_id", Value::of_u32(1u << 20));  // out of range
  auto t = make(md);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->eos(), hello + 1);
  EXPECT_EQ(t->pad(), 2);
  EXPECT_EQ(t->unk(), 0);
  EXPECT_FALSE(t->add_bos());
  EXPECT_TRUE(t->add_eos());
  EXPECT_EQ(enc(*t, "hello", true), (std::vector<int32_t>{hello, hello + 1}));
  EXPECT_EQ(enc(*t, "hello", false), (std::vector<int32_t>{hello}));
  EXPECT_EQ(enc(*t, "", true), (std::vector<int32_t>{hello + 1}));
  EXPECT_TRUE(t->is_eog(hello + 1));
  // Special-token text is a token only with parse_special; otherwise it is text.
  EXPECT_EQ(enc(*t, "<s>hello", false, true), (std::vector<int32_t>{1, hello}));
  EXPECT_NE(enc(*t, "<s>hello", false, false).front(), 1);
  EXPECT_EQ(t->decode(enc(*t, "<s>hello", false, false)), "<s>hello");
}

TEST(Tokenizer, StreamDecoderHoldsBackPartialUtf8) {
  auto t = make(spm_md(false));
  ASSERT_TRUE(t);
  StreamDecoder d(*t);
  std::string all;
  EXPECT_EQ(d.push(t->find_token("hello")), "hello");
  EXPECT_EQ(d.push(3 + 0xE2), "");
  EXPECT_EQ(d.push(3 + 0x82), "");
  EXPECT_EQ(d.push(3 + 0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(d.push(3 + 0xFF), "\xFF");  // invalid, not incomplete: out at once
  EXPECT_EQ(d.push(3 + 0xF0), "");
  EXPECT_EQ(d.push(1), "");  // a control token renders as nothing by default
  EXPECT_EQ(d.flush(), "\xF0");
  EXPECT_EQ(d.flush(), "");
  // Concatenated output equals decode() for any split of the same ids.
  std::vector<int32_t> ids = {t->find_token("hello"), 3 + 0xC3, 3 + 0xA9, 3 + 0xE2, 3 + 0x82};
  StreamDecoder d2(*t);
  for (int32_t i : ids) all += d2.push(i);
  all += d2.flush();
  EXPECT_EQ(all, t->decode(ids));
}

TEST(Tokenizer, BadMetadataIsAnError) {
  auto expect_error = [](const Metadata& md, const std::string& what) {
    auto t = Tokenizer::from_gguf(md);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.message().find(what), std::string::npos) << t.message();
  };
  BpeSpec spec;
  Metadata md = bpe_md(spec);
  md.set("tokenizer.ggml.model", Value::of_string("bert"));
  expect_error(md, "tokenizer.ggml.model");
  md = bpe_md(spec);
  md.erase("tokenizer.ggml.tokens");
  expect_error(md, "tokenizer.ggml.tokens");
  md = bpe_md(spec);
  md.erase("tokenizer.ggml.merges");
  expect_error(md, "tokenizer.ggml.merges");
  md = bpe_md(spec);
  md.set("tokenizer.ggml.pre", Value::of_string("tekken"));
  expect_error(md, "tekken");
  md = bpe_md(spec);
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, {1, 1}));
  expect_error(md, "tokenizer.ggml.token_type");
  md = bpe_md(spec);
  md.set("tokenizer.ggml.tokens", Value::of_strings({"a", "b", "a"}));
  md.erase("tokenizer.ggml.token_type");
  expect_error(md, "duplicate");
  md = bpe_md(spec);
  md.set("tokenizer.ggml.bos_token_id", Value::of_u32(1u << 30));  // out of range: none
  md.set("tokenizer.ggml.add_bos_token", Value::of_bool(true));
  md.set("tokenizer.ggml.tokens", Value::of_strings({"a", "b"}));
  md.erase("tokenizer.ggml.token_type");
  expect_error(md, "BOS");
  expect_error(Metadata(), "tokenizer.ggml.model");
  // Scores for a different number of tokens, shorter or longer.
  for (size_t extra : {size_t(0), size_t(2)}) {
    md = bpe_md(spec);
    const size_t n = md.find("tokenizer.ggml.tokens")->array_size();
    md.set("tokenizer.ggml.scores", Value::of_floats(std::vector<float>(n + extra - 1, -1.5f)));
    expect_error(md, "tokenizer.ggml.scores: " + std::to_string(n + extra - 1) + " scores for " +
                         std::to_string(n) + " tokens");
  }
  // A token type that llama.cpp does not define.
  md = bpe_md(spec);
  {
    const size_t n = md.find("tokenizer.ggml.tokens")->array_size();
    std::vector<int64_t> types(n, 1);
    types[7] = 9;
    md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
    expect_error(md, "tokenizer.ggml.token_type[7]: type 9");
    types[7] = -1;
    md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
    expect_error(md, "tokenizer.ggml.token_type[7]");
  }
  // Merges that are not "left right", or that use a symbol no token or merge can make.
  for (const char* bad : {"ab", "a ", "", " "}) {
    md = bpe_md(spec);
    md.set("tokenizer.ggml.merges", Value::of_strings({spell("a") + " " + spell("b"), bad}));
    expect_error(md, "tokenizer.ggml.merges[1]");
  }
  md = bpe_md(spec);
  md.set("tokenizer.ggml.merges", Value::of_strings({"a b", "ab c", "xyz q"}));
  expect_error(md, "tokenizer.ggml.merges[2]: 'xyz q' uses 'xyz'");
  md.set("tokenizer.ggml.merges", Value::of_ints(Type::I32, {1, 2}));
  expect_error(md, "tokenizer.ggml.merges");
  // The SentencePiece model: scores of the wrong length there too.
  Metadata spm;
  spm.set("tokenizer.ggml.model", Value::of_string("llama"));
  spm.set("tokenizer.ggml.tokens", Value::of_strings({"<unk>", "<s>", "</s>", "a"}));
  spm.set("tokenizer.ggml.scores", Value::of_floats({0.0f, 0.0f, -1.0f}));
  expect_error(spm, "tokenizer.ggml.scores");
  spm.set("tokenizer.ggml.scores", Value::of_strings({"x", "y", "z", "w"}));
  expect_error(spm, "tokenizer.ggml.scores");
}

TEST(Tokenizer, UnicodeHelpers) {
  std::vector<uint32_t> cps;
  unicode::decode_utf8("a\xC3\xA9\xFF\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80", cps);
  EXPECT_EQ(cps,
            (std::vector<uint32_t>{'a', 0xE9, 0xFFFD, 0, 0xD800, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_TRUE(unicode::is_letter(unicode::classify('a')));
  EXPECT_TRUE(unicode::is_number(unicode::classify(0x0663)));   // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(unicode::is_letter(unicode::classify(0x2EBF0)));  // new in Unicode 15.1
  EXPECT_TRUE(unicode::is_space(unicode::classify(0x3000)));
  EXPECT_FALSE(unicode::is_space(unicode::classify(0x1C)));  // Python's isspace() says yes
  EXPECT_EQ(unicode::utf8_valid_prefix("\xE2\x82"), -1);
  EXPECT_EQ(unicode::utf8_valid_prefix("\xE2\x82\xAC"), 3);
  EXPECT_EQ(unicode::utf8_valid_prefix("\xC0\x80"), 0);
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(unicode::codepoint_to_byte(unicode::byte_to_codepoint(uint8_t(b))), b);
}

// ---- the real models: bad and huge inputs ----------------------------------------------------

std::unique_ptr<Tokenizer> real(const std::string& path, std::unique_ptr<GgufFile>* keep) {
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << f.message();
  if (!f.ok()) return nullptr;
  *keep = std::move(*f);
  return make((*keep)->metadata());
}

void huge_inputs(const Tokenizer& t) {
  const size_t mb = 1 << 20;
  for (std::string s : {std::string(mb, 'a'), std::string(mb, ' '), std::string(mb, '\n'),
                        std::string(mb, '7'), std::string(mb, '\xff')}) {
    for (bool special : {false, true}) {
      auto ids = t.encode(s, true, special);
      ASSERT_TRUE(ids.ok()) << ids.message();
      EXPECT_FALSE(ids->empty());
      if (s[0] != '\xff') {
        EXPECT_EQ(t.decode(*ids), s);
      }
    }
  }
  std::string specials;
  while (specials.size() < mb) specials += "<|im_start|><start_of_turn><|im_end|><end_of_turn>";
  auto ids = t.encode(specials, false, true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(t.decode(*ids, true), specials);
}

TEST(TokenizerRealModel, SmolLM2HugeInputs) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  std::unique_ptr<GgufFile> f;
  auto t = real(path, &f);
  ASSERT_TRUE(t);
  huge_inputs(*t);
}

TEST(TokenizerRealModel, Gemma3HugeInputs) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  std::unique_ptr<GgufFile> f;
  auto t = real(path, &f);
  ASSERT_TRUE(t);
  huge_inputs(*t);
}

std::string random_utf8(std::mt19937& rng) {
  static const std::vector<std::pair<uint32_t, uint32_t>> pools = {
      {0x20, 0x7E},   {0x09, 0x0D},       {0xA0, 0x24F},    {0x300, 0x36F},    {0x4E00, 0x9FFF},
      {0x600, 0x6FF}, {0x1F300, 0x1FAFF}, {0x2000, 0x206F}, {0x10000, 0x3FFFF}};
  std::string s;
  for (int n = int(rng() % 64); n > 0; --n) {
    auto [lo, hi] = pools[rng() % pools.size()];
    uint32_t cp = lo + rng() % (hi - lo + 1);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    unicode::append_utf8(cp, s);
  }
  return s;
}

// Byte-level BPE round-trips valid UTF-8 made of bytes that have a token (SmolLM2 has none for
// 21 bytes, among them F1 and F2, the lead bytes of U+40000..U+BFFFF; llama.cpp drops those
// bytes and so do we); any bytes at all give ids, never a crash.
TEST(TokenizerRealModel, SmolLM2RandomRoundTrip) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  std::unique_ptr<GgufFile> f;
  auto t = real(path, &f);
  ASSERT_TRUE(t);
  std::mt19937 rng(5);
  for (int i = 0; i < 3000; ++i) {
    std::string s = random_utf8(rng);
    auto ids = t->encode(s, false, false);
    ASSERT_TRUE(ids.ok());
    ASSERT_EQ(t->decode(*ids), s) << i;
    StreamDecoder d(*t);
    std::string streamed;
    for (int32_t id : *ids) streamed += d.push(id);
    EXPECT_EQ(streamed + d.flush(), s);
    std::string bytes(rng() % 40, '\0');
    for (char& c : bytes) c = char(rng());
    for (bool special : {false, true}) ASSERT_TRUE(t->encode(bytes, true, special).ok());
  }
}

// One tokenizer, several threads (the word caches are shared): the same ids as one thread.
TEST(TokenizerRealModel, ConcurrentEncode) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  std::unique_ptr<GgufFile> f;
  auto t = real(path, &f);
  ASSERT_TRUE(t);
  std::mt19937 rng(9);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back(random_utf8(rng) + " the cat sat on the mat");
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(enc(*t, s, true, true));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = k; i < texts.size(); i += 1 + k) {
          auto ids = t->encode(texts[i], true, true);
          if (!ids.ok() || *ids != want[i]) ++bad[k];
        }
    });
  for (auto& th : threads) th.join();
  for (int k = 0; k < 4; ++k) EXPECT_EQ(bad[k], 0) << "thread " << k;
}

// ---- kiln tokenize ---------------------------------------------------------------------------

TEST(TokenizerCli, Tokenize) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto r = test::run_kiln("tokenize " + path + " '<|im_start|>Hello world' --special");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("     1 -> '<|im_start|>'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" -> ' world'"), std::string::npos) << r.out;
  r = test::run_kiln("tokenize " + path + " 'Hello world' --ids-only");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "19556 905\n");
  std::string file = test::temp_dir() + "/text.txt";
  std::ofstream(file) << "<|im_start|>";
  r = test::run_kiln("tokenize " + path + " -f " + file + " --ids-only --special --no-bos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  r = test::run_kiln("tokenize " + path);
  EXPECT_NE(r.exit_code, 0);
  r = test::run_kiln("tokenize /nonexistent.gguf hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("error"), std::string::npos);
}

TEST(TokenizerCli, GemmaAddsBos) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  auto r = test::run_kiln("tokenize " + path + " 'Hello' --ids-only");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 2), "2 ");
  r = test::run_kiln("tokenize " + path + " 'Hello' --ids-only --no-bos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.substr(0, 2), "2 ");
}

}  // namespace
}  // namespace kiln::gguf
