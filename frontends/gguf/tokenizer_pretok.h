// Pre-tokenizers of byte-level BPE models: the regex that tokenizer.ggml.pre names, written out
// by hand as splitters over codepoints (the GGUF frontend may not depend on a regex engine).
//
// llama.cpp applies a list of regexes in turn; each one splits every piece made so far into its
// matches and the gaps between them (a gap is a piece too). The splitters here give the same
// pieces as those regexes under llama.cpp's semantics: \p{L}, \p{N}, \p{P} from its Unicode
// 15.1 tables, \s = White_Space, and lookahead that ends at the piece's end. They are checked
// against PCRE2 and against llama.cpp's own unicode_regex_split in the tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln::gguf {

enum class Split : uint8_t {
  kEachNumber,     // \p{N}
  kNumberRuns,     // \p{N}+
  kAsciiTriples,   // [0-9][0-9][0-9]
  kPunctRuns,      // [\p{P}\$\+<=>\^~\|]+
  kPunctRunsTick,  // [\p{P}\$\+<=>\^~\|`]+
  kGpt2,           // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kLlama3,         // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                   //   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,          // as kLlama3 with \p{N} in place of \p{N}{1,3}
};

// What a pre-tokenizer name means to llama.cpp: the splits and the vocabulary defaults that go
// with it (metadata can still override add_bos).
struct PreTokenizer {
  std::string family;  // "gpt2", "smollm", "llama3", "qwen2", "default", "falcon", ...
  std::vector<Split> splits;
  bool ignore_merges = false;  // a word that is a token is taken whole
  bool add_bos = false;
  bool clean_spaces = true;
  bool no_bos = false;  // chatglm: no default BOS id
};

// The pre-tokenizer for a tokenizer.ggml.pre value ("" means "default"); an error for names
// whose regexes are not implemented.
Result<PreTokenizer> pre_tokenizer_for(std::string_view name);

// Splits cps into pieces: appends each piece's end offset (in codepoints) to `ends`. `cls` holds
// unicode::classify() of each codepoint. `scratch` is reused between calls.
void pre_tokenize(const std::vector<Split>& splits, const std::vector<uint32_t>& cps,
                  const std::vector<uint8_t>& cls, std::vector<uint32_t>& ends,
                  std::vector<uint32_t>& scratch);

}  // namespace kiln::gguf
