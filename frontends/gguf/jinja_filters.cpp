// The filter registry and the string and number filters, each as jinja2 3.1 defines it, with
// tojson as Hugging Face transformers overrides it (json.dumps with ensure_ascii=False and the
// indent, separators and sort_keys arguments, no HTML escaping).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {
namespace {

std::string str_arg(const std::optional<Value>& v, const char* fallback) {
  return v ? to_str(*v) : std::string(fallback);
}

bool bool_arg(const std::optional<Value>& v, bool fallback) {
  return v ? truthy(*v) : fallback;
}

int64_t int_arg(const std::optional<Value>& v, int64_t fallback, const char* what) {
  if (!v) return fallback;
  if (!v->is_int() && !v->is_bool()) fail(what, " must be an integer, not ", v->type_name());
  return v->as_int();
}

Value f_upper(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "upper", {});
  return Value::string(unicode::upper(to_str(v)));
}

Value f_lower(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "lower", {});
  return Value::string(unicode::lower(to_str(v)));
}

Value f_capitalize(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "capitalize", {});
  std::string s = to_str(v), out;
  size_t pos = 0;
  if (!s.empty()) unicode::append_upper(out, unicode::next(s, pos));
  out += unicode::lower(std::string_view(s).substr(pos));
  return Value::string(std::move(out));
}

// jinja2's title: words start after runs of '-', whitespace, or any of "({[<".
Value f_title(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "title", {});
  std::string s = to_str(v), out;
  bool word_start = true;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    bool sep =
        cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || unicode::is_space(cp);
    if (sep) {
      unicode::append(out, cp);
      word_start = true;
    } else if (word_start) {
      unicode::append_upper(out, cp);
      word_start = false;
    } else {
      unicode::append_lower(out, cp);
    }
  }
  return Value::string(std::move(out));
}

Value f_trim(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "trim", {"chars"});
  std::string s = to_str(v);
  if (p[0] && !p[0]->is_none()) {
    std::string chars = to_str(*p[0]);
    return Value::string(unicode::strip(s, true, true, &chars));
  }
  return Value::string(unicode::strip(s, true, true, nullptr));
}

Value f_replace(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "replace", {"old", "new", "count"});
  if (!p[0] || !p[1]) fail("replace() missing required arguments 'old' and 'new'");
  std::string s = to_str(v), old = to_str(*p[0]), repl = to_str(*p[1]);
  int64_t count = p[2] && !p[2]->is_none() ? int_arg(p[2], -1, "count") : -1;
  std::string out;
  if (old.empty()) {
    // Python inserts `repl` before every character and at the end.
    std::vector<size_t> offs = unicode::offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offs.size(); ++i) {
      if (count < 0 || done < count) out += repl, ++done;
      out.append(s, offs[i], offs[i + 1] - offs[i]);
      if (out.size() > in.max_bytes()) fail("string too long");
    }
    if (count < 0 || done < count) out += repl;
    return Value::string(std::move(out));
  }
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t hit = s.find(old, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += repl;
    pos = hit + old.size();
    if (out.size() > in.max_bytes()) fail("string too long");
  }
  out.append(s, pos, std::string::npos);
  return Value::string(std::move(out));
}

Value f_string(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "string", {});
  return Value::string(to_str(v));
}

Value f_safe(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "safe", {});
  return Value::string(to_str(v));
}

Value f_escape(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "escape", {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '"':
        out += "&#34;";
        break;
      default:
        out += c;
    }
  }
  return Value::string(std::move(out));
}

Value f_indent(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "indent", {"width", "first", "blank"});
  std::string ind =
      p[0] && p[0]->is_string()
          ? p[0]->as_string()
          : std::string(size_t(std::clamp<int64_t>(int_arg(p[0], 4, "width"), 0, 1 << 16)), ' ');
  bool first = bool_arg(p[1], false), blank = bool_arg(p[2], false);
  std::vector<std::string> lines = split_lines(to_str(v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    bool add = i == 0 ? first : (blank || !lines[i].empty());
    if (add) out += ind;
    out += lines[i];
    if (out.size() > in.max_bytes()) fail("string too long");
  }
  return Value::string(std::move(out));
}

Value f_center(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "center", {"width"});
  std::string s = to_str(v);
  int64_t width = int_arg(p[0], 80, "width");
  int64_t len = int64_t(unicode::length(s));
  if (width <= len) return Value::string(s);
  if (uint64_t(width) > in.max_bytes()) fail("string too long");
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);
  return Value::string(std::string(size_t(left), ' ') + s + std::string(size_t(marg - left), ' '));
}

Value f_wordcount(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "wordcount", {});
  std::string s = to_str(v);
  int64_t words = 0;
  bool in_word = false;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    bool w = cp == '_' || unicode::is_alpha(cp) || unicode::is_digit(cp);
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value::integer(words);
}

