// Splits template source into text and tag tokens the way jinja2's lexer does for chat
// templates rendered by Hugging Face transformers: trim_blocks and lstrip_blocks on (the first
// newline after a block or comment tag is dropped; spaces before a block or comment tag at the
// start of a line are dropped), `-` and `+` whitespace control, {% raw %}, line endings
// normalized to \n and one trailing newline dropped (keep_trailing_newline=False).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::jinja {

enum class TokKind : uint8_t {
  kText,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInt,
  kFloat,
  kOp,  // text holds the operator: "+", "//", "==", "(", ...
  kEof,
};

struct Token {
  TokKind kind = TokKind::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws jinja::Failure (with line and column) on a lexical error.
std::vector<Token> lex(std::string_view source, const LexOptions& options = {});

}  // namespace kiln::jinja
