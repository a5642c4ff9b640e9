// Python text conversions the builtins share: int()/float() of strings, str.splitlines(),
// slicing, str.format() and printf-style `%` formatting.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "frontends/gguf/jinja_builtins.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {

namespace {

// Digits with single '_' between them (Python literal rules); returns the text without '_'.
template <typename Pred>
std::optional<std::string> digits_without_underscores(std::string_view s, Pred ok) {
  if (s.empty() || !ok(s.front()) || !ok(s.back())) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (!ok(s[i + 1]) || !ok(s[i - 1])) return std::nullopt;
      continue;
    }
    if (!ok(s[i])) return std::nullopt;
    out += s[i];
  }
  return out;
}

}  // namespace

std::optional<int64_t> parse_int(const std::string& text, int base) {
  std::string s = unicode::strip(text, true, true, nullptr);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  std::string_view body = std::string_view(s).substr(i);
  auto prefixed = [&](char p) {
    return body.size() > 2 && body[0] == '0' && (body[1] | 0x20) == p;
  };
  if (base == 0) {
    base = prefixed('x') ? 16 : prefixed('o') ? 8 : prefixed('b') ? 2 : 10;
    if (base == 10 && body.size() > 1 && body[0] == '0' &&
        body.find_first_not_of("0_") != std::string_view::npos)
      return std::nullopt;
  }
  if (base < 2 || base > 36) return std::nullopt;
  if ((base == 16 && prefixed('x')) || (base == 8 && prefixed('o')) ||
      (base == 2 && prefixed('b'))) {
    body.remove_prefix(2);
    if (!body.empty() && body[0] == '_') body.remove_prefix(1);
  }
  auto ok = [base](char c) {
    int d = (c >= '0' && c <= '9')                     ? c - '0'
            : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? (c | 0x20) - 'a' + 10
                                                       : 99;
    return d < base;
  };
  std::optional<std::string> digits = digits_without_underscores(body, ok);
  if (!digits) return std::nullopt;
  uint64_t v = 0;
  for (char c : *digits) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
    if (v > (uint64_t(INT64_MAX) - uint64_t(d)) / uint64_t(base)) return std::nullopt;
    v = v * uint64_t(base) + uint64_t(d);
  }
  return neg ? -int64_t(v) : int64_t(v);
}

