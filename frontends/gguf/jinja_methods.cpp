// Python methods of str, list and dict as templates call them (message.content.strip(),
// tool.items(), ...). Methods that would mutate a value are refused, as in jinja2's
// ImmutableSandboxedEnvironment; real Python methods kiln lacks fail when called.
#include <algorithm>

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {
namespace {

using MethodFn = Value (*)(Interp&, const Value& self, CallArgs&);

struct BoundMethod : Callable {
  Value self;
  MethodFn fn = nullptr;
  std::string name;
  std::string describe() const override {
    return "method '" + std::string(self.type_name()) + "." + name + "'";
  }
  Value call(Interp& in, CallArgs& args) const override {
    if (!fn) fail("unsupported method '", self.type_name(), ".", name, "'");
    return fn(in, self, args);
  }
};

const std::string& str_of(const Value& self) {
  return self.as_string();
}

std::string required_str(const std::optional<Value>& v, const char* fn, const char* what) {
  if (!v) fail(fn, "() missing required argument '", what, "'");
  if (!v->is_string()) fail(fn, "() argument must be str, not ", v->type_name());
  return v->as_string();
}

const std::string* chars_arg(const std::optional<Value>& v, std::string& storage) {
  if (!v || v->is_none()) return nullptr;
  if (!v->is_string()) fail("strip arg must be None or str");
  storage = v->as_string();
  return &storage;
}

// Code-point bounds [start, end) as Python's str methods take them, in bytes.
std::pair<size_t, size_t> byte_range(const std::string& s, const std::optional<Value>& start,
                                     const std::optional<Value>& end) {
  std::vector<size_t> offs = unicode::offsets(s);
  int64_t n = int64_t(offs.size() - 1);
  auto norm = [&](const std::optional<Value>& v, int64_t dflt) {
    if (!v || v->is_none()) return dflt;
    if (!v->is_int() && !v->is_bool()) fail("slice indices must be integers or None");
    int64_t i = v->as_int();
    if (i < 0) i = std::max<int64_t>(0, i + n);
    return std::min(i, n);
  };
  int64_t b = norm(start, 0), e = norm(end, n);
  if (e < b) e = b;
  return {offs[size_t(b)], offs[size_t(e)]};
}

Value m_fix_ends(const Value& self, CallArgs& a, const char* name, bool at_start) {
  auto p = bind_args(a, name, {"prefix", "start", "end"});
  if (!p[0]) fail(name, "() takes at least 1 argument");
  const std::string& s = str_of(self);
  auto [b, e] = byte_range(s, p[1], p[2]);
  std::string_view view = std::string_view(s).substr(b, e - b);
  auto test = [&](const Value& x) {
    if (!x.is_string()) fail(name, " first arg must be str or a tuple of str, not ", x.type_name());
    const std::string& fix = x.as_string();
    if (fix.size() > view.size()) return false;
    return at_start ? view.substr(0, fix.size()) == fix
                    : view.substr(view.size() - fix.size()) == fix;
  };
  if (p[0]->is_tuple()) {
    for (const Value& x : p[0]->items())
      if (test(x)) return Value::boolean(true);
    return Value::boolean(false);
  }
  return Value::boolean(test(*p[0]));
}

Value m_startswith(Interp&, const Value& self, CallArgs& a) {
  return m_fix_ends(self, a, "startswith", true);
}
Value m_endswith(Interp&, const Value& self, CallArgs& a) {
  return m_fix_ends(self, a, "endswith", false);
}

Value m_strip_impl(const Value& self, CallArgs& a, const char* name, bool l, bool r) {
  auto p = bind_args(a, name, {"chars"});
  std::string storage;
  return Value::string(unicode::strip(str_of(self), l, r, chars_arg(p[0], storage)));
}
Value m_strip(Interp&, const Value& s, CallArgs& a) {
  return m_strip_impl(s, a, "strip", 1, 1);
}
Value m_lstrip(Interp&, const Value& s, CallArgs& a) {
  return m_strip_impl(s, a, "lstrip", 1, 0);
}
Value m_rstrip(Interp&, const Value& s, CallArgs& a) {
  return m_strip_impl(s, a, "rstrip", 0, 1);
}

Value m_split_impl(Interp& in, const Value& self, CallArgs& a, bool right) {
  auto p = bind_args(a, right ? "rsplit" : "split", {"sep", "maxsplit"});
  const std::string& s = str_of(self);
  int64_t maxsplit = -1;
  if (p[1]) {
    if (!p[1]->is_int() && !p[1]->is_bool()) fail("maxsplit must be an integer");
    maxsplit = p[1]->as_int();
  }
  std::vector<std::string> parts;
  if (!p[0] || p[0]->is_none()) {
    // Runs of whitespace separate; leading and trailing whitespace yields no empty parts.
    std::vector<uint32_t> cps = unicode::decode(s);
    std::vector<std::pair<size_t, size_t>> words;  // code point ranges
    for (size_t i = 0; i < cps.size();) {
      while (i < cps.size() && unicode::is_space(cps[i])) ++i;
      if (i == cps.size()) break;
      size_t j = i;
      while (j < cps.size() && !unicode::is_space(cps[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    auto text = [&](size_t b, size_t e) {
      return unicode::encode(std::vector<uint32_t>(cps.begin() + long(b), cps.begin() + long(e)));
    };
    if (maxsplit < 0 || size_t(maxsplit) >= words.size()) {
      for (auto [b, e] : words) parts.push_back(text(b, e));
    } else if (!right) {
      // After maxsplit splits the rest is kept as is, trailing whitespace included.
      for (size_t k = 0; k < size_t(maxsplit); ++k)
        parts.push_back(text(words[k].first, words[k].second));
      parts.push_back(text(words[size_t(maxsplit)].first, cps.size()));
    } else {
      size_t keep = words.size() - size_t(maxsplit);
      parts.push_back(text(0, words[keep - 1].second));
      for (size_t k = keep; k < words.size(); ++k)
        parts.push_back(text(words[k].first, words[k].second));
    }
  } else {
    if (!p[0]->is_string()) fail("must be str or None, not ", p[0]->type_name());
    const std::string& sep = p[0]->as_string();
    if (sep.empty()) fail("empty separator");
    if (!right) {
      size_t pos = 0;
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        size_t hit = s.find(sep, pos);
        if (hit == std::string::npos) break;
        parts.push_back(s.substr(pos, hit - pos));
        pos = hit + sep.size();
        in.charge(1);
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        if (end < sep.size()) break;
        size_t hit = s.rfind(sep, end - sep.size());
        if (hit == std::string::npos) break;
        rev.push_back(s.substr(hit + sep.size(), end - hit - sep.size()));
        end = hit;
        in.charge(1);
      }
      rev.push_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& x : parts) out.push_back(Value::string(std::move(x)));
  return Value::list(std::move(out));
}
Value m_split(Interp& in, const Value& s, CallArgs& a) {
  return m_split_impl(in, s, a, false);
}
Value m_rsplit(Interp& in, const Value& s, CallArgs& a) {
  return m_split_impl(in, s, a, true);
}

Value m_splitlines(Interp&, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "splitlines", {"keepends"});
  if (p[0] && truthy(*p[0])) fail("splitlines(keepends=True) is not supported");
  std::vector<Value> out;
  for (auto& l : split_lines(str_of(self))) out.push_back(Value::string(std::move(l)));
  return Value::list(std::move(out));
}

Value m_replace(Interp& in, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "replace", {"old", "new", "count"});
  CallArgs fa;
  fa.pos = {Value::string(required_str(p[0], "replace", "old")),
            Value::string(required_str(p[1], "replace", "new"))};
  if (p[2]) fa.pos.push_back(*p[2]);
  return call_filter(in, Value::string("replace"), self, fa);
}

Value m_upper(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "upper", {});
  return Value::string(unicode::upper(str_of(self)));
}
Value m_lower(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "lower", {});
  return Value::string(unicode::lower(str_of(self)));
}
Value m_capitalize(Interp& in, const Value& self, CallArgs& a) {
  return call_filter(in, Value::string("capitalize"), self, a);
}

// Python's str.title: a cased character after an uncased one starts a word.
Value m_title(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "title", {});
  const std::string& s = str_of(self);
  std::string out;
  bool prev_cased = false;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    bool cased = unicode::is_upper(cp) || unicode::is_lower(cp);
    if (cased && prev_cased)
      unicode::append_lower(out, cp);
    else if (cased)
      unicode::append_upper(out, cp);
    else
      unicode::append(out, cp);
    prev_cased = cased;
  }
  return Value::string(std::move(out));
}

