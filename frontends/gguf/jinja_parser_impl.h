// The parser class shared by jinja_parser.cpp (statements) and jinja_parse_expr.cpp
// (expressions): one recursive-descent parser with jinja2's grammar and precedence.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/jinja_ast.h"
#include "frontends/gguf/jinja_lexer.h"
#include "frontends/gguf/jinja_parser.h"

namespace kiln::jinja {

std::string describe(const Token& t);

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  std::unique_ptr<Program> run() {
    auto p = std::make_unique<Program>();
    p->body = subparse({});
    return p;
  }

 private:
  // --- token helpers ---
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().kind == TokKind::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == TokKind::kName && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void error_at(const Token& t, const std::string& msg) {
    Failure f{msg};
    f.line = t.line;
    f.column = t.column;
    throw f;
  }
  [[noreturn]] void unexpected(const std::string& expected) {
    error_at(cur(), "expected " + expected + ", found " + describe(cur()));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(std::string("'") + op + "'");
  }
  void expect_block_end() {
    if (cur().kind != TokKind::kBlockEnd) unexpected("'%}'");
    next();
  }
  std::string expect_name() {
    if (cur().kind != TokKind::kName) unexpected("a name");
    std::string n = cur().text;
    next();
    return n;
  }

  struct DepthGuard {
    DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxParseDepth)
        p_.error_at(p_.cur(), "template nesting too deep (more than " +
                                  std::to_string(kMaxParseDepth) + " levels)");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  // Adds a child, keeping the node's depth and refusing expressions nested so deeply that
  // evaluating or freeing them would recurse too far (chains like a.b.c... or 1+1+1... are
  // built by loops, not by recursion, so the depth guard alone does not bound them).
  void note_depth(Expr& parent, const Expr& child) {
    parent.depth = std::max(parent.depth, child.depth + 1);
    if (parent.depth > kMaxExprDepth)
      error_at(cur(), "expression nested too deeply (more than " + std::to_string(kMaxExprDepth) +
                          " levels)");
  }
  void attach(Expr& parent, ExprPtr child) {
    if (child) note_depth(parent, *child);
    parent.args.push_back(std::move(child));
  }

  ExprPtr node(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // --- statements ---
  bool at_end_tag(const std::vector<const char*>& ends) const;
  // Parses statements until a `{% end... %}` tag in `ends` (left current, at its name), or the
  // end of the template when `ends` is empty.
  StmtList subparse(const std::vector<const char*>& ends);
  // Body of a block statement: `%}` then statements up to an end tag; leaves the end tag's name
  // current.
  StmtList parse_body(const std::vector<const char*>& ends);
  // Consumes the end tag's name (current after parse_body) and returns it.
  std::string end_name();
  StmtPtr stmt(StmtKind k, int line);
  StmtPtr parse_statement();
  StmtPtr parse_if();
  StmtPtr parse_for();
  StmtPtr parse_set();
  void parse_signature(Stmt& s);
  StmtPtr parse_macro();
  StmtPtr parse_call_block();
  StmtPtr parse_filter_block();
  StmtPtr parse_with();
  // Names, tuples of names, or (with_namespace) `ns.attr`.
  ExprPtr parse_assign_target(bool with_tuple, std::vector<const char*> extra_end,
                              bool with_namespace);

  // --- expressions ---
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr binary(BinOp op, ExprPtr l, ExprPtr r, int line);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary(bool with_namespace);
  bool is_tuple_end(const std::vector<const char*>& extra) const;
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<const char*>& extra,
                      bool explicit_parens, bool with_namespace);
  ExprPtr parse_list();
  ExprPtr parse_dict();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_filter_expr(ExprPtr e);
  ExprPtr parse_subscript(ExprPtr e);
  ExprPtr parse_subscribed();
  void parse_call_args(Expr& call);
  ExprPtr parse_call(ExprPtr callee);
  std::string dotted_name();
  ExprPtr parse_filter(ExprPtr input, bool start_inline);
  ExprPtr parse_test(ExprPtr input);

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  int loop_refs_ = 0;  // names `loop` parsed so far
};

}  // namespace kiln::jinja
