// Expression evaluation: names, operators, subscripts and slices, calls and filters, and
// jinja2's attribute and item lookup rules (getattr first for `.`, getitem first for `[]`).
#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_interp.h"

namespace kiln::jinja {
namespace {

const char* cmp_name(CmpOp op) {
  switch (op) {
    case CmpOp::kEq:
      return "==";
    case CmpOp::kNe:
      return "!=";
    case CmpOp::kLt:
      return "<";
    case CmpOp::kLe:
      return "<=";
    case CmpOp::kGt:
      return ">";
    case CmpOp::kGe:
      return ">=";
    case CmpOp::kIn:
      return "in";
    case CmpOp::kNotIn:
      return "not in";
  }
  return "?";
}

bool compare(CmpOp op, const Value& a, const Value& b) {
  switch (op) {
    case CmpOp::kEq:
      return equals(a, b);
    case CmpOp::kNe:
      return !equals(a, b);
    case CmpOp::kIn:
      return contains(b, a);
    case CmpOp::kNotIn:
      return !contains(b, a);
    default:
      break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  bool orderable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                   (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple());
  if (!orderable)
    fail("'", cmp_name(op), "' not supported between instances of '", a.type_name(), "' and '",
         b.type_name(), "'");
  switch (op) {
    case CmpOp::kLt:
      return less(a, b);
    case CmpOp::kLe:
      return less(a, b) || equals(a, b);
    case CmpOp::kGt:
      return less(b, a);
    case CmpOp::kGe:
      return less(b, a) || equals(a, b);
    default:
      return false;
  }
}

void check_hashable(const Value& k) {
  if (k.is_list() && !k.is_tuple()) fail("unhashable type: 'list'");
  if (k.is_mapping()) fail("unhashable type: 'dict'");
  if (k.is_list())
    for (const Value& x : k.items()) check_hashable(x);
}

}  // namespace

Value Interp::lookup(std::string_view name, Scope& scope) {
  for (Scope* s = &scope; s; s = s->parent)
    if (Value* v = s->find_local(name)) return *v;
  Value g = find_global(name);
  if (!g.is_undefined()) return g;
  return Value::undefined("'" + std::string(name) + "' is undefined");
}

Value Interp::eval_expr(const Expr& e, Scope& scope) {
  return eval(e, scope);
}

Value Interp::eval(const Expr& e, Scope& scope) {
  DepthGuard g(*this);
  charge(1);
  try {
    return eval_inner(e, scope);
  } catch (Failure& f) {
    if (!f.line) f.line = e.line;
    throw;
  }
}

Value Interp::eval_inner(const Expr& e, Scope& scope) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.value;
    case ExprKind::kName:
      return lookup(e.name, scope);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      Value v = e.kind == ExprKind::kList ? Value::list(std::move(items))
                                          : Value::tuple(std::move(items));
      if (v.depth() > kMaxValueDepth) fail("value nested too deeply");
      return v;
    }
    case ExprKind::kDict: {
      std::vector<std::pair<Value, Value>> entries;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i], scope);
        check_hashable(k);
        entries.emplace_back(std::move(k), eval(*e.args[i + 1], scope));
      }
      Value v = Value::dict(std::move(entries));
      if (v.depth() > kMaxValueDepth) fail("value nested too deeply");
      return v;
    }
    case ExprKind::kGetAttr:
      return get_attr(eval(*e.args[0], scope), e.name);
    case ExprKind::kGetItem:
      return eval_getitem(e, scope);
    case ExprKind::kSlice:
      fail("unexpected slice");
    case ExprKind::kCall:
      return eval_call(e, scope);
    case ExprKind::kFilter:
      return eval_filter(e, scope, nullptr);
    case ExprKind::kTest: {
      Value input = eval(*e.args[0], scope);
      CallArgs args = eval_args(e, scope, 1);
      return Value::boolean(e.test(*this, input, args));
    }
    case ExprKind::kNeg:
      return negate(eval(*e.args[0], scope));
    case ExprKind::kPos: {
      Value v = eval(*e.args[0], scope);
      if (v.is_undefined()) fail_undefined(v);
      if (!v.is_number()) fail("bad operand type for unary +: '", v.type_name(), "'");
      return v.is_bool() ? Value::integer(v.as_int()) : v;
    }
    case ExprKind::kNot:
      return Value::boolean(!truthy(eval(*e.args[0], scope)));
    case ExprKind::kBinary: {
      Value a = eval(*e.args[0], scope);
      Value b = eval(*e.args[1], scope);
      if (e.op == BinOp::kMod && a.is_string()) {  // Python's printf-style "fmt % args"
        CallArgs args;
        if (b.is_tuple())
          args.pos = b.items();
        else
          args.pos.push_back(b);
        if (b.is_mapping())  // "%(key)s" looks keys up; a bare "%s" prints the whole dict
          for (const auto& [k, x] : b.dict_data().entries) args.kw.emplace_back(to_str(k), x);
        Value v = Value::string(format_percent(a.as_string(), args));
        charge_value(v);
        return v;
      }
      Value v = binary(e.op, a, b, max_bytes());
      charge_value(v);
      return v;
    }
    case ExprKind::kAnd: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? eval(*e.args[1], scope) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.args[0], scope);
      return truthy(a) ? a : eval(*e.args[1], scope);
    }
    case ExprKind::kCompare:
      return eval_compare(e, scope);
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& a : e.args) {
        Value v = eval(*a, scope);
        s += v.is_string() ? v.as_string() : to_str(v);
        if (s.size() > max_bytes()) fail("string too long");
      }
      Value v = Value::string(std::move(s));
      charge_value(v);
      return v;
    }
    case ExprKind::kCond:
      if (truthy(eval(*e.args[0], scope))) return eval(*e.args[1], scope);
      if (e.args[2]) return eval(*e.args[2], scope);
      return Value::undefined("the inline if-expression on line " + format_int(e.line) +
                              " evaluated to false and no else section was defined");
  }
  return Value();
}

