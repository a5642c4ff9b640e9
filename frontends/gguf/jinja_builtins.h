// The builtin filters, tests, methods and global functions, looked up by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/jinja_ast.h"
#include "frontends/gguf/jinja_interp.h"

namespace kiln::jinja {

// jinja_filters.cpp
FilterFn find_filter(std::string_view name);   // nullptr when kiln has no such filter
bool is_jinja2_filter(std::string_view name);  // a jinja2 builtin (for "unsupported" messages)

// jinja_tests.cpp
TestFn find_test(std::string_view name);
bool is_jinja2_test(std::string_view name);

// jinja_methods.cpp: the Python attribute `name` of a str, list or dict as a bound method;
// nullopt when the type has no such attribute (jinja2 then falls back to item lookup).
std::optional<Value> find_method(const Value& obj, std::string_view name);

// jinja_globals.cpp: range, dict, namespace, raise_exception, strftime_now, ...; Undefined when
// `name` is not a global.
Value find_global(std::string_view name);

// Helpers shared by the builtins.
// jinja2's attribute getter for map/sort/selectattr...: "a.b.0" walks items (digits as ints).
Value lookup_path(Interp& in, const Value& item, const Value& attribute);
// Lowercases strings (jinja2's ignore_case for case-insensitive sorting and comparing).
Value ignore_case(const Value& v);
bool call_test(Interp& in, const Value& name, const Value& v, CallArgs args);
Value call_filter(Interp& in, const Value& name, const Value& v, CallArgs args);
// Python's int(str, base) and float(str); nullopt when the text is not a number.
std::optional<int64_t> parse_int(const std::string& s, int base);
std::optional<double> parse_float(const std::string& s);
// Python's str.splitlines() (without the line ends).
std::vector<std::string> split_lines(const std::string& s);
// Python's str.format(*args, **kwargs) and printf-style `fmt % args`.
std::string format_braces(const std::string& fmt, const CallArgs& args);
std::string format_percent(const std::string& fmt, const CallArgs& args);
// Python's round(x, ndigits) for a float.
double round_half_even(double x, int64_t ndigits);

// The sequence filters (jinja_seq_filters.cpp), registered by jinja_filters.cpp.
namespace seq_filters {
Value length(Interp&, const Value&, CallArgs&);
Value first(Interp&, const Value&, CallArgs&);
Value last(Interp&, const Value&, CallArgs&);
Value list(Interp&, const Value&, CallArgs&);
Value reverse(Interp&, const Value&, CallArgs&);
Value join(Interp&, const Value&, CallArgs&);
Value items(Interp&, const Value&, CallArgs&);
Value dictsort(Interp&, const Value&, CallArgs&);
Value sort(Interp&, const Value&, CallArgs&);
Value unique(Interp&, const Value&, CallArgs&);
Value min(Interp&, const Value&, CallArgs&);
Value max(Interp&, const Value&, CallArgs&);
Value sum(Interp&, const Value&, CallArgs&);
Value map(Interp&, const Value&, CallArgs&);
Value select(Interp&, const Value&, CallArgs&);
Value reject(Interp&, const Value&, CallArgs&);
Value selectattr(Interp&, const Value&, CallArgs&);
Value rejectattr(Interp&, const Value&, CallArgs&);
Value attr(Interp&, const Value&, CallArgs&);
Value batch(Interp&, const Value&, CallArgs&);
}  // namespace seq_filters

// Python slicing of a list, tuple or str (None bounds as nullopt).
Value slice(const Value& seq, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step);

}  // namespace kiln::jinja
