// Filters over sequences and mappings (jinja2 3.1 semantics). Where jinja2 returns a generator
// (map, select, unique, reverse, ...) these return a list, which iterates the same way.
#include <algorithm>

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {

Value ignore_case(const Value& v) {
  return v.is_string() ? Value::string(unicode::lower(v.as_string())) : v;
}

Value lookup_path(Interp& in, const Value& item, const Value& attribute) {
  if (attribute.is_none() || attribute.is_undefined()) return item;
  if (!attribute.is_string()) return in.get_item(item, attribute);
  Value cur = item;
  const std::string& path = attribute.as_string();
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                               [](char c) { return c >= '0' && c <= '9'; });
    std::optional<int64_t> index = digits ? parse_int(part, 10) : std::nullopt;
    cur = index ? in.get_item(cur, Value::integer(*index)) : in.get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

bool call_test(Interp& in, const Value& name, const Value& v, CallArgs args) {
  std::string n = to_str(name);
  TestFn t = find_test(n);
  if (!t) fail(is_jinja2_test(n) ? "unsupported" : "unknown", " test '", n, "'");
  return t(in, v, args);
}

namespace seq_filters {
namespace {

std::optional<Value> kwarg(CallArgs& a, const char* name) {
  for (auto it = a.kw.begin(); it != a.kw.end(); ++it) {
    if (it->first == name) {
      Value v = it->second;
      a.kw.erase(it);
      return v;
    }
  }
  return std::nullopt;
}

// Python's sorted(items, key=key, reverse=reverse): stable either way.
void sort_by_keys(Interp& in, std::vector<Value>& items, std::vector<Value> keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  in.charge(items.size() * 8);
  stable_merge_sort(order, [&](size_t a, size_t b) {
    return reverse ? less(keys[b], keys[a]) : less(keys[a], keys[b]);
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (size_t i : order) out.push_back(std::move(items[i]));
  items = std::move(out);
}

// The keys jinja2's make_multi_attrgetter builds: a list per item, one entry per attribute.
Value multi_key(Interp& in, const Value& item, const std::optional<Value>& attribute,
                bool case_sensitive) {
  std::vector<Value> parts;
  if (attribute && attribute->is_string()) {
    const std::string& s = attribute->as_string();
    for (size_t start = 0;;) {
      size_t comma = s.find(',', start);
      parts.push_back(
          lookup_path(in, item,
                      Value::string(s.substr(
                          start, comma == std::string::npos ? std::string::npos : comma - start))));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else {
    parts.push_back(attribute ? lookup_path(in, item, *attribute) : item);
  }
  if (!case_sensitive)
    for (Value& p : parts) p = ignore_case(p);
  return Value::list(std::move(parts));
}

Value select_impl(Interp& in, const Value& v, CallArgs& a, bool lookup_attr, bool keep) {
  if (!truthy(v)) return Value::list({});
  std::vector<Value> args = a.pos;
  Value attribute;
  if (lookup_attr) {
    if (args.empty()) fail("missing parameter for attribute name");
    attribute = args[0];
    args.erase(args.begin());
  }
  std::optional<Value> test;
  if (!args.empty()) {
    test = args[0];
    args.erase(args.begin());
  }
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value x = lookup_attr ? lookup_path(in, item, attribute) : item;
    bool ok = test ? call_test(in, *test, x, CallArgs{args, a.kw}) : truthy(x);
    if (ok == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value min_max(Interp& in, const Value& v, CallArgs& a, bool want_max, const char* name) {
  auto p = bind_args(a, name, {"case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  bool cs = p[0] && truthy(*p[0]);
  auto key = [&](const Value& x) {
    Value k = p[1] && !p[1]->is_none() ? lookup_path(in, x, *p[1]) : x;
    return cs ? k : ignore_case(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? less(best_key, k) : less(k, best_key)) best = i, best_key = std::move(k);
  }
  return items[best];
}

}  // namespace

Value length(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "length", {});
  return Value::integer(int64_t(jinja::length(v)));
}

Value first(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "first", {});
  if (v.is_list()) {
    if (!v.items().empty()) return v.items().front();
  } else {
    std::vector<Value> items = iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value last(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "last", {});
  if (v.is_list()) {
    if (!v.items().empty()) return v.items().back();
  } else {
    std::vector<Value> items = iterate(v);
    if (!items.empty()) return items.back();
  }
  return Value::undefined("No last item, sequence was empty.");
}

Value list(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "list", {});
  if (v.is_list() && !v.is_tuple()) return v;
  return Value::list(iterate(v));
}

Value reverse(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "reverse", {});
  if (v.is_string()) {
    std::vector<uint32_t> cps = unicode::decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value::string(unicode::encode(cps));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value join(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "join", {"d", "attribute"});
  std::string sep = p[0] ? to_str(*p[0]) : "";
  std::string out;
  bool firstItem = true;
  for (const Value& item : iterate(v)) {
    if (!firstItem) out += sep;
    firstItem = false;
    Value x = p[1] && !p[1]->is_none() ? lookup_path(in, item, *p[1]) : item;
    out += to_str(x);
    if (out.size() > in.max_bytes()) fail("string too long");
  }
  return Value::string(std::move(out));
}

Value items(Interp&, const Value& v, CallArgs& a) {
  bind_args(a, "items", {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_mapping()) fail("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict_data().entries) out.push_back(Value::tuple({k, val}));
  return Value::list(std::move(out));
}

Value dictsort(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "dictsort", {"case_sensitive", "by", "reverse"});
  bool cs = p[0] && truthy(*p[0]);
  std::string by = p[1] ? to_str(*p[1]) : "key";
  if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
  if (!v.is_mapping()) fail("dictsort expects a mapping, not ", v.type_name());
  std::vector<Value> pairs, keys;
  for (const auto& [k, val] : v.dict_data().entries) {
    pairs.push_back(Value::tuple({k, val}));
    keys.push_back(cs ? (by == "key" ? k : val) : ignore_case(by == "key" ? k : val));
  }
  sort_by_keys(in, pairs, std::move(keys), p[2] && truthy(*p[2]));
  return Value::list(std::move(pairs));
}

Value sort(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "sort", {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v), keys;
  bool cs = p[1] && truthy(*p[1]);
  std::optional<Value> attr = p[2] && !p[2]->is_none() ? p[2] : std::nullopt;
  for (const Value& x : items) keys.push_back(multi_key(in, x, attr, cs));
  sort_by_keys(in, items, std::move(keys), p[0] && truthy(*p[0]));
  return Value::list(std::move(items));
}

Value unique(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "unique", {"case_sensitive", "attribute"});
  bool cs = p[0] && truthy(*p[0]);
  std::vector<Value> out, seen;
  for (const Value& item : iterate(v)) {
    Value k = p[1] && !p[1]->is_none() ? lookup_path(in, item, *p[1]) : item;
    if (!cs) k = ignore_case(k);
    if ((k.is_list() && !k.is_tuple()) || k.is_mapping())
      fail("unhashable type: '", k.type_name(), "'");
    in.charge(seen.size() / 8);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); });
    if (dup) continue;
    seen.push_back(std::move(k));
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value min(Interp& in, const Value& v, CallArgs& a) {
  return min_max(in, v, a, false, "min");
}
Value max(Interp& in, const Value& v, CallArgs& a) {
  return min_max(in, v, a, true, "max");
}

Value sum(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "sum", {"attribute", "start"});
  Value acc = p[1] ? *p[1] : Value::integer(0);
  if (acc.is_string()) fail("sum() can't sum strings [use ''.join(seq) instead]");
  for (const Value& item : iterate(v)) {
    Value x = p[0] && !p[0]->is_none() ? lookup_path(in, item, *p[0]) : item;
    acc = binary(BinOp::kAdd, acc, x, in.max_bytes());
    in.charge_value(acc);
  }
  return acc;
}

Value map(Interp& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (a.pos.empty()) {
    std::optional<Value> attribute = kwarg(a, "attribute");
    if (!attribute) fail("map requires a filter argument");
    std::optional<Value> fallback = kwarg(a, "default");
    if (!a.kw.empty()) fail("Unexpected keyword argument '", a.kw[0].first, "'");
    for (const Value& item : iterate(v)) {
      Value x = lookup_path(in, item, *attribute);
      if (fallback && !fallback->is_none() && x.is_undefined()) x = *fallback;
      out.push_back(std::move(x));
    }
    return Value::list(std::move(out));
  }
  Value name = a.pos[0];
  CallArgs rest{std::vector<Value>(a.pos.begin() + 1, a.pos.end()), a.kw};
  for (const Value& item : iterate(v)) out.push_back(call_filter(in, name, item, rest));
  return Value::list(std::move(out));
}

Value select(Interp& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, true);
}
Value reject(Interp& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, false);
}
Value selectattr(Interp& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, true);
}
Value rejectattr(Interp& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, false);
}

Value attr(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "attr", {"name"});
  if (!p[0]) fail("attr() missing required argument 'name'");
  std::string name = to_str(*p[0]);
  if (v.is_mapping()) {
    if (std::optional<Value> m = find_method(v, name)) return *m;
    return Value::undefined("'dict object' has no attribute '" + name + "'");
  }
  return in.get_attr(v, name);
}

Value batch(Interp& in, const Value& v, CallArgs& a) {
  auto p = bind_args(a, "batch", {"linecount", "fill_with"});
  if (!p[0] || !(p[0]->is_int() || p[0]->is_bool())) fail("batch() needs an integer linecount");
  int64_t n = p[0]->as_int();
  if (n <= 0) fail("batch() linecount must be positive");
  std::vector<Value> out, cur;
  for (const Value& item : iterate(v)) {
    cur.push_back(item);
    if (int64_t(cur.size()) == n) out.push_back(Value::list(std::move(cur))), cur.clear();
  }
  if (!cur.empty()) {
    if (p[1] && !p[1]->is_none()) {
      in.charge(uint64_t(n));
      while (int64_t(cur.size()) < n) cur.push_back(*p[1]);
    }
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

}  // namespace seq_filters
}  // namespace kiln::jinja
