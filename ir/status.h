// Errors as values. Every fallible function returns Status or Result<T>; nothing in kiln throws
// across a module boundary or aborts on bad input. Messages say what went wrong and where
// ("gguf: tensor 'blk.0.attn_q.weight' at byte 1234: offset past end of file").
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace kiln {

class Error {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }
  // Prefixes context, e.g. Error("bad dims").wrap("tensor x") -> "tensor x: bad dims".
  Error wrap(const std::string& context) const { return Error(context + ": " + message_); }

 private:
  std::string message_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e.message())), ok_(false) {}  // NOLINT: implicit on purpose
  static Status Ok() { return Status(); }
  bool ok() const { return ok_; }
  const std::string& message() const { return error_; }
  Error error() const { return Error(error_); }

 private:
  std::string error_;
  bool ok_ = true;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  Result(Status status) : v_(status.error()) { assert(!status.ok()); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  const std::string& message() const { return error().message(); }
  Status status() const { return ok() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> v_;
};

inline std::string to_piece(const std::string& s) {
  return s;
}
inline std::string to_piece(std::string_view s) {
  return std::string(s);
}
inline std::string to_piece(const char* s) {
  return s;
}
inline std::string to_piece(char c) {
  return std::string(1, c);
}
template <typename T>
requires std::is_arithmetic_v<T> std::string to_piece(T v) {
  return std::to_string(v);
}

// Builds an error message from pieces: make_error("key ", k, ": expected u32").
template <typename... Args>
Error make_error(Args&&... args) {
  std::string s;
  ((s += to_piece(std::forward<Args>(args))), ...);
  return Error(std::move(s));
}

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

// Returns the error of a Status or Result expression from the enclosing function.
#define KILN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    auto _kiln_st = (expr);                      \
    if (!_kiln_st.ok()) return _kiln_st.error(); \
  } while (0)

// KILN_ASSIGN_OR_RETURN(auto x, f()); binds the value or returns the error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(_kiln_r_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.error();               \
  lhs = std::move(tmp).value()
