#include "frontends/gguf/jinja_ops.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "frontends/gguf/jinja_interp.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {

std::string concat_pieces(std::initializer_list<std::string_view> pieces) {
  std::string s;
  for (std::string_view p : pieces) s += p;
  return s;
}

namespace {

// Guards the recursion of repr/equality through namespaces (which may contain themselves).
struct DepthGuard {
  explicit DepthGuard(int& d) : d_(d) {
    if (++d_ > 2 * kMaxValueDepth) fail("value nested too deeply");
  }
  ~DepthGuard() { --d_; }
  int& d_;
};

void repr_string(std::string& out, const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  char buf[16];
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp = unicode::next(s, pos);
    if (cp == uint32_t(quote) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp >= unicode::kInvalidBase) {
      // Python would hold such a byte as a lone surrogate (surrogateescape).
      std::snprintf(buf, sizeof buf, "\\udc%02x", unsigned(cp - unicode::kInvalidBase));
      out += buf;
    } else if (unicode::is_printable(cp)) {
      unicode::append(out, cp);
    } else if (cp <= 0xFF) {
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(cp));
      out += buf;
    } else if (cp <= 0xFFFF) {
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(cp));
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\U%08x", unsigned(cp));
      out += buf;
    }
  }
  out += quote;
}

void repr_into(std::string& out, const Value& v, int& depth, bool top_level_str);

void repr_items(std::string& out, const Value& v, int& depth) {
  DepthGuard g(depth);
  if (out.size() > kMaxStringBytes) fail("string representation too long");
  if (v.is_list()) {
    const auto& items = v.items();
    out += v.is_tuple() ? '(' : '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += ", ";
      repr_into(out, items[i], depth, false);
    }
    if (v.is_tuple() && items.size() == 1) out += ',';
    out += v.is_tuple() ? ')' : ']';
    return;
  }
  const DictData& d = v.dict_data();
  if (d.kind == DictData::Kind::kLoop) {
    const Value* index = d.find("index");
    const Value* len = d.find("length");
    out +=
        "<LoopContext " + (index ? to_str(*index) : "?") + "/" + (len ? to_str(*len) : "?") + ">";
    return;
  }
  if (d.kind == DictData::Kind::kNamespace) out += "<Namespace ";
  out += '{';
  bool first = true;
  for (const auto& [k, val] : d.entries) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, k, depth, false);
    out += ": ";
    repr_into(out, val, depth, false);
  }
  out += '}';
  if (d.kind == DictData::Kind::kNamespace) out += '>';
}

void repr_into(std::string& out, const Value& v, int& depth, bool top_level_str) {
  if (out.size() > kMaxStringBytes) fail("string representation too long");
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      if (!top_level_str) out += "Undefined";
      return;
    case Value::Kind::kNone:
      out += "None";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Value::Kind::kInt:
      out += format_int(v.as_int());
      return;
    case Value::Kind::kFloat:
      out += format_float(v.as_float());
      return;
    case Value::Kind::kString:
      if (top_level_str)
        out += v.as_string();
      else
        repr_string(out, v.as_string());
      return;
    case Value::Kind::kList:
    case Value::Kind::kDict:
      repr_items(out, v, depth);
      return;
    case Value::Kind::kCallable:
      fail("cannot convert ", v.callable_ptr()->describe(), " to a string");
  }
}

}  // namespace

void fail_undefined(const Value& u) {
  fail(u.undefined_hint().empty() ? std::string("undefined value") : u.undefined_hint());
}

std::string format_int(int64_t i) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, i);
  return std::string(buf, r.ptr);
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, laid out the way Python's float.__repr__ does: positional for
  // decimal exponents in [-4, 16), scientific with a two-digit exponent otherwise.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  size_t epos = sci.find('e');
  int exp = std::atoi(sci.c_str() + epos + 1);
  std::string mant = sci.substr(0, epos);
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + e;
  }
  if (exp < 0) return out + "0." + std::string(size_t(-exp - 1), '0') + digits;
  if (size_t(exp + 1) >= digits.size())
    return out + digits + std::string(size_t(exp + 1) - digits.size(), '0') + ".0";
  return out + digits.substr(0, size_t(exp + 1)) + "." + digits.substr(size_t(exp + 1));
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return !v.items().empty();
    case Value::Kind::kDict:
      return v.dict_data().kind != DictData::Kind::kDict || !v.dict_data().entries.empty();
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

