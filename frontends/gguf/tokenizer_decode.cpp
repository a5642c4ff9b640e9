// Ids -> text: llama.cpp's token_to_piece and llama_detokenize, and the streaming decoder.
#include <cstdio>

#include "frontends/gguf/tokenizer.h"
#include "frontends/gguf/tokenizer_unicode.h"
#include "frontends/gguf/tokenizer_vocab.h"

namespace kiln::gguf {
namespace {

constexpr uint32_t kRendered = kAttrUnknown | kAttrControl | kAttrUserDefined;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of "<0xNN>" (strtol of the two characters after "<0x", as llama.cpp reads it).
std::string byte_piece(std::string_view text) {
  int v = 0;
  for (size_t i = 3; i < 5 && i < text.size(); ++i) {
    int d = hex_digit(text[i]);
    if (d < 0) break;
    v = v * 16 + d;
  }
  return std::string(1, char(v));
}

// A GPT-2 token's spelling back to bytes; a character outside the 256 is kept visible the way
// llama.cpp's llama_decode_text does it.
std::string unspell(std::string_view text) {
  std::vector<uint32_t> cps;
  unicode::decode_utf8(text, cps);
  std::string out;
  for (uint32_t cp : cps) {
    int b = unicode::codepoint_to_byte(cp);
    if (b >= 0) {
      out += char(b);
      continue;
    }
    std::string utf8;
    unicode::append_utf8(cp, utf8);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%02x", unsigned(uint8_t(c)));
      out += hex;
    }
    out.append(text);
    out += "]";
  }
  return out;
}

// Appends `text` with SentencePiece's U+2581 as spaces (in place: called for every token of a
// vocabulary at load).
void append_unescaped_spaces(std::string& out, std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t mark = text.find("\xE2\x96\x81", i);
    out.append(text.substr(i, mark == std::string_view::npos ? text.size() - i : mark - i));
    if (mark == std::string_view::npos) break;
    out += ' ';
    i = mark + 3;
  }
}

// llama_detokenize's clean_up_tokenization_spaces, three in-place passes over the bytes, ported
// as they are (including reading the partly rewritten buffer).
void clean_spaces(std::string& s) {
  char* text = s.data();
  const int32_t total1 = int32_t(s.size());
  int32_t total = total1 ? 1 : 0;
  for (int32_t i = 1; i < total1; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
    text[total++] = x;
  }
  const int32_t total2 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < total2; ++i) {
    const char x = text[i];
    if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
      total--;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  const int32_t total3 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < total3; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        total--;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < total3) {
        const char x2 = text[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) total--;
      }
    }
    text[total++] = x;
  }
  s.resize(size_t(total));
}

}  // namespace

void Tokenizer::build_pieces() {
  const Vocab& v = *vocab_;
  piece_offsets_.reserve(v.size() + 1);
  pieces_.reserve(v.texts.size());
  for (int32_t id = 0; id < int32_t(v.size()); ++id) {
    piece_offsets_.push_back(uint32_t(pieces_.size()));
    const uint32_t a = v.attrs[id];
    std::string_view text = v.text(id);
    if (a & kRendered) {
      pieces_.append(text);
    } else if (a & kAttrNormal) {
      if (spm_)
        append_unescaped_spaces(pieces_, text);
      else
        pieces_ += unspell(text);
    } else if (a & kAttrByte) {
      pieces_ += byte_piece(text);
    }  // unused and undefined tokens have no text
  }
  piece_offsets_.push_back(uint32_t(pieces_.size()));
}

std::string_view Tokenizer::cached_piece(int32_t id) const {
  return std::string_view(pieces_).substr(piece_offsets_[id],
                                          piece_offsets_[id + 1] - piece_offsets_[id]);
}

std::string Tokenizer::piece(int32_t id, bool render_special) const {
  if (!vocab_->valid(id)) return {};
  if (!render_special && (vocab_->attrs[id] & (kAttrUnknown | kAttrControl))) return {};
  return std::string(cached_piece(id));
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool remove_space = vocab_->add_space_prefix;
  for (int32_t id : ids) {
    const bool strip = remove_space;
    remove_space = false;
    if (!vocab_->valid(id)) continue;
    if (!render_special && (vocab_->attrs[id] & (kAttrUnknown | kAttrControl))) continue;
    std::string_view p = cached_piece(id);
    if (strip && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    out.append(p);
  }
  if (vocab_->clean_spaces) clean_spaces(out);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  std::string p = tok_.piece(id, render_special_);
  if (first_ && tok_.add_space_prefix() && !p.empty() && p[0] == ' ') p.erase(0, 1);
  first_ = false;
  pending_ += p;
  // Emit up to the start of a trailing sequence that is valid so far but incomplete; invalid
  // bytes go out as they are (decode() returns them too).
  size_t i = 0;
  while (i < pending_.size()) {
    int n = unicode::utf8_valid_prefix(std::string_view(pending_).substr(i));
    if (n < 0) break;
    i += n > 0 ? size_t(n) : 1;
  }
  std::string ready = pending_.substr(0, i);
  pending_.erase(0, i);
  return ready;
}

std::string StreamDecoder::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace kiln::gguf
