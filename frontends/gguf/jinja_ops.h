// Python semantics of values, for the interpreter's use: truth, str() and repr(), equality and
// ordering, len(), iteration, `in`, arithmetic and json.dumps. These throw jinja::Failure on a
// type error (as Python raises TypeError); the interpreter catches it at its public entry
// points, so nothing escapes the module.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/jinja_value.h"

namespace kiln::jinja {

// An error while rendering. `line` is filled in by the interpreter when it is 0.
struct Failure {
  std::string message;
  int line = 0;
};

std::string concat_pieces(std::initializer_list<std::string_view> pieces);

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Failure{concat_pieces({std::string_view(args)...}), 0};
}

// Limits that keep hostile values from exhausting the stack: containers nest at most this deep.
constexpr int kMaxValueDepth = 200;

bool truthy(const Value& v);
std::string to_str(const Value& v);   // Python str(); Undefined is ""
std::string repr(const Value& v);     // Python repr()
std::string format_float(double d);   // Python float repr: 1.0, 0.1, 1e+16, inf
std::string format_int(int64_t i);

bool equals(const Value& a, const Value& b);
// Python's a < b; throws for unorderable types.
bool less(const Value& a, const Value& b);
size_t length(const Value& v);
// The items `for x in v` visits: list items, dict keys, string characters; Undefined is empty.
std::vector<Value> iterate(const Value& v);
bool contains(const Value& container, const Value& item);

enum class BinOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
Value binary(BinOp op, const Value& a, const Value& b, size_t max_bytes);
Value negate(const Value& v);

struct JsonOptions {
  int indent = -1;  // < 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_sep, key_sep;  // empty: Python's defaults for the indent
  bool custom_separators = false;
};
// Python json.dumps(v, ...); throws for values JSON cannot hold (Undefined, callables).
std::string to_json(const Value& v, const JsonOptions& opt);

}  // namespace kiln::jinja
