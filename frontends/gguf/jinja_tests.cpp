// The `is` tests of jinja2 3.1 (defined, none, string, mapping, iterable, number, odd, ...).
#include <cmath>

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {
namespace {

const Value& one_arg(CallArgs& a, const char* name) {
  if (a.pos.size() != 1 || !a.kw.empty()) fail("test '", name, "' takes exactly one argument");
  return a.pos[0];
}

void no_args(CallArgs& a, const char* name) {
  if (!a.pos.empty() || !a.kw.empty()) fail("test '", name, "' takes no arguments");
}

int64_t as_integer(const Value& v, const char* name) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float() && std::floor(v.as_float()) == v.as_float() && std::fabs(v.as_float()) < 9e18)
    return int64_t(v.as_float());
  fail("test '", name, "' needs a number, not ", v.type_name());
}

bool t_defined(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "defined");
  return !v.is_undefined();
}
bool t_undefined(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "undefined");
  return v.is_undefined();
}
bool t_none(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "none");
  return v.is_none();
}
bool t_boolean(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "boolean");
  return v.is_bool();
}
bool t_false(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "false");
  return v.is_bool() && !v.as_bool();
}
bool t_true(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "true");
  return v.is_bool() && v.as_bool();
}
bool t_integer(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "integer");
  return v.is_int();
}
bool t_float(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "float");
  return v.is_float();
}
bool t_number(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "number");
  return v.is_number();
}
bool t_string(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "string");
  return v.is_string();
}
bool t_mapping(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "mapping");
  return v.is_mapping();
}
bool t_iterable(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "iterable");
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping();
}
bool t_sequence(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "sequence");
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping();
}
bool t_callable(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "callable");
  return v.is_callable();
}
bool t_escaped(Interp&, const Value&, CallArgs& a) {
  no_args(a, "escaped");
  return false;  // kiln has no Markup strings
}
bool t_lower(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "lower");
  std::string s = to_str(v);
  bool cased = false;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    if (unicode::is_upper(cp)) return false;
    cased = cased || unicode::is_lower(cp);
  }
  return cased;
}
bool t_upper(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "upper");
  std::string s = to_str(v);
  bool cased = false;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    if (unicode::is_lower(cp)) return false;
    cased = cased || unicode::is_upper(cp);
  }
  return cased;
}
bool t_odd(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "odd");
  int64_t i = as_integer(v, "odd");
  return i % 2 != 0;
}
bool t_even(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "even");
  return as_integer(v, "even") % 2 == 0;
}
bool t_divisibleby(Interp&, const Value& v, CallArgs& a) {
  int64_t n = as_integer(one_arg(a, "divisibleby"), "divisibleby");
  if (n == 0) fail("integer division or modulo by zero");
  if (n == -1) return true;
  return as_integer(v, "divisibleby") % n == 0;
}
bool t_sameas(Interp&, const Value& v, CallArgs& a) {
  const Value& o = one_arg(a, "sameas");
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kUndefined:
      return true;
    case Value::Kind::kBool:
      return v.as_bool() == o.as_bool();
    case Value::Kind::kList:
      return &v.items() == &o.items();
    case Value::Kind::kDict:
      return &v.dict_data() == &o.dict_data();
    case Value::Kind::kCallable:
      return v.callable_ptr() == o.callable_ptr();
    default:
      return equals(v, o);
  }
}
bool t_in(Interp&, const Value& v, CallArgs& a) {
  return contains(one_arg(a, "in"), v);
}
bool t_eq(Interp&, const Value& v, CallArgs& a) {
  return equals(v, one_arg(a, "eq"));
}
bool t_ne(Interp&, const Value& v, CallArgs& a) {
  return !equals(v, one_arg(a, "ne"));
}
bool t_lt(Interp&, const Value& v, CallArgs& a) {
  return less(v, one_arg(a, "lt"));
}
bool t_gt(Interp&, const Value& v, CallArgs& a) {
  return less(one_arg(a, "gt"), v);
}
bool t_le(Interp&, const Value& v, CallArgs& a) {
  const Value& o = one_arg(a, "le");
  return less(v, o) || equals(v, o);
}
bool t_ge(Interp&, const Value& v, CallArgs& a) {
  const Value& o = one_arg(a, "ge");
  return less(o, v) || equals(v, o);
}
bool t_filter(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "filter");
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}
bool t_test(Interp&, const Value& v, CallArgs& a) {
  no_args(a, "test");
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct TestEntry {
  const char* name;
  TestFn fn;
};

const TestEntry kTests[] = {
    {"odd", t_odd},
    {"even", t_even},
    {"divisibleby", t_divisibleby},
    {"defined", t_defined},
    {"undefined", t_undefined},
    {"filter", t_filter},
    {"test", t_test},
    {"none", t_none},
    {"boolean", t_boolean},
    {"false", t_false},
    {"true", t_true},
    {"integer", t_integer},
    {"float", t_float},
    {"lower", t_lower},
    {"upper", t_upper},
    {"string", t_string},
    {"mapping", t_mapping},
    {"number", t_number},
    {"sequence", t_sequence},
    {"iterable", t_iterable},
    {"callable", t_callable},
    {"sameas", t_sameas},
    {"escaped", t_escaped},
    {"in", t_in},
    {"==", t_eq},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"!=", t_ne},
    {"ne", t_ne},
    {">", t_gt},
    {"gt", t_gt},
    {"greaterthan", t_gt},
    {">=", t_ge},
    {"ge", t_ge},
    {"<", t_lt},
    {"lt", t_lt},
    {"lessthan", t_lt},
    {"<=", t_le},
    {"le", t_le},
};

}  // namespace

TestFn find_test(std::string_view name) {
  for (const TestEntry& e : kTests)
    if (name == e.name) return e.fn;
  return nullptr;
}

bool is_jinja2_test(std::string_view name) {
  return find_test(name) != nullptr;
}

}  // namespace kiln::jinja
