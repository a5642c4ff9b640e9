// Fuzzes encode/decode: any bytes must give ids in range (or an error), never a crash, and the
// round trips that the tokenizers guarantee must hold. The first input byte picks the
// tokenizer and the flags; the rest is the text.
//
// A fourth mode builds the vocabulary itself from the input, to fuzz the metadata checks.
//
// Tokenizers: the real SmolLM2 (gpt2 BPE, "smollm") when it is in $KILN_MODELS or
// ~/.cache/kiln/models, and two small vocabularies built here, a byte-level BPE with
// special tokens and a SentencePiece one with byte fallback.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "frontends/gguf/tokenizer_unicode.h"

namespace {

using namespace kiln::gguf;

std::string spell(const std::string& raw) {
  std::string s;
  for (char c : raw) unicode::append_utf8(unicode::byte_to_codepoint(uint8_t(c)), s);
  return s;
}

std::unique_ptr<Tokenizer> small_bpe() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(spell(std::string(1, char(b))));
  const char* merges_raw[][2] = {{"t", "h"},   {"th", "e"},     {"h", "e"},   {" ", "t"},
                                 {" t", "he"}, {"a", "a"},      {"aa", "aa"}, {" ", " "},
                                 {"  ", "  "}, {"1", "2"},      {"e", "r"},   {"i", "n"},
                                 {"in", "g"},  {"\xC3", "\xA9"}};
  std::vector<std::string> merges;
  for (auto& m : merges_raw) {
    merges.push_back(spell(m[0]) + " " + spell(m[1]));
    tokens.push_back(spell(std::string(m[0]) + m[1]));
  }
  std::vector<int64_t> types(tokens.size(), 1);
  for (const char* s : {"<|im_start|>", "<|im_end|>", "<s>", "<|endoftext|>"}) {
    tokens.push_back(s);
    types.push_back(3);
  }
  tokens.push_back("<tag>");
  types.push_back(4);
  Metadata md;
  md.set("tokenizer.ggml.model", Value::of_string("gpt2"));
  md.set("tokenizer.ggml.pre", Value::of_string("smollm"));
  md.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
  md.set("tokenizer.ggml.merges", Value::of_strings(merges));
  md.set("tokenizer.ggml.bos_token_id", Value::of_u32(uint32_t(tokens.size() - 3)));
  md.set("tokenizer.ggml.add_bos_token", Value::of_bool(true));
  auto t = Tokenizer::from_gguf(md);
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.message().c_str());
    std::abort();
  }
  return std::move(*t);
}

std::unique_ptr<Tokenizer> small_spm() {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "<start_of_turn>"};
  std::vector<int64_t> types = {2, 3, 3, 3};
  std::vector<float> scores = {0, 0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    tokens.push_back(hex);
    types.push_back(6);
    scores.push_back(0);
  }
  const char* pieces[] = {"▁",  "a",  "b",  "c",    "ab",       "bc", "abc",
                          "▁a", "▁▁", "\n", "\n\n", "\xC3\xA9", "th", "the"};
  float score = -1;
  for (const char* p : pieces) {
    tokens.push_back(p);
    types.push_back(std::string(p) == "\n\n" ? 4 : 1);
    scores.push_back(score -= 0.5f);
  }
  Metadata md;
  md.set("tokenizer.ggml.model", Value::of_string("llama"));
  md.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
  md.set("tokenizer.ggml.scores", Value::of_floats(scores));
  md.set("tokenizer.ggml.add_space_prefix", Value::of_bool(false));
  auto t = Tokenizer::from_gguf(md);
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.message().c_str());
    std::abort();
  }
  return std::move(*t);
}

struct RealModel {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

RealModel* smollm2() {
  static RealModel* m = [] {
    const char* dir = std::getenv("KILN_MODELS");
    std::string d = dir && *dir ? dir
                                : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") +
                                      "/.cache/kiln/models";
    std::string p = d + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(p)) return static_cast<RealModel*>(nullptr);
    auto f = GgufFile::open(p);
    if (!f.ok()) return static_cast<RealModel*>(nullptr);
    auto* r = new RealModel;
    r->file = std::move(*f);
    auto t = Tokenizer::from_gguf(r->file->metadata());
    if (!t.ok()) std::abort();
    r->tok = std::move(*t);
    return r;
  }();
  return m;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    int n = unicode::utf8_valid_prefix(std::string_view(s).substr(i));
    if (n <= 0) return false;
    i += size_t(n);
  }
  return true;
}