Value m_swapcase(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "swapcase", {});
  const std::string& s = str_of(self);
  std::string out;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    if (unicode::is_upper(cp))
      unicode::append_lower(out, cp);
    else if (unicode::is_lower(cp))
      unicode::append_upper(out, cp);
    else
      unicode::append(out, cp);
  }
  return Value::string(std::move(out));
}

Value m_find_impl(const Value& self, CallArgs& a, const char* name, bool right, bool raise) {
  auto p = bind_args(a, name, {"sub", "start", "end"});
  std::string sub = required_str(p[0], name, "sub");
  const std::string& s = str_of(self);
  auto [b, e] = byte_range(s, p[1], p[2]);
  std::string_view view = std::string_view(s).substr(b, e - b);
  size_t hit = right ? view.rfind(sub) : view.find(sub);
  if (hit == std::string_view::npos) {
    if (raise) fail("substring not found");
    return Value::integer(-1);
  }
  return Value::integer(int64_t(unicode::length(std::string_view(s).substr(0, b + hit))));
}
Value m_find(Interp&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "find", 0, 0);
}
Value m_rfind(Interp&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "rfind", 1, 0);
}
Value m_index(Interp&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "index", 0, 1);
}
Value m_rindex(Interp&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "rindex", 1, 1);
}

