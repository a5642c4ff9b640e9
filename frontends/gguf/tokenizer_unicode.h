// Unicode helpers of the tokenizers: UTF-8 decoding the way llama.cpp does it, the category
// lookup behind the pre-tokenizer splitters, and GPT-2's byte <-> printable-character mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/unicode_data.h"

namespace kiln::gguf::unicode {

// General category group in the low 3 bits (the values of make_unicode_tables.py), plus a bit
// for Unicode's White_Space property. Every codepoint up to U+10FFFF has one; "undefined" is an
// unassigned codepoint (Cn), which the regexes treat like punctuation: not \s, \p{L} or \p{N}.
enum UnicodeClass : uint8_t {
  kUndefined = 0,
  kNumber = 1,
  kLetter = 2,
  kSeparator = 3,
  kMark = 4,
  kPunctuation = 5,
  kSymbol = 6,
  kControl = 7,
  kGroupMask = 7,
  kWhitespace = 8,
};

// Class byte of a codepoint (one table load for ASCII, two otherwise; above U+10FFFF it is
// kUndefined).
uint8_t classify_slow(uint32_t cp);
inline uint8_t classify(uint32_t cp) {
  return cp < 128 ? kAsciiClass[cp] : classify_slow(cp);
}

inline bool is_letter(uint8_t c) {
  return (c & kGroupMask) == kLetter;
}
inline bool is_number(uint8_t c) {
  return (c & kGroupMask) == kNumber;
}
inline bool is_punctuation(uint8_t c) {
  return (c & kGroupMask) == kPunctuation;
}
inline bool is_space(uint8_t c) {
  return (c & kWhitespace) != 0;
}

// Decodes UTF-8 like llama.cpp's unicode_cpts_from_utf8: a lead byte followed by the right
// number of continuation bytes is decoded without checking for overlong forms or surrogates
// (C0 80 is U+0000, ED A0 80 is U+D800); any other byte becomes U+FFFD and decoding resumes at
// the next byte. One deliberate difference: a 4-byte form above U+10FFFF (F4 90.., F5..F7 ..)
// makes llama.cpp abort later, so here its lead byte is invalid (U+FFFD) like any other.
// Returns whether re-encoding the codepoints gives back exactly s (no U+FFFD substitutions and
// no overlong forms).
bool decode_utf8(std::string_view s, std::vector<uint32_t>& out);
inline size_t utf8_size(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}
// Appends the UTF-8 of cp (any value up to U+10FFFF, surrogates included, as llama.cpp does).
void append_utf8(uint32_t cp, std::string& out);
// Byte length of the UTF-8 sequence a lead byte announces (1 for continuation bytes), as
// llama.cpp's unicode_len_utf8; used where symbols are split into "characters".
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}
// Length of the valid UTF-8 sequence at the start of s: 1..4, 0 when s is empty or starts with
// something invalid, and -1 when s holds a valid but incomplete prefix of a sequence.
int utf8_valid_prefix(std::string_view s);

// GPT-2 byte-level BPE: every byte maps to one printable codepoint (printable Latin-1 bytes to
// themselves, the rest to U+0100.. in order); tokens are spelled in those codepoints.
uint32_t byte_to_codepoint(uint8_t b);
// The byte a codepoint stands for, or -1 when it is not one of the 256.
int codepoint_to_byte(uint32_t cp);

// The Unicode version of the category table.
const char* version();

}  // namespace kiln::gguf::unicode
