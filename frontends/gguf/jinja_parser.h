// Recursive-descent parser from tokens to the AST, with jinja2's grammar and operator
// precedence. Filters and tests are resolved here, so a template that names one kiln lacks is
// rejected before it runs; nesting is bounded so hostile input cannot exhaust the stack.
#pragma once

#include <memory>
#include <string_view>

#include "frontends/gguf/jinja_ast.h"
#include "frontends/gguf/jinja_lexer.h"

namespace kiln::jinja {

constexpr int kMaxParseDepth = 100;  // nested brackets, unary operators and statements
constexpr int kMaxExprDepth = 300;   // depth of one expression tree

// Throws jinja::Failure with the line and column of the offending token.
std::unique_ptr<Program> parse_program(std::string_view source, const LexOptions& options = {});

}  // namespace kiln::jinja