Value m_count(Interp&, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "count", {"sub", "start", "end"});
  std::string sub = required_str(p[0], "count", "sub");
  const std::string& s = str_of(self);
  auto [b, e] = byte_range(s, p[1], p[2]);
  std::string_view view = std::string_view(s).substr(b, e - b);
  if (sub.empty()) return Value::integer(int64_t(unicode::length(view)) + 1);
  int64_t n = 0;
  for (size_t pos = view.find(sub); pos != std::string_view::npos;
       pos = view.find(sub, pos + sub.size()))
    ++n;
  return Value::integer(n);
}

Value m_join(Interp& in, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "join", {"iterable"});
  if (!p[0]) fail("join() takes exactly one argument");
  std::string out;
  size_t i = 0;
  for (const Value& x : iterate(*p[0])) {
    if (!x.is_string())
      fail("sequence item ", format_int(int64_t(i)), ": expected str instance, ", x.type_name(),
           " found");
    if (i++) out += str_of(self);
    out += x.as_string();
    if (out.size() > in.max_bytes()) fail("string too long");
  }
  return Value::string(std::move(out));
}

Value m_format(Interp&, const Value& self, CallArgs& a) {
  return Value::string(format_braces(str_of(self), a));
}

template <bool (*Pred)(uint32_t)>
Value m_is(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "is...", {});
  const std::string& s = str_of(self);
  if (s.empty()) return Value::boolean(false);
  for (size_t pos = 0; pos < s.size();)
    if (!Pred(unicode::next(s, pos))) return Value::boolean(false);
  return Value::boolean(true);
}
bool is_alnum(uint32_t cp) {
  return unicode::is_alpha(cp) || unicode::is_digit(cp);
}

Value m_islower(Interp& in, const Value& self, CallArgs& a) {
  return Value::boolean(call_test(in, Value::string("lower"), self, a));
}
Value m_isupper(Interp& in, const Value& self, CallArgs& a) {
  return Value::boolean(call_test(in, Value::string("upper"), self, a));
}