Value Interp::eval_compare(const Expr& e, Scope& scope) {
  Value left = eval(*e.args[0], scope);
  for (size_t i = 0; i < e.cmp.size(); ++i) {
    Value right = eval(*e.args[i + 1], scope);
    if (!compare(e.cmp[i], left, right)) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interp::eval_getitem(const Expr& e, Scope& scope) {
  Value obj = eval(*e.args[0], scope);
  const Expr& idx = *e.args[1];
  if (idx.kind != ExprKind::kSlice) return get_item(obj, eval(idx, scope));
  if (obj.is_undefined()) fail_undefined(obj);
  std::optional<int64_t> bounds[3];
  bool valid = true;
  for (int i = 0; i < 3; ++i) {
    if (!idx.args[size_t(i)]) continue;
    Value b = eval(*idx.args[size_t(i)], scope);
    if (b.is_none()) continue;
    if (b.is_int() || b.is_bool())
      bounds[i] = b.as_int();
    else
      valid = false;
  }
  if (!valid || !(obj.is_list() || obj.is_string()))
    return Value::undefined("'" + std::string(obj.type_name()) + " object' cannot be sliced");
  if (bounds[2] && *bounds[2] == 0) fail("slice step cannot be zero");
  Value v = slice(obj, bounds[0], bounds[1], bounds[2]);
  charge_value(v);
  return v;
}

CallArgs Interp::eval_args(const Expr& e, Scope& scope, size_t first) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) a.pos.push_back(eval(*e.args[i], scope));
  for (const auto& [k, v] : e.kwargs) a.kw.emplace_back(k, eval(*v, scope));
  if (e.dyn_args)
    for (Value& v : iterate(eval(*e.dyn_args, scope))) a.pos.push_back(std::move(v));
  if (e.dyn_kwargs) {
    Value d = eval(*e.dyn_kwargs, scope);
    if (!d.is_mapping()) fail("argument after ** must be a mapping, not ", d.type_name());
    for (const auto& [k, v] : d.dict_data().entries) {
      if (!k.is_string()) fail("keywords must be strings");
      a.kw.emplace_back(k.as_string(), v);
    }
  }
  return a;
}

Value Interp::eval_call(const Expr& e, Scope& scope) {
  Value fn = eval(*e.args[0], scope);
  CallArgs args = eval_args(e, scope, 1);
  return call(fn, std::move(args));
}

Value Interp::call(const Value& fn, CallArgs args) {
  if (fn.is_undefined()) fail_undefined(fn);
  if (!fn.is_callable()) fail("'", fn.type_name(), "' object is not callable");
  charge(1);
  Value v = fn.callable_ptr()->call(*this, args);
  charge_value(v);
  return v;
}

Value Interp::eval_filter(const Expr& e, Scope& scope, const Value* block_input) {
  Value input;
  const Expr* in = e.args[0].get();
  if (!in)
    input = *block_input;
  else if (block_input && in->kind == ExprKind::kFilter)
    input = eval_filter(*in, scope, block_input);
  else
    input = eval(*in, scope);
  CallArgs args = eval_args(e, scope, 1);
  try {
    Value v = e.filter(*this, input, args);
    charge_value(v);
    return v;
  } catch (Failure& f) {
    if (!f.line) f.line = e.line;
    throw;
  }
}

namespace {

// How jinja2 names an object in its undefined messages: "None", or "dict object".
std::string type_repr(const Value& v) {
  return v.is_none() ? "None" : std::string(v.type_name()) + " object";
}

}  // namespace

Value Interp::get_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_dict()) {
    if (obj.is_mapping())
      if (std::optional<Value> m = find_method(obj, name)) return *m;
    if (const Value* v = obj.dict_data().find(name)) return *v;
  } else if (std::optional<Value> m = find_method(obj, name)) {
    return *m;
  }
  return Value::undefined("'" + type_repr(obj) + "' has no attribute '" + std::string(name) + "'");
}

Value Interp::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_mapping()) {
    if (const Value* v = obj.dict_data().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = int64_t(obj.items().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.items()[size_t(i)];
    } else {
      Value ch = slice(obj, i, i == -1 ? std::nullopt : std::optional<int64_t>(i + 1), 1);
      if (!ch.as_string().empty()) return ch;
    }
    return Value::undefined(type_repr(obj) + " has no element " + format_int(key.as_int()));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined(type_repr(obj) + " has no element " + repr(key));
}

}  // namespace kiln::jinja
