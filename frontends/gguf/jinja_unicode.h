// UTF-8 and the few Unicode character classes the template interpreter needs to behave like
// Python's str: strings are indexed, sliced and counted by code point, and strip/split/isspace
// use Python's idea of whitespace. Bytes that are not valid UTF-8 count as one code point each
// and survive a decode/encode round trip unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::jinja::unicode {

// A code point of an invalid byte b is kInvalidBase + b, outside the Unicode range, so that
// encode() can write the byte back as it was.
constexpr uint32_t kInvalidBase = 0x110000;

// Decodes the code point at s[pos] and advances pos past it.
uint32_t next(std::string_view s, size_t& pos);
void append(std::string& out, uint32_t cp);
std::vector<uint32_t> decode(std::string_view s);
std::string encode(const std::vector<uint32_t>& cps);
size_t length(std::string_view s);  // in code points

// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> offsets(std::string_view s);

// Python's str.isspace() (the characters str.split() and str.strip() remove).
bool is_space(uint32_t cp);
// True when s holds only Python whitespace (and is not empty).
bool all_space(std::string_view s);
bool is_digit(uint32_t cp);
bool is_alpha(uint32_t cp);
bool is_upper(uint32_t cp);
bool is_lower(uint32_t cp);
// False for the code points Python's repr() escapes (controls, separators, format characters).
bool is_printable(uint32_t cp);

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic; other code
// points map to themselves. 'ß' uppercases to "SS" as in Python.
void append_upper(std::string& out, uint32_t cp);
void append_lower(std::string& out, uint32_t cp);
std::string upper(std::string_view s);
std::string lower(std::string_view s);

// Python whitespace trimming; chars == nullptr means whitespace, else the set of code points in
// *chars.
std::string strip(std::string_view s, bool left, bool right, const std::string* chars);

}  // namespace kiln::jinja::unicode