std::optional<double> parse_float(const std::string& text) {
  std::string s = unicode::strip(text, true, true, nullptr);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  std::string rest = unicode::lower(s.substr(i));
  if (rest == "inf" || rest == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
  if (rest == "nan") return std::nan("");
  auto is_d = [](char c) { return c >= '0' && c <= '9'; };
  std::string clean = neg ? "-" : "";
  size_t e = rest.find('e');
  std::string_view mant = std::string_view(rest).substr(0, e);
  size_t dot = mant.find('.');
  std::string_view ip = mant.substr(0, dot);
  std::string_view fp = dot == std::string_view::npos ? std::string_view() : mant.substr(dot + 1);
  if (ip.empty() && fp.empty()) return std::nullopt;
  if (!ip.empty()) {
    auto d = digits_without_underscores(ip, is_d);
    if (!d) return std::nullopt;
    clean += *d;
  }
  if (dot != std::string_view::npos) {
    clean += '.';
    if (!fp.empty()) {
      auto d = digits_without_underscores(fp, is_d);
      if (!d) return std::nullopt;
      clean += *d;
    }
  }
  if (e != std::string::npos) {
    std::string_view ex = std::string_view(rest).substr(e + 1);
    clean += 'e';
    if (!ex.empty() && (ex[0] == '+' || ex[0] == '-')) clean += ex[0], ex.remove_prefix(1);
    auto d = digits_without_underscores(ex, is_d);
    if (!d) return std::nullopt;
    clean += *d;
  }
  return std::strtod(clean.c_str(), nullptr);
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::string cur;
  for (size_t pos = 0; pos < s.size();) {
    size_t start = pos;
    uint32_t cp = unicode::next(s, pos);
    bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D ||
               cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!brk) {
      cur.append(s, start, pos - start);
      continue;
    }
    if (cp == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
    lines.push_back(std::move(cur));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(std::move(cur));
  return lines;
}

Value slice(const Value& seq, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step_arg) {
  int64_t step = step_arg.value_or(1);
  std::vector<uint32_t> cps;
  int64_t n;
  if (seq.is_string()) {
    cps = unicode::decode(seq.as_string());
    n = int64_t(cps.size());
  } else {
    n = int64_t(seq.items().size());
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v) return dflt;
    int64_t i = *v;
    if (i < 0) i += n;
    return std::clamp(i, lo, hi);
  };
  int64_t b, e;
  if (step > 0) {
    b = clamp(start, 0, 0, n);
    e = clamp(stop, n, 0, n);
  } else {
    b = clamp(start, n - 1, -1, n - 1);
    e = clamp(stop, -1, -1, n - 1);
  }
  std::vector<int64_t> idx;
  if (step > 0)
    for (int64_t i = b; i < e; i += step) idx.push_back(i);
  else
    for (int64_t i = b; i > e; i += step) idx.push_back(i);
  if (seq.is_string()) {
    std::string out;
    for (int64_t i : idx) unicode::append(out, cps[size_t(i)]);
    return Value::string(std::move(out));
  }
  std::vector<Value> out;
  out.reserve(idx.size());
  for (int64_t i : idx) out.push_back(seq.items()[size_t(i)]);
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

namespace {

std::string pad(std::string s, int64_t width, char align, const std::string& fill) {
  int64_t len = int64_t(unicode::length(s));
  if (width <= len) return s;
  if (width > (int64_t(1) << 24)) fail("format width too large");
  int64_t marg = width - len, left = 0;
  if (align == '>')
    left = marg;
  else if (align == '^')
    left = marg / 2;
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < marg; ++i) out += fill;
  return out;
}

// Python's format(value, spec) for str, int, float and bool (the common cases).
std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  size_t i = 0;
  std::string fill = " ";
  char align = 0;
  {
    size_t p = 0;
    uint32_t first = unicode::next(spec, p);
    if (p < spec.size() && std::strchr("<>=^", spec[p])) {
      fill.clear();
      unicode::append(fill, first);
      align = spec[p];
      i = p + 1;
    } else if (std::strchr("<>=^", spec[0])) {
      align = spec[0];
      i = 1;
    }
  }
  char sign = 0;
  if (i < spec.size() && std::strchr("+- ", spec[i])) sign = spec[i++];
  bool alt = false, zero = false;
  if (i < spec.size() && spec[i] == '#') alt = true, ++i;
  if (i < spec.size() && spec[i] == '0') zero = true, ++i;
  int64_t width = 0;
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9' && width < (1 << 24))
    width = width * 10 + (spec[i++] - '0');
  char grouping = 0;
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) grouping = spec[i++];
  int64_t prec = -1;
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    prec = 0;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9' && prec < 1000)
      prec = prec * 10 + (spec[i++] - '0');
  }
  char type = i < spec.size() ? spec[i++] : 0;
  if (i != spec.size()) fail("Invalid format specifier '", spec, "'");
  if (zero && !align) fill = "0", align = '=';

  if (v.is_string()) {
    if (type && type != 's')
      fail("Unknown format code '", std::string(1, type), "' for object of type 'str'");
    std::string s = v.as_string();
    if (prec >= 0) s = slice(v, 0, prec, 1).as_string();
    return pad(s, width, align ? (align == '=' ? '<' : align) : '<', fill);
  }
  if (!v.is_number()) fail("unsupported format string passed to ", v.type_name(), ".__format__");
  std::string body, prefix;
  bool negative = false;
  bool as_int = (v.is_int() || v.is_bool()) && (!type || std::strchr("dbboxXnc", type));
  if (as_int) {
    if (grouping && type && type != 'd' && type != 'n') grouping = 0;
    int64_t x = v.as_int();
    negative = x < 0;
    uint64_t u = negative ? uint64_t(0) - uint64_t(x) : uint64_t(x);
    int base = type == 'b' ? 2 : type == 'o' ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
    if (type == 'c') return pad(std::string(1, char(x)), width, align ? align : '<', fill);
    do {
      int d = int(u % uint64_t(base));
      body += char(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10);
      u /= uint64_t(base);
    } while (u);
    std::reverse(body.begin(), body.end());
    if (alt && base != 10) prefix = base == 2 ? "0b" : base == 8 ? "0o" : type == 'X' ? "0X" : "0x";
  } else {
    if (type && !std::strchr("eEfFgGn%", type))
      fail("Unknown format code '", std::string(1, type), "' for object of type 'float'");
    double x = v.as_float();
    negative = std::signbit(x) && !std::isnan(x);
    x = std::fabs(x);
    char buf[512];
    if (!type) {
      if (prec < 0) {
        body = format_float(x);
      } else {
        std::snprintf(buf, sizeof buf, "%.*g", int(std::max<int64_t>(prec, 1)), x);
        body = buf;
        if (body.find_first_of(".en") == std::string::npos && std::isfinite(x)) body += ".0";
      }
    } else if (type == '%') {
      std::snprintf(buf, sizeof buf, "%.*f", int(prec < 0 ? 6 : prec), x * 100);
      body = std::string(buf) + "%";
    } else {
      char t = type == 'n' ? 'g' : type;
      std::snprintf(buf, sizeof buf, (std::string("%") + (alt ? "#" : "") + ".*" + t).c_str(),
                    int(prec < 0 ? 6 : prec), x);
      body = buf;
    }
  }
  if (grouping) {
    size_t end = body.find_first_not_of("0123456789");
    if (end == std::string::npos) end = body.size();
    std::string grouped;
    for (size_t k = 0; k < end; ++k) {
      if (k && (end - k) % 3 == 0) grouped += grouping;
      grouped += body[k];
    }
    body = grouped + body.substr(end);
  }
  std::string sign_str = negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
  if (align == '=') {
    std::string num = prefix + body;
    int64_t w = width - int64_t(sign_str.size());
    return sign_str + pad(num, w, '>', fill);
  }
  return pad(sign_str + prefix + body, width, align ? align : '>', fill);
}

