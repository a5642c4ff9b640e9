// kiln's tokenizers against llama.cpp on the real models: the goldens in tests/data/tokenizer/
// were made by scripts/goldens/make_tokenizer_goldens.py with llama-cpp-python.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "frontends/gguf/tokenizer_vocab.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

using nlohmann::json;

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

std::string show(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      o += char(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    }
  }
  return o.size() > 120 ? o.substr(0, 120) + "..." : o;
}

std::string show(const std::vector<int32_t>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size() && i < 40; ++i) o += (i ? " " : "") + std::to_string(v[i]);
  return o + (v.size() > 40 ? " ...]" : "]");
}

// The corpus strings, as bytes.
std::vector<std::pair<std::string, std::string>> corpus() {
  json j = json::parse(test::read_file(test::data_dir() + "/tokenizer/corpus.json"));
  std::vector<std::pair<std::string, std::string>> out;
  for (const json& e : j)
    out.emplace_back(e["tag"].get<std::string>(), e.contains("hex")
                                                      ? unhex(e["hex"].get<std::string>())
                                                      : e["text"].get<std::string>());
  return out;
}

struct Loaded {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
  json golden;
};

Loaded load(const std::string& path, const std::string& which) {
  Loaded l;
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << f.message();
  if (!f.ok()) return l;
  l.file = std::move(*f);
  auto t = Tokenizer::from_gguf(l.file->metadata());
  EXPECT_TRUE(t.ok()) << t.message();
  if (t.ok()) l.tok = std::move(*t);
  l.golden = json::parse(test::read_file(test::data_dir() + "/tokenizer/" + which + ".json"));
  return l;
}

void check_ids(const std::string& path, const std::string& which) {
  Loaded l = load(path, which);
  ASSERT_TRUE(l.tok);
  auto strings = corpus();
  const json& cases = l.golden["cases"];
  ASSERT_EQ(cases.size(), strings.size());
  int checked = 0, failed = 0, roundtrip = 0, roundtrip_expected = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string& text = strings[i].second;
    for (int flags = 0; flags < 4; ++flags) {
      const bool add_special = flags & 2, parse_special = flags & 1;
      auto want = cases[i]["ids"][flags].get<std::vector<int32_t>>();
      auto got = l.tok->encode(text, add_special, parse_special);
      ++checked;
      if (!got.ok() || *got != want) {
        ++failed;
        ADD_FAILURE() << which << " #" << i << " [" << strings[i].first
                      << "] add_special=" << add_special << " parse_special=" << parse_special
                      << " '" << show(text) << "'\n  want " << show(want) << "\n  got  "
                      << (got.ok() ? show(*got) : got.message());
      }
    }
    // Decoding llama.cpp's own ids gives llama.cpp's text.
    auto ids00 = cases[i]["ids"][0].get<std::vector<int32_t>>();
    auto ids01 = cases[i]["ids"][1].get<std::vector<int32_t>>();
    auto ids10 = cases[i]["ids"][2].get<std::vector<int32_t>>();
    EXPECT_EQ(show(l.tok->decode(ids00)), show(unhex(cases[i]["detok"]))) << which << " #" << i;
    EXPECT_EQ(show(l.tok->decode(ids01, true)), show(unhex(cases[i]["detok_special"])))
        << which << " #" << i;
    EXPECT_EQ(show(l.tok->decode(ids10)), show(unhex(cases[i]["detok_bos"]))) << which << " #" << i;
    // Round trip wherever llama.cpp's round-trips.
    if (unhex(cases[i]["detok"]) == text) {
      ++roundtrip_expected;
      auto ids = l.tok->encode(text, false, false);
      if (ids.ok() && l.tok->decode(*ids) == text) ++roundtrip;
    }
  }
  std::printf(
      "%s: %d/%d (string x flags) id lists equal llama.cpp's; round trip %d/%d "
      "(the strings llama.cpp round-trips, of %zu)\n",
      which.c_str(), checked - failed, checked, roundtrip, roundtrip_expected, strings.size());
  EXPECT_EQ(roundtrip, roundtrip_expected);
}

void check_vocab(const std::string& path, const std::string& which) {
  Loaded l = load(path, which);
  ASSERT_TRUE(l.tok);
  const json& g = l.golden;
  EXPECT_EQ(l.tok->vocab_size(), g["vocab_size"].get<size_t>());
  EXPECT_EQ(l.tok->bos(), g["bos"].get<int32_t>());
  EXPECT_EQ(l.tok->eos(), g["eos"].get<int32_t>());
  EXPECT_EQ(l.tok->eot(), g["eot"].get<int32_t>());
  EXPECT_EQ(l.tok->pad(), g["pad"].get<int32_t>());
  EXPECT_EQ(l.tok->newline(), g["nl"].get<int32_t>());
  EXPECT_EQ(l.tok->add_bos(), g["add_bos"].get<bool>());
  EXPECT_EQ(l.tok->add_eos(), g["add_eos"].get<bool>());
  EXPECT_EQ(l.tok->eog_ids(), g["eog"].get<std::vector<int32_t>>());
  std::vector<uint32_t> want(l.tok->vocab_size(), kAttrNormal);
  for (const json& a : g["attrs"]) want[a[0].get<size_t>()] = a[1].get<uint32_t>();
  int bad = 0;
  for (size_t id = 0; id < want.size(); ++id)
    if (l.tok->attr(int32_t(id)) != want[id] && ++bad < 10)
      ADD_FAILURE() << which << " attr of " << id << " '" << l.tok->token_text(int32_t(id))
                    << "': " << l.tok->attr(int32_t(id)) << " want " << want[id];
  EXPECT_EQ(bad, 0);
  for (const json& p : g["pieces"]) {
    int32_t id = p[0].get<int32_t>();
    EXPECT_EQ(show(l.tok->piece(id, false)), show(unhex(p[1]))) << which << " piece " << id;
    EXPECT_EQ(show(l.tok->piece(id, true)), show(unhex(p[2]))) << which << " piece " << id;
  }
}

TEST(TokenizerParity, SmolLM2Ids) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  check_ids(path, "smollm2");
}

TEST(TokenizerParity, Gemma3Ids) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  check_ids(path, "gemma3");
}

TEST(TokenizerParity, SmolLM2Vocab) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  check_vocab(path, "smollm2");
}

TEST(TokenizerParity, Gemma3Vocab) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  check_vocab(path, "gemma3");
}

}  // namespace
}  // namespace kiln::gguf
