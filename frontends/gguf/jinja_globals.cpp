// Global functions: jinja2's range, dict and namespace, and the two that Hugging Face adds to
// its chat-template environment, raise_exception and strftime_now.
#include <ctime>

#include "frontends/gguf/jinja_builtins.h"

namespace kiln::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox refuses bigger ranges

using GlobalFn = Value (*)(Interp&, CallArgs&);

struct GlobalCallable : Callable {
  GlobalCallable(const char* n, GlobalFn f) : name(n), fn(f) {}
  const char* name;
  GlobalFn fn;
  std::string describe() const override { return std::string("function '") + name + "'"; }
  Value call(Interp& in, CallArgs& args) const override {
    if (!fn) fail("unsupported function '", name, "'");
    return fn(in, args);
  }
};

Value g_range(Interp& in, CallArgs& a) {
  if (!a.kw.empty()) fail("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3)
    fail("range expected 1 to 3 arguments, got ", format_int(int64_t(a.pos.size())));
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < a.pos.size(); ++i) {
    if (!a.pos[i].is_int() && !a.pos[i].is_bool()) {
      if (a.pos[i].is_undefined()) fail_undefined(a.pos[i]);
      fail("'", a.pos[i].type_name(), "' object cannot be interpreted as an integer");
    }
  }
  if (a.pos.size() == 1)
    v[1] = a.pos[0].as_int();
  else
    for (size_t i = 0; i < a.pos.size(); ++i) v[i] = a.pos[i].as_int();
  int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) fail("range() arg 3 must not be zero");
  // The exact count in unsigned arithmetic: the true difference of two int64 fits in 64 bits.
  uint64_t count = 0;
  if ((step > 0 && stop > start) || (step < 0 && stop < start)) {
    uint64_t span = step > 0 ? uint64_t(stop) - uint64_t(start) : uint64_t(start) - uint64_t(stop);
    uint64_t ustep = step > 0 ? uint64_t(step) : uint64_t(0) - uint64_t(step);
    count = span / ustep + (span % ustep != 0);
  }
  if (count > uint64_t(kMaxRange))
    fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  in.charge(count);
  std::vector<Value> out;
  out.reserve(size_t(count));
  for (int64_t i = 0; i < int64_t(count); ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

// dict(mapping_or_pairs, **kwargs) as Python builds it.
std::vector<std::pair<Value, Value>> dict_entries(const CallArgs& a, const char* fn) {
  if (a.pos.size() > 1)
    fail(fn, " expected at most 1 argument, got ", format_int(int64_t(a.pos.size())));
  std::vector<std::pair<Value, Value>> entries;
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.is_dict()) {
      entries = src.dict_data().entries;
    } else {
      for (const Value& item : iterate(src)) {
        std::vector<Value> kv = iterate(item);
        if (kv.size() != 2)
          fail("dictionary update sequence element has length ", format_int(int64_t(kv.size())),
               "; 2 is required");
        if ((kv[0].is_list() && !kv[0].is_tuple()) || kv[0].is_mapping())
          fail("unhashable type: '", kv[0].type_name(), "'");
        entries.emplace_back(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kw) entries.emplace_back(Value::string(k), v);
  return entries;
}

Value g_dict(Interp& in, CallArgs& a) {
  Value d = Value::dict(dict_entries(a, "dict"));
  in.charge_value(d);
  if (d.depth() > kMaxValueDepth) fail("value nested too deeply");
  return d;
}

Value g_namespace(Interp& in, CallArgs& a) {
  std::vector<std::pair<std::string, Value>> attrs;
  for (auto& [k, v] : dict_entries(a, "namespace")) {
    if (!k.is_string()) fail("namespace attribute names must be strings");
    attrs.emplace_back(k.as_string(), v);
  }
  return in.make_namespace(std::move(attrs));
}

Value g_raise_exception(Interp&, CallArgs& a) {
  if (a.pos.size() != 1 || !a.kw.empty()) fail("raise_exception() takes exactly one argument");
  fail(to_str(a.pos[0]));
}

Value g_strftime_now(Interp& in, CallArgs& a) {
  auto p = bind_args(a, "strftime_now", {"format"});
  if (!p[0] || !p[0]->is_string()) fail("strftime_now() needs a format string");
  std::tm tm{};
  if (in.options().fixed_time) {
    tm = *in.options().fixed_time;
  } else {
    std::time_t now = std::time(nullptr);
    localtime_r(&now, &tm);
  }
  const std::string& fmt = p[0]->as_string();
  if (fmt.size() > 4096) fail("strftime_now() format too long");
  if (fmt.empty()) return Value::string("");
  std::string buf(fmt.size() * 16 + 256, '\0');
  size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  buf.resize(n);
  return Value::string(std::move(buf));
}

const GlobalCallable kGlobals[] = {
    {"range", g_range},
    {"dict", g_dict},
    {"namespace", g_namespace},
    {"raise_exception", g_raise_exception},
    {"strftime_now", g_strftime_now},
    {"cycler", nullptr},
    {"joiner", nullptr},
    {"lipsum", nullptr},
};

}  // namespace

Value find_global(std::string_view name) {
  for (const GlobalCallable& g : kGlobals) {
    if (name == g.name) {
      // The table entries are static; a non-owning shared_ptr hands them out without copies.
      return Value::callable(std::shared_ptr<const Callable>(std::shared_ptr<void>(), &g));
    }
  }
  return Value();
}

}  // namespace kiln::jinja