Value m_removefix(const Value& self, CallArgs& a, bool prefix) {
  auto p = bind_args(a, prefix ? "removeprefix" : "removesuffix", {"fix"});
  std::string fix = required_str(p[0], prefix ? "removeprefix" : "removesuffix", "fix");
  const std::string& s = str_of(self);
  if (prefix && s.compare(0, fix.size(), fix) == 0) return Value::string(s.substr(fix.size()));
  if (!prefix && s.size() >= fix.size() && s.compare(s.size() - fix.size(), fix.size(), fix) == 0)
    return Value::string(s.substr(0, s.size() - fix.size()));
  return self;
}
Value m_removeprefix(Interp&, const Value& s, CallArgs& a) {
  return m_removefix(s, a, true);
}
Value m_removesuffix(Interp&, const Value& s, CallArgs& a) {
  return m_removefix(s, a, false);
}

Value m_partition_impl(const Value& self, CallArgs& a, bool right) {
  auto p = bind_args(a, right ? "rpartition" : "partition", {"sep"});
  std::string sep = required_str(p[0], "partition", "sep");
  if (sep.empty()) fail("empty separator");
  const std::string& s = str_of(self);
  size_t hit = right ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    return right ? Value::tuple({Value::string(""), Value::string(""), self})
                 : Value::tuple({self, Value::string(""), Value::string("")});
  }
  return Value::tuple({Value::string(s.substr(0, hit)), Value::string(sep),
                       Value::string(s.substr(hit + sep.size()))});
}
Value m_partition(Interp&, const Value& s, CallArgs& a) {
  return m_partition_impl(s, a, false);
}
Value m_rpartition(Interp&, const Value& s, CallArgs& a) {
  return m_partition_impl(s, a, true);
}

Value m_pad(Interp& in, const Value& self, CallArgs& a, const char* name, int where) {
  auto p = bind_args(a, name, {"width", "fillchar"});
  if (!p[0] || !(p[0]->is_int() || p[0]->is_bool())) fail(name, "() needs an integer width");
  std::string fill = p[1] ? required_str(p[1], name, "fillchar") : " ";
  if (unicode::length(fill) != 1) fail("The fill character must be exactly one character long");
  const std::string& s = str_of(self);
  int64_t len = int64_t(unicode::length(s)), width = p[0]->as_int();
  if (width <= len) return self;
  if (uint64_t(width) * fill.size() > in.max_bytes()) fail("string too long");
  int64_t marg = width - len;
  int64_t left = where < 0 ? 0 : where > 0 ? marg : marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < marg; ++i) out += fill;
  return Value::string(std::move(out));
}
Value m_ljust(Interp& in, const Value& s, CallArgs& a) {
  return m_pad(in, s, a, "ljust", -1);
}
Value m_rjust(Interp& in, const Value& s, CallArgs& a) {
  return m_pad(in, s, a, "rjust", 1);
}
Value m_center(Interp& in, const Value& s, CallArgs& a) {
  return m_pad(in, s, a, "center", 0);
}

Value m_zfill(Interp& in, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "zfill", {"width"});
  if (!p[0] || !(p[0]->is_int() || p[0]->is_bool())) fail("zfill() needs an integer width");
  const std::string& s = str_of(self);
  int64_t len = int64_t(unicode::length(s)), width = p[0]->as_int();
  if (width <= len) return self;
  if (uint64_t(width) > in.max_bytes()) fail("string too long");
  size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  return Value::string(s.substr(0, sign) + std::string(size_t(width - len), '0') + s.substr(sign));
}

// dict methods
Value m_items(Interp& in, const Value& self, CallArgs& a) {
  return seq_filters::items(in, self, a);
}
Value m_keys(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "keys", {});
  return Value::list(iterate(self));
}
Value m_values(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "values", {});
  std::vector<Value> out;
  for (const auto& kv : self.dict_data().entries) out.push_back(kv.second);
  return Value::list(std::move(out));
}
Value m_get(Interp&, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "get", {"key", "default"});
  if (!p[0]) fail("get expected at least 1 argument, got 0");
  if (const Value* v = self.dict_data().find(*p[0])) return *v;
  return p[1] ? *p[1] : Value::none();
}
Value m_copy(Interp&, const Value& self, CallArgs& a) {
  bind_args(a, "copy", {});
  return self;  // values are immutable, so a copy is the value itself
}