// Every byte of s has a token of its own (SmolLM2 lacks 21 of them; those bytes are dropped).
bool all_bytes_have_tokens(const Tokenizer& t, const std::string& s) {
  for (char c : s)
    if (t.find_token(spell(std::string(1, c))) < 0) return false;
  return true;
}

// Encodes and decodes; round_trip also checks that the text comes back (for the vocabularies
// above, where that is guaranteed), byte_level that encoding never fails.
void check(const Tokenizer& t, const std::string& text, bool add_special, bool parse_special,
           bool byte_level, bool round_trip = true) {
  auto ids = t.encode(text, add_special, parse_special);
  if (!ids.ok()) {
    if (byte_level) std::abort();  // byte-level BPE accepts everything
    return;
  }
  for (int32_t id : *ids)
    if (id < 0 || size_t(id) >= t.vocab_size()) std::abort();
  std::string plain = t.decode(*ids, false);
  std::string full = t.decode(*ids, true);
  StreamDecoder sd(t, true);
  std::string streamed;
  for (int32_t id : *ids) streamed += sd.push(id);
  streamed += sd.flush();
  // The stream equals decode() where decoding does no space clean-up (the clean-up of
  // " ," -> "," looks at neighbouring pieces; the llama3 family has it).
  if (streamed != full && t.pre_tokenizer() != "llama3") std::abort();
  for (int32_t id : *ids) (void)t.piece(id), (void)t.is_eog(id);
  // The round trip: valid UTF-8 comes back, special-token text included when it was parsed
  // and is rendered. (A bare BOS renders as its text, so compare without added specials.)
  if (!round_trip || add_special || !valid_utf8(text)) return;
  if (byte_level && !all_bytes_have_tokens(t, text)) return;
  if (!byte_level && text.find("\xE2\x96\x81") != std::string::npos) return;  // ▁ decodes to ' '
  if (full != text) {
    std::fprintf(stderr, "round trip failed (parse_special=%d)\n", parse_special);
    std::abort();
  }
}

// A vocabulary made from the input itself, to reach the metadata checks: lines are tokens,
// "M" lines merges; the selector byte picks the model and bends the array lengths and types.
// from_gguf must either refuse it with an error or give a tokenizer that works.
void check_metadata(uint8_t sel, const std::string& text) {
  std::vector<std::string> tokens, merges;
  size_t start = 0;
  while (start <= text.size() && tokens.size() + merges.size() < 512) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line[0] == 'M') {
      merges.push_back(line.substr(1));
    } else {
      tokens.push_back(line);
    }
    start = end + 1;
  }
  const bool spm = sel & 0x10;
  std::vector<int64_t> types;
  std::vector<float> scores;
  for (const std::string& t : tokens) {
    types.push_back(int64_t(t.size() % 8));  // 7 is not a type: an error
    scores.push_back(-float(t.size()));
  }
  if ((sel & 0x20) && !types.empty()) types.pop_back();
  if (sel & 0x40) scores.push_back(0.0f);
  Metadata md;
  md.set("tokenizer.ggml.model", Value::of_string(spm ? "llama" : "gpt2"));
  md.set("tokenizer.ggml.pre", Value::of_string(sel & 0x80 ? "llama3" : "qwen2"));
  md.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, types));
  if (spm || (sel & 0x40)) md.set("tokenizer.ggml.scores", Value::of_floats(scores));
  if (!spm) md.set("tokenizer.ggml.merges", Value::of_strings(merges));
  md.set("tokenizer.ggml.bos_token_id", Value::of_u32(uint32_t(sel) % 7));
  md.set("tokenizer.ggml.eos_token_id", Value::of_u32(uint32_t(sel) % 5));
  auto t = Tokenizer::from_gguf(md);
  if (!t.ok()) {
    if (t.message().empty()) std::abort();
    return;
  }
  check(**t, text, sel & 1, sel & 2, false, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Tokenizer> bpe = small_bpe();
  static const std::unique_ptr<Tokenizer> spm = small_spm();
  if (size == 0) return 0;
  const uint8_t sel = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool add_special = sel & 1, parse_special = sel & 2;
  switch ((sel >> 2) % 4) {
    case 3:
      check_metadata(sel, text);
      break;
    case 0:
      if (RealModel* m = smollm2()) {
        check(*m->tok, text, add_special, parse_special, true);
        break;
      }
      [[fallthrough]];
    case 1:
      check(*bpe, text, add_special, parse_special, true);
      break;
    default:
      check(*spm, text, add_special, parse_special, false);
      break;
  }
  return 0;
}