Value f_format(Interp&, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty())
    fail("can't handle positional and keyword arguments at the same time");
  return Value::string(format_percent(to_str(v), a));
}

Value f_tojson(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = bool_arg(p[0], false);
  if (p[1] && !p[1]->is_none()) {
    if (p[1]->is_string())
      o.indent = p[1]->as_string();
    else
      o.indent = std::string(size_t(std::clamp<int64_t>(int_arg(p[1], 0, "indent"), 0, 256)), ' ');
  }
  if (p[2] && !p[2]->is_none()) {
    if (!p[2]->is_list() || p[2]->items().size() != 2)
      fail("tojson separators must be a pair of strings");
    o.separators = {to_str(p[2]->items()[0]), to_str(p[2]->items()[1])};
  }
  o.sort_keys = bool_arg(p[3], false);
  return Value::string(to_json(v, o));
}

Value f_int(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "int", {"default", "base"});
  Value fallback = p[0] ? *p[0] : Value::integer(0);
  int64_t base = int_arg(p[1], 10, "base");
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::integer(int64_t(d));
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.as_string(), int(base))) return Value::integer(*i);
    if (auto d = parse_float(v.as_string()))
      if (std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value::integer(int64_t(*d));
  }
  return fallback;
}

Value f_float(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "float", {"default"});
  Value fallback = p[0] ? *p[0] : Value::number(0.0);
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return Value::number(v.as_float());
  if (v.is_string())
    if (auto d = parse_float(v.as_string())) return Value::number(*d);
  return fallback;
}

Value f_abs(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "abs", {});
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() < 0) return negate(v);
    return Value::integer(v.as_int());
  }
  if (v.is_undefined()) fail_undefined(v);
  fail("bad operand type for abs(): '", v.type_name(), "'");
}

Value f_round(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "round", {"precision", "method"});
  int64_t prec = int_arg(p[0], 0, "precision");
  std::string method = str_arg(p[1], "common");
  if (method != "common" && method != "ceil" && method != "floor")
    fail("method must be common, ceil or floor");
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) fail("type ", v.type_name(), " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) {
      if (prec >= 0) return Value::integer(v.as_int());
      return Value::integer(int64_t(round_half_even(double(v.as_int()), prec)));
    }
    return Value::number(round_half_even(v.as_float(), prec));
  }
  double scale = std::pow(10.0, double(prec));
  double x = v.as_float() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_default(Interp&, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "default", {"default_value", "boolean"});
  if (v.is_undefined() || (bool_arg(p[1], false) && !truthy(v)))
    return p[0] ? *p[0] : Value::string("");
  return v;
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", seq_filters::attr},
    {"batch", seq_filters::batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", seq_filters::length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", seq_filters::dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", seq_filters::first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", seq_filters::items},
    {"join", seq_filters::join},
    {"last", seq_filters::last},
    {"length", seq_filters::length},
    {"list", seq_filters::list},
    {"lower", f_lower},
    {"map", seq_filters::map},
    {"max", seq_filters::max},
    {"min", seq_filters::min},
    {"reject", seq_filters::reject},
    {"rejectattr", seq_filters::rejectattr},
    {"replace", f_replace},
    {"reverse", seq_filters::reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", seq_filters::select},
    {"selectattr", seq_filters::selectattr},
    {"sort", seq_filters::sort},
    {"string", f_string},
    {"sum", seq_filters::sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", seq_filters::unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

// jinja2 builtins kiln does not implement (HTML, randomness, text layout).
const char* const kUnsupportedFilters[] = {"filesizeformat", "groupby",   "pprint",   "random",
                                           "slice",          "striptags", "truncate", "urlencode",
                                           "urlize",         "wordwrap",  "xmlattr",  "unsafe"};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const FilterEntry& e : kFilters)
    if (name == e.name) return e.fn;
  return nullptr;
}

bool is_jinja2_filter(std::string_view name) {
  for (const char* n : kUnsupportedFilters)
    if (name == n) return true;
  return find_filter(name) != nullptr;
}

Value call_filter(Interp& in, const Value& name, const Value& v, CallArgs args) {
  std::string n = to_str(name);
  FilterFn f = find_filter(n);
  if (!f) fail(is_jinja2_filter(n) ? "unsupported" : "unknown", " filter '", n, "'");
  return f(in, v, args);
}

double round_half_even(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 320) return x;
  if (ndigits >= 0) {
    // printf rounds the exact binary value half-to-even, as Python's round() does.
    std::vector<char> buf(size_t(ndigits) + 330);
    std::snprintf(buf.data(), buf.size(), "%.*f", int(ndigits), x);
    return std::strtod(buf.data(), nullptr);
  }
  if (ndigits < -308) return std::copysign(0.0, x);
  double scale = std::pow(10.0, double(-ndigits));
  return std::nearbyint(x / scale) * scale;
}

}  // namespace kiln::jinja
