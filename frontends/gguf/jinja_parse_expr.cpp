// The expression half of the parser: jinja2's precedence from conditional expressions down
// to primaries, postfix subscripts and calls, filters and tests.
#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_parser_impl.h"

namespace kiln::jinja {

ExprPtr Parser::parse_expression(bool with_condexpr) {
  DepthGuard g(*this);
  return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr Parser::parse_condexpr() {
  int line = cur().line;
  ExprPtr e = parse_or();
  while (skip_name("if")) {
    auto c = node(ExprKind::kCond, line);
    attach(*c, parse_or());
    attach(*c, std::move(e));
    attach(*c, skip_name("else") ? parse_condexpr() : nullptr);
    e = std::move(c);
    line = cur().line;
  }
  return e;
}

ExprPtr Parser::parse_or() {
  ExprPtr e = parse_and();
  while (is_name("or")) {
    auto o = node(ExprKind::kOr, cur().line);
    next();
    attach(*o, std::move(e));
    attach(*o, parse_and());
    e = std::move(o);
  }
  return e;
}

ExprPtr Parser::parse_and() {
  ExprPtr e = parse_not();
  while (is_name("and")) {
    auto a = node(ExprKind::kAnd, cur().line);
    next();
    attach(*a, std::move(e));
    attach(*a, parse_not());
    e = std::move(a);
  }
  return e;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    DepthGuard g(*this);
    auto n = node(ExprKind::kNot, cur().line);
    next();
    attach(*n, parse_not());
    return n;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  int line = cur().line;
  ExprPtr first = parse_math1();
  ExprPtr cmp;
  while (true) {
    CmpOp op;
    if (is_op("=="))
      op = CmpOp::kEq;
    else if (is_op("!="))
      op = CmpOp::kNe;
    else if (is_op("<"))
      op = CmpOp::kLt;
    else if (is_op("<="))
      op = CmpOp::kLe;
    else if (is_op(">"))
      op = CmpOp::kGt;
    else if (is_op(">="))
      op = CmpOp::kGe;
    else if (is_name("in"))
      op = CmpOp::kIn;
    else if (is_name("not") && peek().kind == TokKind::kName && peek().text == "in") {
      next();
      op = CmpOp::kNotIn;
    } else {
      break;
    }
    next();
    if (!cmp) {
      cmp = node(ExprKind::kCompare, line);
      attach(*cmp, std::move(first));
    }
    cmp->cmp.push_back(op);
    attach(*cmp, parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(first);
}

ExprPtr Parser::binary(BinOp op, ExprPtr l, ExprPtr r, int line) {
  auto b = node(ExprKind::kBinary, line);
  b->op = op;
  attach(*b, std::move(l));
  attach(*b, std::move(r));
  return b;
}

ExprPtr Parser::parse_math1() {
  ExprPtr e = parse_concat();
  while (is_op("+") || is_op("-")) {
    BinOp op = is_op("+") ? BinOp::kAdd : BinOp::kSub;
    int line = cur().line;
    next();
    e = binary(op, std::move(e), parse_concat(), line);
  }
  return e;
}

ExprPtr Parser::parse_concat() {
  int line = cur().line;
  ExprPtr e = parse_math2();
  if (!is_op("~")) return e;
  auto c = node(ExprKind::kConcat, line);
  attach(*c, std::move(e));
  while (skip_op("~")) attach(*c, parse_math2());
  return c;
}

ExprPtr Parser::parse_math2() {
  ExprPtr e = parse_pow();
  while (true) {
    BinOp op;
    if (is_op("*"))
      op = BinOp::kMul;
    else if (is_op("/"))
      op = BinOp::kDiv;
    else if (is_op("//"))
      op = BinOp::kFloorDiv;
    else if (is_op("%"))
      op = BinOp::kMod;
    else
      break;
    int line = cur().line;
    next();
    e = binary(op, std::move(e), parse_pow(), line);
  }
  return e;
}

ExprPtr Parser::parse_pow() {
  ExprPtr e = parse_unary(true);
  while (is_op("**")) {
    int line = cur().line;
    next();
    e = binary(BinOp::kPow, std::move(e), parse_unary(true), line);
  }
  return e;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  ExprPtr e;
  if (is_op("-") || is_op("+")) {
    DepthGuard g(*this);
    e = node(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().line);
    next();
    attach(*e, parse_unary(false));
  } else {
    e = parse_primary(false);
  }
  e = parse_postfix(std::move(e));
  if (with_filter) e = parse_filter_expr(std::move(e));
  return e;
}

ExprPtr Parser::parse_primary(bool with_namespace) {
  DepthGuard g(*this);
  const Token& tok = cur();
  int line = tok.line;
  switch (tok.kind) {
    case TokKind::kName: {
      std::string n = tok.text;
      next();
      if (n == "true" || n == "True" || n == "false" || n == "False") {
        auto c = node(ExprKind::kConst, line);
        c->value = Value::boolean(n == "true" || n == "True");
        return c;
      }
      if (n == "none" || n == "None") {
        auto c = node(ExprKind::kConst, line);
        c->value = Value::none();
        return c;
      }
      auto name = node(ExprKind::kName, line);
      name->name = n;
      if (n == "loop") ++loop_refs_;
      if (with_namespace && is_op(".")) {
        next();
        auto attr = node(ExprKind::kGetAttr, line);
        attr->name = expect_name();
        attach(*attr, std::move(name));
        return attr;
      }
      return name;
    }
    case TokKind::kString: {
      std::string s;
      while (cur().kind == TokKind::kString) {
        s += cur().text;
        next();
      }
      auto c = node(ExprKind::kConst, line);
      c->value = Value::string(std::move(s));
      return c;
    }
    case TokKind::kInt:
    case TokKind::kFloat: {
      auto c = node(ExprKind::kConst, line);
      c->value = tok.kind == TokKind::kInt ? Value::integer(tok.int_value)
                                           : Value::number(tok.float_value);
      next();
      return c;
    }
    case TokKind::kOp:
      if (tok.text == "(") {
        next();
        ExprPtr e = parse_tuple(false, true, {}, true, false);
        expect_op(")");
        return e;
      }
      if (tok.text == "[") return parse_list();
      if (tok.text == "{") return parse_dict();
      break;
    default:
      break;
  }
  error_at(tok, "unexpected " + describe(tok));
}

bool Parser::is_tuple_end(const std::vector<const char*>& extra) const {
  if (cur().kind == TokKind::kVarEnd || cur().kind == TokKind::kBlockEnd || is_op(")")) return true;
  for (const char* e : extra)
    if (is_name(e)) return true;
  return false;
}

ExprPtr Parser::parse_tuple(bool simplified, bool with_condexpr,
                            const std::vector<const char*>& extra, bool explicit_parens,
                            bool with_namespace) {
  int line = cur().line;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end(extra)) break;
    items.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
    if (is_op(","))
      is_tuple = true;
    else
      break;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) unexpected("an expression");
  }
  auto t = node(ExprKind::kTuple, line);
  for (auto& item : items) attach(*t, std::move(item));
  return t;
}

ExprPtr Parser::parse_list() {
  auto l = node(ExprKind::kList, cur().line);
  expect_op("[");
  while (!is_op("]")) {
    if (!l->args.empty()) expect_op(",");
    if (is_op("]")) break;
    attach(*l, parse_expression(true));
  }
  expect_op("]");
  return l;
}

ExprPtr Parser::parse_dict() {
  auto d = node(ExprKind::kDict, cur().line);
  expect_op("{");
  while (!is_op("}")) {
    if (!d->args.empty()) expect_op(",");
    if (is_op("}")) break;
    attach(*d, parse_expression(true));
    expect_op(":");
    attach(*d, parse_expression(true));
  }
  expect_op("}");
  return d;
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  while (true) {
    if (is_op(".") || is_op("["))
      e = parse_subscript(std::move(e));
    else if (is_op("("))
      e = parse_call(std::move(e));
    else
      return e;
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr e) {
  while (true) {
    if (is_op("|"))
      e = parse_filter(std::move(e), false);
    else if (is_name("is"))
      e = parse_test(std::move(e));
    else if (is_op("("))
      e = parse_call(std::move(e));
    else
      return e;
  }
}

ExprPtr Parser::parse_subscript(ExprPtr e) {
  DepthGuard g(*this);
  int line = cur().line;
  if (skip_op(".")) {
    const Token& a = cur();
    if (a.kind == TokKind::kName) {
      auto g2 = node(ExprKind::kGetAttr, line);
      g2->name = a.text;
      attach(*g2, std::move(e));
      next();
      return g2;
    }
    if (a.kind != TokKind::kInt) unexpected("a name or number after '.'");
    auto idx = node(ExprKind::kConst, a.line);
    idx->value = Value::integer(a.int_value);
    next();
    auto item = node(ExprKind::kGetItem, line);
    attach(*item, std::move(e));
    attach(*item, std::move(idx));
    return item;
  }
  expect_op("[");
  std::vector<ExprPtr> subs;
  while (!is_op("]")) {
    if (!subs.empty()) expect_op(",");
    subs.push_back(parse_subscribed());
  }
  expect_op("]");
  auto item = node(ExprKind::kGetItem, line);
  attach(*item, std::move(e));
  if (subs.size() == 1) {
    attach(*item, std::move(subs[0]));
  } else {
    auto t = node(ExprKind::kTuple, line);
    for (auto& sub : subs) attach(*t, std::move(sub));
    attach(*item, std::move(t));
  }
  return item;
}

ExprPtr Parser::parse_subscribed() {
  int line = cur().line;
  std::vector<ExprPtr> parts;
  if (is_op(":")) {
    next();
    parts.push_back(nullptr);
  } else {
    ExprPtr e = parse_expression(true);
    if (!is_op(":")) return e;
    next();
    parts.push_back(std::move(e));
  }
  if (is_op(":") || is_op("]") || is_op(","))
    parts.push_back(nullptr);
  else
    parts.push_back(parse_expression(true));
  if (skip_op(":")) {
    if (is_op("]") || is_op(","))
      parts.push_back(nullptr);
    else
      parts.push_back(parse_expression(true));
  } else {
    parts.push_back(nullptr);
  }
  auto s = node(ExprKind::kSlice, line);
  for (auto& part : parts) attach(*s, std::move(part));
  return s;
}

void Parser::parse_call_args(Expr& call) {
  const Token& open = cur();
  expect_op("(");
  bool need_comma = false;
  auto ensure = [&](bool ok) {
    if (!ok) error_at(open, "invalid syntax for function call expression");
  };
  while (!is_op(")")) {
    if (need_comma) {
      expect_op(",");
      if (is_op(")")) break;
    }
    if (is_op("*")) {
      ensure(!call.dyn_args && !call.dyn_kwargs);
      next();
      call.dyn_args = parse_expression(true);
      note_depth(call, *call.dyn_args);
    } else if (is_op("**")) {
      ensure(!call.dyn_kwargs);
      next();
      call.dyn_kwargs = parse_expression(true);
      note_depth(call, *call.dyn_kwargs);
    } else if (cur().kind == TokKind::kName && peek().kind == TokKind::kOp && peek().text == "=") {
      ensure(!call.dyn_kwargs);
      std::string key = cur().text;
      next();
      next();
      call.kwargs.emplace_back(std::move(key), parse_expression(true));
      note_depth(call, *call.kwargs.back().second);
    } else {
      ensure(!call.dyn_args && !call.dyn_kwargs && call.kwargs.empty());
      attach(call, parse_expression(true));
    }
    need_comma = true;
  }
  expect_op(")");
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  DepthGuard g(*this);
  auto c = node(ExprKind::kCall, cur().line);
  attach(*c, std::move(callee));
  parse_call_args(*c);
  return c;
}

std::string Parser::dotted_name() {
  std::string n = expect_name();
  while (skip_op(".")) n += "." + expect_name();
  return n;
}

ExprPtr Parser::parse_filter(ExprPtr input, bool start_inline) {
  while (is_op("|") || start_inline) {
    DepthGuard g(*this);
    if (!start_inline) next();
    start_inline = false;
    const Token& name_tok = cur();
    auto f = node(ExprKind::kFilter, name_tok.line);
    f->name = dotted_name();
    f->filter = find_filter(f->name);
    if (!f->filter)
      error_at(name_tok, std::string(is_jinja2_filter(f->name) ? "unsupported" : "unknown") +
                             " filter '" + f->name + "'");
    attach(*f, std::move(input));
    if (is_op("(")) parse_call_args(*f);
    if (f->dyn_args || f->dyn_kwargs)
      error_at(name_tok, "unsupported feature: *args or **kwargs in a filter call");
    input = std::move(f);
  }
  return input;
}

ExprPtr Parser::parse_test(ExprPtr input) {
  DepthGuard g(*this);
  int line = cur().line;
  next();  // is
  bool negated = skip_name("not");
  const Token& name_tok = cur();
  auto t = node(ExprKind::kTest, line);
  t->name = dotted_name();
  t->test = find_test(t->name);
  if (!t->test)
    error_at(name_tok, std::string(is_jinja2_test(t->name) ? "unsupported" : "unknown") +
                           " test '" + t->name + "'");
  attach(*t, std::move(input));
  if (is_op("(")) {
    parse_call_args(*t);
    if (t->dyn_args || t->dyn_kwargs)
      error_at(name_tok, "unsupported feature: *args or **kwargs in a test call");
  } else if ((cur().kind == TokKind::kName || cur().kind == TokKind::kString ||
              cur().kind == TokKind::kInt || cur().kind == TokKind::kFloat || is_op("(") ||
              is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) error_at(cur(), "you cannot chain multiple tests with 'is'");
    attach(*t, parse_postfix(parse_primary(false)));
  }
  if (!negated) return t;
  auto n = node(ExprKind::kNot, line);
  attach(*n, std::move(t));
  return n;
}

}  // namespace kiln::jinja