std::string to_str(const Value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  int depth = 0;
  repr_into(out, v, depth, true);
  return out;
}

std::string repr(const Value& v) {
  if (v.is_undefined()) return "Undefined";
  std::string out;
  int depth = 0;
  repr_into(out, v, depth, false);
  return out;
}

namespace {

bool equals_at(const Value& a, const Value& b, int& depth) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
      DepthGuard g(depth);
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!equals_at(a.items()[i], b.items()[i], depth)) return false;
      return true;
    }
    case Value::Kind::kDict: {
      const DictData& x = a.dict_data();
      const DictData& y = b.dict_data();
      if (x.kind != DictData::Kind::kDict || y.kind != DictData::Kind::kDict) return &x == &y;
      if (x.entries.size() != y.entries.size()) return false;
      DepthGuard g(depth);
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equals_at(v, *other, depth)) return false;
      }
      return true;
    }
    case Value::Kind::kCallable:
      return a.callable_ptr() == b.callable_ptr();
    default:
      return false;
  }
}

bool less_at(const Value& a, const Value& b, int& depth) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    DepthGuard g(depth);
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals_at(x[i], y[i], depth)) continue;
      return less_at(x[i], y[i], depth);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '", a.type_name(), "' and '", b.type_name(), "'");
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  int depth = 0;
  return equals_at(a, b, depth);
}

bool less(const Value& a, const Value& b) {
  int depth = 0;
  return less_at(a, b, depth);
}

size_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return unicode::length(v.as_string());
    case Value::Kind::kList:
      return v.items().size();
    case Value::Kind::kDict:
      if (v.is_mapping()) return v.dict_data().entries.size();
      break;
    default:
      break;
  }
  fail("object of type '", v.type_name(), "' has no len()");
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kString: {
      std::vector<Value> out;
      const std::string& s = v.as_string();
      for (size_t pos = 0; pos < s.size();) {
        size_t start = pos;
        unicode::next(s, pos);
        out.push_back(Value::string(s.substr(start, pos - start)));
      }
      return out;
    }
    case Value::Kind::kDict:
      if (v.is_mapping()) {
        std::vector<Value> out;
        out.reserve(v.dict_data().entries.size());
        for (const auto& kv : v.dict_data().entries) out.push_back(kv.first);
        return out;
      }
      break;
    default:
      break;
  }
  fail("'", v.type_name(), "' object is not iterable");
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      fail("'in <string>' requires string as left operand, not ", item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_mapping()) return container.dict_data().find(item) != nullptr;
  if (container.is_list()) {
    for (const Value& x : container.items())
      if (equals(x, item)) return true;
    return false;
  }
  if (container.is_undefined()) return false;
  fail("argument of type '", container.type_name(), "' is not iterable");
}