Value field_value(const std::string& field, const CallArgs& args, size_t& auto_index,
                  int& numbering) {
  size_t end = field.find_first_of(".[");
  std::string head = field.substr(0, end);
  Value v;
  if (head.empty() ||
      std::all_of(head.begin(), head.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    size_t idx;
    if (head.empty()) {
      if (numbering == 2)
        fail("cannot switch from manual field specification to automatic field numbering");
      numbering = 1;
      idx = auto_index++;
    } else {
      if (numbering == 1)
        fail("cannot switch from automatic field numbering to manual field specification");
      numbering = 2;
      idx = size_t(std::min<int64_t>(parse_int(head, 10).value_or(INT32_MAX), INT32_MAX));
    }
    if (idx >= args.pos.size())
      fail("Replacement index ", format_int(int64_t(idx)),
           " out of range for positional args tuple");
    v = args.pos[idx];
  } else {
    auto it =
        std::find_if(args.kw.begin(), args.kw.end(), [&](auto& kv) { return kv.first == head; });
    if (it == args.kw.end()) fail("KeyError: '", head, "'");
    v = it->second;
  }
  if (end != std::string::npos)
    fail("attribute or index lookups in format fields are not supported");
  return v;
}

}  // namespace

std::string format_braces(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  int numbering = 0;
  for (size_t i = 0; i < fmt.size();) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string inner = fmt.substr(i + 1, close - i - 1);
    if (inner.find('{') != std::string::npos) fail("nested format fields are not supported");
    std::string spec;
    size_t colon = inner.find(':');
    if (colon != std::string::npos) spec = inner.substr(colon + 1), inner.resize(colon);
    char conv = 0;
    size_t bang = inner.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != inner.size()) fail("expected ':' after conversion specifier");
      conv = inner[bang + 1];
      inner.resize(bang);
    }
    Value v = field_value(inner, args, auto_index, numbering);
    if (conv == 'r' || conv == 'a')
      v = Value::string(repr(v));
    else if (conv == 's')
      v = Value::string(to_str(v));
    else if (conv)
      fail("Unknown conversion specifier ", std::string(1, conv));
    out += format_spec(v, spec);
    if (out.size() > kMaxStringBytes) fail("string too long");
    i = close + 1;
  }
  return out;
}

