// Python semantics of values, for the interpreter's use: truth, str() and repr(), equality and
// ordering, len(), iteration, `in`, arithmetic and json.dumps. These throw jinja::Failure on a
// type error (as Python raises TypeError); the interpreter catches it at its public entry
// points, so nothing escapes the module.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/jinja_value.h"

namespace kiln::jinja {

// An error while parsing or rendering. `line` is filled in by the interpreter when it is 0;
// syntax errors also carry a column.
struct Failure {
  std::string message;
  int line = 0;
  int column = 0;
};

std::string concat_pieces(std::initializer_list<std::string_view> pieces);

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Failure{concat_pieces({std::string_view(args)...})};
}

// Limits that keep hostile values from exhausting the stack and memory: containers nest at
// most this deep, and no string that str(), repr() or tojson builds grows past this size.
constexpr int kMaxValueDepth = 200;
constexpr size_t kMaxStringBytes = size_t(64) << 20;

// Throws the error of using an Undefined value ("'x' is undefined").
[[noreturn]] void fail_undefined(const Value& u);

bool truthy(const Value& v);
std::string to_str(const Value& v);  // Python str(); Undefined is ""
std::string repr(const Value& v);    // Python repr()
std::string format_float(double d);  // Python float repr: 1.0, 0.1, 1e+16, inf
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

// A stable merge sort that stays in bounds whatever `before` answers (NaN keys, or a comparison
// that throws half-way), unlike std::sort; used for Python's sorted().
template <typename T, typename Before>
void stable_merge_sort(std::vector<T>& v, Before before) {
  std::vector<T> buf(v.size());
  for (size_t width = 1; width < v.size(); width *= 2) {
    for (size_t lo = 0; lo < v.size(); lo += 2 * width) {
      size_t mid = std::min(lo + width, v.size()), hi = std::min(lo + 2 * width, v.size());
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) buf[k++] = before(v[j], v[i]) ? v[j++] : v[i++];
      while (i < mid) buf[k++] = v[i++];
      while (j < hi) buf[k++] = v[j++];
    }
    v.swap(buf);
  }
}

struct JsonOptions {
  std::optional<std::string> indent;  // Python's indent as the string one level adds
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::optional<std::pair<std::string, std::string>> separators;  // (item, key)
};
// Python json.dumps(v, ...); throws for values JSON cannot hold (Undefined, callables).
std::string to_json(const Value& v, const JsonOptions& opt);

}  // namespace kiln::jinja