// list methods
Value m_list_index(Interp&, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "index", {"value"});
  if (!p[0]) fail("index expected at least 1 argument, got 0");
  const auto& items = self.items();
  for (size_t i = 0; i < items.size(); ++i)
    if (equals(items[i], *p[0])) return Value::integer(int64_t(i));
  fail(repr(*p[0]), " is not in list");
}
Value m_list_count(Interp&, const Value& self, CallArgs& a) {
  auto p = bind_args(a, "count", {"value"});
  if (!p[0]) fail("count() takes exactly one argument");
  int64_t n = 0;
  for (const Value& x : self.items()) n += equals(x, *p[0]);
  return Value::integer(n);
}

struct MethodEntry {
  const char* name;
  MethodFn fn;  // nullptr: a Python method kiln does not implement
};

const MethodEntry kStrMethods[] = {
    {"startswith", m_startswith},
    {"endswith", m_endswith},
    {"strip", m_strip},
    {"lstrip", m_lstrip},
    {"rstrip", m_rstrip},
    {"split", m_split},
    {"rsplit", m_rsplit},
    {"splitlines", m_splitlines},
    {"replace", m_replace},
    {"upper", m_upper},
    {"lower", m_lower},
    {"capitalize", m_capitalize},
    {"title", m_title},
    {"swapcase", m_swapcase},
    {"find", m_find},
    {"rfind", m_rfind},
    {"index", m_index},
    {"rindex", m_rindex},
    {"count", m_count},
    {"join", m_join},
    {"format", m_format},
    {"isdigit", m_is<unicode::is_digit>},
    {"isdecimal", m_is<unicode::is_digit>},
    {"isnumeric", m_is<unicode::is_digit>},
    {"isalpha", m_is<unicode::is_alpha>},
    {"isalnum", m_is<is_alnum>},
    {"isspace", m_is<unicode::is_space>},
    {"islower", m_islower},
    {"isupper", m_isupper},
    {"removeprefix", m_removeprefix},
    {"removesuffix", m_removesuffix},
    {"partition", m_partition},
    {"rpartition", m_rpartition},
    {"ljust", m_ljust},
    {"rjust", m_rjust},
    {"center", m_center},
    {"zfill", m_zfill},
    {"casefold", nullptr},
    {"encode", nullptr},
    {"expandtabs", nullptr},
    {"format_map", nullptr},
    {"isascii", nullptr},
    {"isidentifier", nullptr},
    {"isprintable", nullptr},
    {"istitle", nullptr},
    {"maketrans", nullptr},
    {"translate", nullptr},
};

const MethodEntry kDictMethods[] = {
    {"items", m_items}, {"keys", m_keys}, {"values", m_values},
    {"get", m_get},     {"copy", m_copy}, {"fromkeys", nullptr},
};
const char* const kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};

const MethodEntry kListMethods[] = {
    {"index", m_list_index},
    {"count", m_list_count},
    {"copy", m_copy},
};
const char* const kListMutators[] = {"append", "clear",  "extend",  "insert",
                                     "pop",    "remove", "reverse", "sort"};

template <size_t N>
const MethodEntry* find_entry(const MethodEntry (&table)[N], std::string_view name) {
  for (const MethodEntry& e : table)
    if (name == e.name) return &e;
  return nullptr;
}

}  // namespace

std::optional<Value> find_method(const Value& obj, std::string_view name) {
  const MethodEntry* e = nullptr;
  if (obj.is_string()) {
    e = find_entry(kStrMethods, name);
  } else if (obj.is_mapping()) {
    e = find_entry(kDictMethods, name);
    for (const char* m : kDictMutators)
      if (name == m)
        return Value::undefined("access to attribute '" + std::string(name) +
                                "' of 'dict' object is unsafe.");
  } else if (obj.is_list()) {
    e = find_entry(kListMethods, name);
    if (!obj.is_tuple())
      for (const char* m : kListMutators)
        if (name == m)
          return Value::undefined("access to attribute '" + std::string(name) +
                                  "' of 'list' object is unsafe.");
  }
  if (!e) return std::nullopt;
  auto m = std::make_shared<BoundMethod>();
  m->self = obj;
  m->fn = e->fn;
  m->name = e->name;
  return Value::callable(std::move(m));
}

}  // namespace kiln::jinja
