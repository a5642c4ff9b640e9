#include "frontends/gguf/jinja_lexer.h"

#include <cstring>

#include "frontends/gguf/jinja_ops.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || uint8_t(c) >= 0x80;
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// \r\n and \r become \n; without keep_trailing_newline one final newline is dropped.
std::string normalize(std::string_view src, bool keep_trailing_newline) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& o) : s_(std::move(src)), o_(o) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(s_.substr(pos_), pos_);
        advance_to(s_.size());
        break;
      }
      char kind = s_[tag + 1];
      char sign =
          tag + 2 < s_.size() && (s_[tag + 2] == '-' || s_[tag + 2] == '+') ? s_[tag + 2] : 0;
      size_t raw_end = kind == '%' ? match_raw_begin(tag) : 0;
      emit_text(strip_text(s_.substr(pos_, tag - pos_), sign, kind != '{'), pos_);
      advance_to(tag);
      if (raw_end) {
        line_starting_ = s_[raw_end - 1] == '\n';
        advance_to(raw_end);
        lex_raw();
      } else if (kind == '#') {
        lex_comment(tag + 2 + (sign ? 1 : 0));
      } else {
        lex_tag(kind == '{', tag + 2 + (sign ? 1 : 0));
      }
    }
    push(TokKind::kEof, "", pos_);
    return std::move(toks_);
  }

 private:
  [[noreturn]] void error(size_t at, std::string msg) {
    Failure f{std::move(msg)};
    f.line = line_at(at);
    f.column = int(at - line_start_at(at)) + 1;
    throw f;
  }

  int line_at(size_t at) {
    // Lines are counted incrementally; `at` is never before the last counted position.
    for (; counted_ < at && counted_ < s_.size(); ++counted_)
      if (s_[counted_] == '\n') ++line_, line_start_ = counted_ + 1;
    return line_;
  }
  size_t line_start_at(size_t at) {
    line_at(at);
    return line_start_;
  }

  void advance_to(size_t p) { pos_ = p; }

  void push(TokKind k, std::string text, size_t at) {
    Token t;
    t.kind = k;
    t.text = std::move(text);
    t.line = line_at(at);
    t.column = int(at - line_start_) + 1;
    toks_.push_back(std::move(t));
  }

  void emit_text(std::string text, size_t at) {
    if (!text.empty()) push(TokKind::kText, std::move(text), at);
    line_starting_ = false;
  }

  size_t find_tag(size_t from) const {
    for (size_t i = s_.find('{', from); i != std::string::npos; i = s_.find('{', i + 1))
      if (i + 1 < s_.size() && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  size_t skip_space(size_t p) const {
    while (p < s_.size()) {
      size_t q = p;
      if (!unicode::is_space(unicode::next(s_, q))) break;
      p = q;
    }
    return p;
  }

  // Text before a tag: `-` strips all whitespace; otherwise lstrip_blocks strips the spaces
  // that start the tag's line, for block and comment tags.
  std::string strip_text(std::string text, char sign, bool block_like) {
    if (sign == '-') return unicode::strip(text, false, true, nullptr);
    if (sign == '+' || !o_.lstrip_blocks || !block_like) return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && unicode::all_space(std::string_view(text).substr(l_pos)))
      text.resize(l_pos);
    return text;
  }

  // `{%[-+]? raw [-]?%}` at p: returns the position after it, or 0.
  size_t match_raw_begin(size_t p) const {
    size_t q = p + 2;
    if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) ++q;
    q = skip_space(q);
    if (s_.compare(q, 3, "raw") != 0) return 0;
    q = skip_space(q + 3);
    if (s_.compare(q, 3, "-%}") == 0) return skip_space(q + 3);
    if (s_.compare(q, 2, "%}") == 0) return q + 2;
    return 0;
  }

  // Consumes the end of a block-like tag at p ("+%}", "-%}", "%}" or the "#}" forms).
  void finish_block_end(size_t p) {
    size_t q;
    if (s_[p] == '+') {
      q = p + 3;
    } else if (s_[p] == '-') {
      q = skip_space(p + 3);
    } else {
      q = p + 2;
      if (o_.trim_blocks && q < s_.size() && s_[q] == '\n') ++q;
    }
    line_starting_ = q > 0 && s_[q - 1] == '\n';
    advance_to(q);
  }

  void lex_raw() {
    // Data up to `{%[-+]? endraw [+-]?%}`.
    for (size_t p = s_.find("{%", pos_); p != std::string::npos; p = s_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) sign = s_[q++];
      q = skip_space(q);
      if (s_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      if (!(s_.compare(q, 3, "+%}") == 0 || s_.compare(q, 3, "-%}") == 0 ||
            s_.compare(q, 2, "%}") == 0))
        continue;
      emit_text(strip_text(s_.substr(pos_, p - pos_), sign, true), pos_);
      finish_block_end(q);
      return;
    }
    error(pos_, "missing end of raw directive");
  }

  void lex_comment(size_t body) {
    size_t p = s_.find("#}", body);
    if (p == std::string::npos) error(pos_, "missing end of comment tag");
    if (p > body && (s_[p - 1] == '-' || s_[p - 1] == '+')) --p;
    line_at(p);
    finish_block_end(p);
  }

  void lex_tag(bool variable, size_t p) {
    push(variable ? TokKind::kVarBegin : TokKind::kBlockBegin, "", pos_);
    std::string balance;
    while (true) {
      if (p >= s_.size()) {
        advance_to(p);
        return;  // the parser reports the unexpected end
      }
      if (balance.empty()) {
        if (variable) {
          if (s_.compare(p, 3, "-}}") == 0 || s_.compare(p, 2, "}}") == 0) {
            push(TokKind::kVarEnd, "", p);
            size_t q = s_[p] == '-' ? skip_space(p + 3) : p + 2;
            line_starting_ = s_[q - 1] == '\n';
            advance_to(q);
            return;
          }
        } else if (s_.compare(p, 3, "+%}") == 0 || s_.compare(p, 3, "-%}") == 0 ||
                   s_.compare(p, 2, "%}") == 0) {
          push(TokKind::kBlockEnd, "", p);
          finish_block_end(p);
          return;
        }
      }
      size_t q = p;
      if (unicode::is_space(unicode::next(s_, q))) {
        p = skip_space(p);
        continue;
      }
      if (size_t e = match_float(p)) {
        std::string digits;
        for (size_t i = p; i < e; ++i)
          if (s_[i] != '_') digits += s_[i];
        push(TokKind::kFloat, s_.substr(p, e - p), p);
        toks_.back().float_value = std::strtod(digits.c_str(), nullptr);
        p = e;
        continue;
      }
      if (is_digit(s_[p])) {
        p = lex_int(p);
        continue;
      }
      if (is_name_start(s_[p])) {
        size_t e = p;
        while (e < s_.size() && is_name_char(s_[e])) {
          size_t n = e;
          if (unicode::is_space(unicode::next(s_, n))) break;
          e = n;
        }
        push(TokKind::kName, s_.substr(p, e - p), p);
        p = e;
        continue;
      }
      if (s_[p] == '\'' || s_[p] == '"') {
        p = lex_string(p);
        continue;
      }
      p = lex_operator(p, balance);
    }
  }

  // Python-style float literal (digits with `_` separators, a fraction and/or an exponent);
  // returns its end, or 0 when there is none at p.
  size_t match_float(size_t p) const {
    if (p > 0 && s_[p - 1] == '.') return 0;
    auto digits = [&](size_t q) {  // (\d+_)*\d+ ; returns end or npos
      if (q >= s_.size() || !is_digit(s_[q])) return std::string::npos;
      while (true) {
        while (q < s_.size() && is_digit(s_[q])) ++q;
        if (q + 1 < s_.size() && s_[q] == '_' && is_digit(s_[q + 1])) {
          ++q;
          continue;
        }
        return q;
      }
    };
    size_t q = digits(p);
    if (q == std::string::npos) return 0;
    auto exponent = [&](size_t r) -> size_t {
      if (r >= s_.size() || (s_[r] != 'e' && s_[r] != 'E')) return 0;
      ++r;
      if (r < s_.size() && (s_[r] == '+' || s_[r] == '-')) ++r;
      size_t e = digits(r);
      return e == std::string::npos ? 0 : e;
    };
    size_t frac = std::string::npos;
    if (q < s_.size() && s_[q] == '.') frac = digits(q + 1);
    if (frac != std::string::npos) {
      if (size_t e = exponent(frac)) return e;
      return frac;
    }
    return exponent(q);
  }

  size_t lex_int(size_t p) {
    size_t e = p;
    int base = 10;
    auto digit_ok = [&](char c) {
      if (base == 2) return c == '0' || c == '1';
      if (base == 8) return c >= '0' && c <= '7';
      if (base == 16) return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
      return is_digit(c);
    };
    if (s_[p] == '0' && p + 1 < s_.size() && s_[p + 1] && std::strchr("bBoOxX", s_[p + 1])) {
      char b = char(s_[p + 1] | 0x20);
      base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
      e = p + 2;
      size_t start = e;
      while (e < s_.size() &&
             (digit_ok(s_[e]) || (s_[e] == '_' && e + 1 < s_.size() && digit_ok(s_[e + 1]))))
        ++e;
      if (e == start) {
        base = 10;
        e = p + 1;  // just "0"
      }
    } else if (s_[p] == '0') {
      e = p + 1;
      while (e < s_.size() &&
             (s_[e] == '0' || (s_[e] == '_' && e + 1 < s_.size() && s_[e + 1] == '0')))
        ++e;
    } else {
      while (e < s_.size() &&
             (is_digit(s_[e]) || (s_[e] == '_' && e + 1 < s_.size() && is_digit(s_[e + 1]))))
        ++e;
    }
    uint64_t v = 0;
    size_t start = base == 10 ? p : p + 2;
    for (size_t i = start; i < e; ++i) {
      if (s_[i] == '_') continue;
      int d = is_digit(s_[i]) ? s_[i] - '0' : (s_[i] | 0x20) - 'a' + 10;
      if (v > (uint64_t(INT64_MAX) - d) / base) error(p, "integer literal too large");
      v = v * base + d;
    }
    push(TokKind::kInt, s_.substr(p, e - p), p);
    toks_.back().int_value = int64_t(v);
    return e;
  }

  // A quoted string with Python's escapes (as jinja2 decodes them with "unicode-escape").
  size_t lex_string(size_t p) {
    char quote = s_[p];
    std::string out;
    size_t i = p + 1;
    auto hex = [&](size_t at, int n) -> uint32_t {
      uint32_t v = 0;
      for (int k = 0; k < n; ++k) {
        char c = at + k < s_.size() ? s_[at + k] : 0;
        int d = is_digit(c)                                ? c - '0'
                : ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? (c | 0x20) - 'a' + 10
                                                           : -1;
        if (d < 0) error(at, "truncated \\x, \\u or \\U escape in string literal");
        v = v * 16 + uint32_t(d);
      }
      return v;
    };
    while (true) {
      if (i >= s_.size()) error(p, std::string("unexpected char '") + quote + "'");
      char c = s_[i];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= s_.size()) error(p, std::string("unexpected char '") + quote + "'");
      char e = s_[i + 1];
      i += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          unicode::append(out, hex(i, 2));
          i += 2;
          break;
        case 'u':
        case 'U': {
          int n = e == 'u' ? 4 : 8;
          uint32_t cp = hex(i, n);
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            error(i - 2, "invalid unicode escape in string literal");
          unicode::append(out, cp);
          i += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int k = 0; k < 2 && i < s_.size() && s_[i] >= '0' && s_[i] <= '7'; ++k)
              v = v * 8 + uint32_t(s_[i++] - '0');
            unicode::append(out, v);
          } else if (e == 'N') {
            error(i - 2, "\\N{...} escapes are not supported");
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(TokKind::kString, std::move(out), p);
    return i + 1;
  }

  size_t lex_operator(size_t p, std::string& balance) {
    static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two) {
      if (s_.compare(p, 2, op) == 0) {
        push(TokKind::kOp, op, p);
        return p + 2;
      }
    }
    char c = s_[p];
    if (!std::strchr("+-/*%~[](){}><=.:|,;", c) || c == 0) {
      size_t q = p;
      std::string ch;
      unicode::append(ch, unicode::next(s_, q));
      error(p, "unexpected char '" + ch + "'");
    }
    if (c == '(' || c == '[' || c == '{') {
      balance += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) error(p, std::string("unexpected '") + c + "'");
      if (balance.back() != c)
        error(p, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      balance.pop_back();
    }
    push(TokKind::kOp, std::string(1, c), p);
    return p + 1;
  }

  std::string s_;
  LexOptions o_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  int line_ = 1;
  size_t line_start_ = 0, counted_ = 0;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const LexOptions& options) {
  return Lexer(normalize(source, options.keep_trailing_newline), options).run();
}

}  // namespace kiln::jinja