std::string format_percent(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t next_arg = 0;
  bool mapping = !args.kw.empty();
  for (size_t i = 0; i < fmt.size();) {
    if (fmt[i] != '%') {
      out += fmt[i++];
      continue;
    }
    ++i;
    if (i >= fmt.size()) fail("incomplete format");
    std::optional<Value> arg;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) fail("incomplete format key");
      std::string key = fmt.substr(i + 1, close - i - 1);
      if (!mapping) fail("format requires a mapping");
      auto it =
          std::find_if(args.kw.begin(), args.kw.end(), [&](auto& kv) { return kv.first == key; });
      if (it == args.kw.end()) fail("KeyError: '", key, "'");
      arg = it->second;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::strchr("-+ #0", fmt[i]) && fmt[i]) flags += fmt[i++];
    std::string width, prec;
    while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') width += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      prec = "0";
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') prec += fmt[i++];
    }
    while (i < fmt.size() && std::strchr("hlL", fmt[i]) && fmt[i]) ++i;
    if (i >= fmt.size()) fail("incomplete format");
    char type = fmt[i++];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (next_arg >= args.pos.size())
        fail(mapping ? "format requires a mapping" : "not enough arguments for format string");
      arg = args.pos[next_arg++];
    }
    if (width.size() > 6 || prec.size() > 6) fail("format width too large");
    std::string cfmt = "%" + flags + width;
    if (!prec.empty()) cfmt += "." + std::to_string(std::stoi(prec));
    char buf[1024];
    const Value& a = *arg;
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = type == 's' ? to_str(a) : repr(a);
        if (!prec.empty()) s = slice(Value::string(s), 0, std::stoi(prec), 1).as_string();
        bool left = flags.find('-') != std::string::npos;
        out += pad(s, width.empty() ? 0 : std::stoi(width), left ? '<' : '>', " ");
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'o':
      case 'x':
      case 'X': {
        if (!a.is_number())
          fail("%", std::string(1, type), " format: a real number is required, not ",
               a.type_name());
        if (a.is_float() && std::strchr("oxX", type))
          fail("%", std::string(1, type), " format: an integer is required, not float");
        int64_t x = a.is_float() ? int64_t(a.as_float()) : a.as_int();
        char t = type == 'i' || type == 'u' ? 'd' : type;
        std::snprintf(buf, sizeof buf, (cfmt + "ll" + t).c_str(), (long long)x);
        out += buf;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!a.is_number()) fail("must be real number, not ", a.type_name());
        std::snprintf(buf, sizeof buf, (cfmt + type).c_str(), a.as_float());
        out += buf;
        break;
      }
      case 'c': {
        if (a.is_string() && unicode::length(a.as_string()) == 1)
          out += a.as_string();
        else if (a.is_int())
          unicode::append(out, uint32_t(std::clamp<int64_t>(a.as_int(), 0, 0x10FFFF)));
        else
          fail("%c requires int or char");
        break;
      }
      default:
        fail("unsupported format character '", std::string(1, type), "'");
    }
    if (out.size() > kMaxStringBytes) fail("string too long");
  }
  if (!mapping && next_arg < args.pos.size())
    fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace kiln::jinja
