#include "ir/attrs.h"

#include <cassert>
#include <charconv>
#include <cstdio>

namespace kiln::ir {

void Attrs::set(std::string name, AttrValue v) {
  for (Attr& a : list_)
    if (a.name == name) {
      a.value = std::move(v);
      return;
    }
  list_.push_back({std::move(name), std::move(v)});
}

const AttrValue* Attrs::find(std::string_view name) const {
  for (const Attr& a : list_)
    if (a.name == name) return &a.value;
  return nullptr;
}

int64_t Attrs::i(std::string_view name) const {
  const AttrValue* v = find(name);
  assert(v && std::holds_alternative<int64_t>(*v));
  return v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : 0;
}

double Attrs::f(std::string_view name) const {
  const AttrValue* v = find(name);
  assert(v && std::holds_alternative<double>(*v));
  return v && std::holds_alternative<double>(*v) ? std::get<double>(*v) : 0.0;
}

const std::string& Attrs::s(std::string_view name) const {
  static const std::string empty;
  const AttrValue* v = find(name);
  assert(v && std::holds_alternative<std::string>(*v));
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : empty;
}

const std::vector<int64_t>& Attrs::ints(std::string_view name) const {
  static const std::vector<int64_t> empty;
  const AttrValue* v = find(name);
  assert(v && std::holds_alternative<std::vector<int64_t>>(*v));
  return v && std::holds_alternative<std::vector<int64_t>>(*v) ? std::get<std::vector<int64_t>>(*v)
                                                               : empty;
}

DType Attrs::dtype(std::string_view name) const {
  const AttrValue* v = find(name);
  assert(v && std::holds_alternative<DType>(*v));
  return v && std::holds_alternative<DType>(*v) ? std::get<DType>(*v) : DType::F32;
}

AttrKind kind_of(const AttrValue& v) {
  switch (v.index()) {
    case 0:
      return AttrKind::Int;
    case 1:
      return AttrKind::Float;
    case 2:
      return AttrKind::String;
    case 3:
      return AttrKind::Ints;
    default:
      return AttrKind::DType;
  }
}

std::string_view attr_kind_name(AttrKind k) {
  switch (k) {
    case AttrKind::Int:
      return "int";
    case AttrKind::Float:
      return "float";
    case AttrKind::String:
      return "string";
    case AttrKind::Ints:
      return "int list";
    case AttrKind::DType:
      return "dtype";
  }
  return "?";
}

// Shortest text that reads back to the same double; always has a '.', 'e', "inf" or "nan" so the
// parser can tell it from an int.
static std::string float_str(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // "inf"/"nan" contain 'n'
  return s;
}

static std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string attr_value_str(const AttrValue& v) {
  switch (kind_of(v)) {
    case AttrKind::Int:
      return std::to_string(std::get<int64_t>(v));
    case AttrKind::Float:
      return float_str(std::get<double>(v));
    case AttrKind::String:
      return quote(std::get<std::string>(v));
    case AttrKind::Ints: {
      std::string s = "[";
      const auto& l = std::get<std::vector<int64_t>>(v);
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + std::to_string(l[i]);
      return s + "]";
    }
    case AttrKind::DType:
      return std::string(dtype_name(std::get<DType>(v)));
  }
  return "";
}

Result<AttrValue> parse_attr_literal(AttrKind kind, std::string_view t) {
  switch (kind) {
    case AttrKind::Int: {
      int64_t x = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), x);
      if (r.ec != std::errc() || r.ptr != t.data() + t.size())
        return make_error("expected an integer, found '", t, "'");
      return AttrValue(x);
    }
    case AttrKind::Float: {
      double x = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), x);
      if (r.ec != std::errc() || r.ptr != t.data() + t.size())
        return make_error("expected a number, found '", t, "'");
      return AttrValue(x);
    }
    case AttrKind::String:
      return AttrValue(std::string(t));
    case AttrKind::DType: {
      auto d = dtype_from_name(t);
      if (!d) return make_error("unknown dtype '", t, "'");
      return AttrValue(*d);
    }
    case AttrKind::Ints:
      return make_error("int list literals are parsed by the IR parser");
  }
  return make_error("bad attribute kind");
}

Status normalize_attrs(Op op, Attrs& attrs) {
  const OpInfo& info = op_info(op);
  for (const Attr& a : attrs.list()) {
    const AttrSpec* spec = nullptr;
    for (const AttrSpec& s : info.attrs)
      if (s.name == a.name) spec = &s;
    if (!spec) return make_error(info.name, ": unknown attribute '", a.name, "'");
    AttrKind k = kind_of(a.value);
    // An int literal is accepted where a float is expected.
    if (k != spec->kind && !(k == AttrKind::Int && spec->kind == AttrKind::Float))
      return make_error(info.name, ": attribute '", a.name, "' must be ",
                        attr_kind_name(spec->kind), ", found ", attr_kind_name(k));
  }
  // Rebuild in spec order with defaults filled, so equal attributes print identically.
  Attrs out;
  for (const AttrSpec& s : info.attrs) {
    const AttrValue* v = attrs.find(s.name);
    if (v) {
      if (s.kind == AttrKind::Float && kind_of(*v) == AttrKind::Int)
        out.set(s.name, double(std::get<int64_t>(*v)));
      else
        out.set(s.name, *v);
    } else if (s.default_text) {
      if (s.kind == AttrKind::Ints) {
        out.set(s.name, std::vector<int64_t>{});
      } else {
        KILN_ASSIGN_OR_RETURN(AttrValue d, parse_attr_literal(s.kind, *s.default_text));
        out.set(s.name, std::move(d));
      }
    } else {
      return make_error(info.name, ": missing attribute '", s.name, "'");
    }
  }
  attrs = std::move(out);
  return Status::Ok();
}

}  // namespace kiln::ir