namespace {

[[noreturn]] void bad_operands(const char* op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  fail("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

int64_t checked(bool overflow, int64_t v) {
  if (overflow) fail("integer overflow (kiln integers are 64-bit)");
  return v;
}

Value repeat(const Value& seq, int64_t n, size_t max_bytes) {
  if (n <= 0) return seq.is_string() ? Value::string("") : Value::list({});
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && uint64_t(n) > max_bytes / s.size()) fail("string too long");
    std::string out;
    out.reserve(s.size() * size_t(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value::string(std::move(out));
  }
  const auto& items = seq.items();
  if (!items.empty() && uint64_t(n) > max_bytes / 64 / items.size()) fail("list too long");
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

Value binary(BinOp op, const Value& a, const Value& b, size_t max_bytes) {
  static const char* names[] = {"+", "-", "*", "/", "//", "%", "**"};
  const char* name = names[int(op)];
  if (a.is_number() && b.is_number()) {
    bool flt = a.is_float() || b.is_float();
    if (op == BinOp::kDiv) {
      if (b.as_float() == 0) fail("division by zero");
      return Value::number(a.as_float() / b.as_float());
    }
    if (!flt) {
      int64_t x = a.as_int(), y = b.as_int(), r = 0;
      switch (op) {
        case BinOp::kAdd: {
          bool overflow = __builtin_add_overflow(x, y, &r);
          return Value::integer(checked(overflow, r));
        }
        case BinOp::kSub: {
          bool overflow = __builtin_sub_overflow(x, y, &r);
          return Value::integer(checked(overflow, r));
        }
        case BinOp::kMul: {
          bool overflow = __builtin_mul_overflow(x, y, &r);
          return Value::integer(checked(overflow, r));
        }
        case BinOp::kFloorDiv:
        case BinOp::kMod: {
          if (y == 0) fail("integer division or modulo by zero");
          if (x == std::numeric_limits<int64_t>::min() && y == -1) checked(true, 0);
          int64_t q = x / y, m = x % y;
          if (m != 0 && ((m < 0) != (y < 0))) q -= 1, m += y;  // Python floors
          return Value::integer(op == BinOp::kFloorDiv ? q : m);
        }
        case BinOp::kPow: {
          if (y < 0) return Value::number(std::pow(double(x), double(y)));
          int64_t acc = 1, base = x;
          for (uint64_t e = uint64_t(y); e; e >>= 1) {
            if ((e & 1) && __builtin_mul_overflow(acc, base, &acc)) checked(true, 0);
            if (e > 1 && __builtin_mul_overflow(base, base, &base)) checked(true, 0);
          }
          return Value::integer(acc);
        }
        default:
          break;
      }
    }
    double x = a.as_float(), y = b.as_float();
    switch (op) {
      case BinOp::kAdd:
        return Value::number(x + y);
      case BinOp::kSub:
        return Value::number(x - y);
      case BinOp::kMul:
        return Value::number(x * y);
      case BinOp::kFloorDiv:
      case BinOp::kMod: {
        // Python's float divmod: the remainder takes the divisor's sign.
        if (y == 0) fail("float division by zero");
        double mod = std::fmod(x, y);
        double div = (x - mod) / y;
        if (mod != 0) {
          if ((y < 0) != (mod < 0)) mod += y, div -= 1.0;
        } else {
          mod = std::copysign(0.0, y);
        }
        if (op == BinOp::kMod) return Value::number(mod);
        double floordiv = std::copysign(0.0, x / y);
        if (div != 0) {
          floordiv = std::floor(div);
          if (div - floordiv > 0.5) floordiv += 1.0;
        }
        return Value::number(floordiv);
      }
      case BinOp::kPow:
        if (x == 0 && y < 0) fail("0.0 cannot be raised to a negative power");
        return Value::number(std::pow(x, y));
      default:
        break;
    }
  }
  if (op == BinOp::kAdd && a.is_string() && b.is_string()) {
    if (a.as_string().size() + b.as_string().size() > max_bytes) fail("string too long");
    return Value::string(a.as_string() + b.as_string());
  }
  if (op == BinOp::kAdd && a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    if ((a.items().size() + b.items().size()) * 64 > max_bytes) fail("list too long");
    std::vector<Value> out = a.items();
    out.insert(out.end(), b.items().begin(), b.items().end());
    return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  if (op == BinOp::kMul) {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
      return repeat(a, b.as_int(), max_bytes);
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
      return repeat(b, a.as_int(), max_bytes);
  }
  if (op == BinOp::kMod && a.is_string())
    fail("printf-style '%' formatting is not supported; use the format filter");
  bad_operands(name, a, b);
}

Value negate(const Value& v) {
  if (v.is_float()) return Value::number(-v.as_float());
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) checked(true, 0);
    return Value::integer(-v.as_int());
  }
  if (v.is_undefined()) fail_undefined(v);
  fail("bad operand type for unary -: '", v.type_name(), "'");
}

}  // namespace kiln::jinja
