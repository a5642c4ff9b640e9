#include "frontends/gguf/jinja_parser.h"

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_parser_impl.h"

namespace kiln::jinja {

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokKind::kText:
      return "template text";
    case TokKind::kVarBegin:
      return "'{{'";
    case TokKind::kVarEnd:
      return "'}}'";
    case TokKind::kBlockBegin:
      return "'{%'";
    case TokKind::kBlockEnd:
      return "'%}'";
    case TokKind::kName:
      return "'" + t.text + "'";
    case TokKind::kString:
      return "string";
    case TokKind::kInt:
    case TokKind::kFloat:
      return "number " + t.text;
    case TokKind::kOp:
      return "'" + t.text + "'";
    case TokKind::kEof:
      return "end of template";
  }
  return "token";
}

bool Parser::at_end_tag(const std::vector<const char*>& ends) const {
  if (cur().kind != TokKind::kBlockBegin) return false;
  const Token& n = peek();
  if (n.kind != TokKind::kName) return false;
  for (const char* e : ends)
    if (n.text == e) return true;
  return false;
}

// Parses statements until a `{% end... %}` tag in `ends` (left current, at its name), or the
// end of the template when `ends` is empty.
StmtList Parser::subparse(const std::vector<const char*>& ends) {
  DepthGuard g(*this);
  StmtList body;
  while (true) {
    const Token& tok = cur();
    if (tok.kind == TokKind::kEof) {
      if (!ends.empty()) {
        std::string want;
        for (const char* e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
        error_at(tok, "unexpected end of template, expected " + want);
      }
      return body;
    }
    if (tok.kind == TokKind::kText) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kText;
      s->line = tok.line;
      s->text = tok.text;
      body.push_back(std::move(s));
      next();
    } else if (tok.kind == TokKind::kVarBegin) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kOutput;
      s->line = tok.line;
      next();
      s->expr = parse_tuple(false, true, {}, false, false);
      if (cur().kind != TokKind::kVarEnd) unexpected("'}}'");
      next();
      body.push_back(std::move(s));
    } else if (tok.kind == TokKind::kBlockBegin) {
      if (at_end_tag(ends)) {
        next();
        return body;
      }
      next();
      body.push_back(parse_statement());
    } else {
      error_at(tok, "unexpected " + describe(tok));
    }
  }
}

// Body of a block statement: `%}` then statements up to an end tag; leaves the end tag's name
// current.
StmtList Parser::parse_body(const std::vector<const char*>& ends) {
  expect_block_end();
  return subparse(ends);
}

// Consumes the end tag's name (current after parse_body) and returns it.
std::string Parser::end_name() {
  std::string n = cur().text;
  next();
  return n;
}

StmtPtr Parser::stmt(StmtKind k, int line) {
  auto s = std::make_unique<Stmt>();
  s->kind = k;
  s->line = line;
  return s;
}

StmtPtr Parser::parse_statement() {
  const Token& tok = cur();
  if (tok.kind != TokKind::kName) error_at(tok, "expected a tag name, found " + describe(tok));
  std::string tag = tok.text;
  int line = tok.line;
  if (tag == "if") return parse_if();
  if (tag == "for") return parse_for();
  if (tag == "set") return parse_set();
  if (tag == "macro") return parse_macro();
  if (tag == "call") return parse_call_block();
  if (tag == "filter") return parse_filter_block();
  if (tag == "with") return parse_with();
  if (tag == "break" || tag == "continue") {
    next();
    if (loop_depth_ == 0) error_at(tok, "'" + tag + "' outside of a for loop");
    auto s = stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
    expect_block_end();
    return s;
  }
  if (tag == "generation") {
    next();
    auto s = stmt(StmtKind::kBlock, line);
    s->body = parse_body({"endgeneration"});
    end_name();
    expect_block_end();
    return s;
  }
  if (tag == "print") {
    next();
    auto s = stmt(StmtKind::kOutput, line);
    s->expr = parse_tuple(false, true, {}, false, false);
    expect_block_end();
    return s;
  }
  static const char* unsupported[] = {"block",      "extends", "include", "import",    "from",
                                      "autoescape", "do",      "trans",   "pluralize", "debug"};
  for (const char* u : unsupported)
    if (tag == u) error_at(tok, "unsupported tag '" + tag + "'");
  error_at(tok, "unknown tag '" + tag + "'");
}

StmtPtr Parser::parse_if() {
  auto s = stmt(StmtKind::kIf, cur().line);
  next();
  s->expr = parse_tuple(false, false, {}, false, false);
  s->body = parse_body({"elif", "else", "endif"});
  while (true) {
    int line = cur().line;
    std::string e = end_name();
    if (e == "elif") {  // kept flat, so a long elif chain does not nest
      auto elif = stmt(StmtKind::kIf, line);
      elif->expr = parse_tuple(false, false, {}, false, false);
      elif->body = parse_body({"elif", "else", "endif"});
      s->elifs.push_back(std::move(elif));
      continue;
    }
    if (e == "else") {
      s->else_body = parse_body({"endif"});
      end_name();
    }
    break;
  }
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_for() {
  auto s = stmt(StmtKind::kFor, cur().line);
  next();
  s->target = parse_assign_target(true, {"in"}, false);
  if (!skip_name("in")) unexpected("'in'");
  s->expr = parse_tuple(false, false, {"recursive"}, false, false);
  if (skip_name("if")) s->cond = parse_expression(true);
  if (is_name("recursive")) error_at(cur(), "unsupported feature: recursive for loops");
  ++loop_depth_;
  int refs = loop_refs_;
  s->body = parse_body({"endfor", "else"});
  s->uses_loop = loop_refs_ != refs;
  --loop_depth_;
  if (end_name() == "else") {
    int saved = loop_depth_;
    loop_depth_ = 0;  // break/continue in the else branch belong to no loop
    s->else_body = parse_body({"endfor"});
    loop_depth_ = saved;
    end_name();
  }
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_set() {
  int line = cur().line;
  next();
  ExprPtr target = parse_assign_target(true, {}, true);
  if (skip_op("=")) {
    auto s = stmt(StmtKind::kSet, line);
    s->target = std::move(target);
    s->expr = parse_tuple(false, true, {}, false, false);
    expect_block_end();
    return s;
  }
  auto s = stmt(StmtKind::kSetBlock, line);
  s->target = std::move(target);
  if (is_op("|")) s->filter = parse_filter(nullptr, false);
  s->body = parse_body({"endset"});
  end_name();
  expect_block_end();
  return s;
}

void Parser::parse_signature(Stmt& s) {
  expect_op("(");
  while (!is_op(")")) {
    if (!s.params.empty()) expect_op(",");
    if (is_op(")")) break;
    s.params.push_back(expect_name());
    if (skip_op("=")) {
      s.defaults.push_back(parse_expression(true));
    } else if (!s.defaults.empty()) {
      error_at(cur(), "non-default argument follows default argument");
    }
  }
  expect_op(")");
}

StmtPtr Parser::parse_macro() {
  auto s = stmt(StmtKind::kMacro, cur().line);
  next();
  s->name = expect_name();
  parse_signature(*s);
  int saved = loop_depth_;
  loop_depth_ = 0;
  s->body = parse_body({"endmacro"});
  loop_depth_ = saved;
  end_name();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_call_block() {
  auto s = stmt(StmtKind::kCallBlock, cur().line);
  next();
  if (is_op("(")) parse_signature(*s);
  s->expr = parse_expression(true);
  if (s->expr->kind != ExprKind::kCall) error_at(cur(), "expected a call after 'call'");
  int saved = loop_depth_;
  loop_depth_ = 0;
  s->body = parse_body({"endcall"});
  loop_depth_ = saved;
  end_name();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_filter_block() {
  auto s = stmt(StmtKind::kFilterBlock, cur().line);
  next();
  s->filter = parse_filter(nullptr, true);
  s->body = parse_body({"endfilter"});
  end_name();
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_with() {
  auto s = stmt(StmtKind::kWith, cur().line);
  next();
  while (cur().kind != TokKind::kBlockEnd) {
    if (!s->assigns.empty()) expect_op(",");
    ExprPtr target = parse_assign_target(true, {}, false);
    expect_op("=");
    s->assigns.emplace_back(std::move(target), parse_expression(true));
  }
  s->body = parse_body({"endwith"});
  end_name();
  expect_block_end();
  return s;
}

// Names, tuples of names, or (with_namespace) `ns.attr`.
ExprPtr Parser::parse_assign_target(bool with_tuple, std::vector<const char*> extra_end,
                                    bool with_namespace) {
  const Token& start = cur();
  ExprPtr t = with_tuple ? parse_tuple(true, true, extra_end, false, with_namespace)
                         : parse_primary(with_namespace);
  auto assignable = [](const Expr& e) {
    return e.kind == ExprKind::kName ||
           (e.kind == ExprKind::kGetAttr && e.args[0] && e.args[0]->kind == ExprKind::kName);
  };
  bool ok = assignable(*t);
  if (t->kind == ExprKind::kTuple) {
    ok = true;
    for (const auto& a : t->args) ok = ok && a->kind == ExprKind::kName;
  }
  if (!ok) error_at(start, "cannot assign to this expression");
  return t;
}

std::unique_ptr<Program> parse_program(std::string_view source, const LexOptions& options) {
  return Parser(lex(source, options)).run();
}

}  // namespace kiln::jinja
