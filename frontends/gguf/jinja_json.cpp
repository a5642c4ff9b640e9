// json.dumps as Python writes it, for the tojson filter: its separators, its float repr, its
// escapes with and without ensure_ascii, and its indent layout.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "frontends/gguf/jinja_ops.h"
#include "frontends/gguf/jinja_unicode.h"

namespace kiln::jinja {
namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  char buf[16];
  out += '"';
  for (size_t pos = 0; pos < s.size();) {
    size_t start = pos;
    uint32_t cp = unicode::next(s, pos);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= unicode::kInvalidBase) cp = 0xDC00 + (cp - unicode::kInvalidBase);
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      }
      out += buf;
    } else {
      out.append(s, start, pos - start);
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return format_float(d);
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonOptions& o) : o_(o) {
    if (o.separators) {
      item_sep_ = o.separators->first;
      key_sep_ = o.separators->second;
    } else {
      item_sep_ = o.indent ? "," : ", ";
      key_sep_ = ": ";
    }
  }

  void write(const Value& v, int level) {
    if (level > 2 * kMaxValueDepth) fail("value nested too deeply for tojson");
    if (out.size() > kMaxStringBytes) fail("tojson output too long");
    switch (v.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return;
      case Value::Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return;
      case Value::Kind::kInt:
        out += format_int(v.as_int());
        return;
      case Value::Kind::kFloat:
        out += json_float(v.as_float());
        return;
      case Value::Kind::kString:
        json_string(out, v.as_string(), o_.ensure_ascii);
        return;
      case Value::Kind::kList: {
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep_;
          newline(level + 1);
          write(items[i], level + 1);
        }
        newline(level);
        out += ']';
        return;
      }
      case Value::Kind::kDict:
        if (v.is_mapping()) return write_dict(v.dict_data(), level);
        break;
      default:
        break;
    }
    fail("Object of type ", v.type_name(), " is not JSON serializable");
  }

  std::string out;

 private:
  void newline(int level) {
    if (!o_.indent) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o_.indent;
  }

  std::string key_string(const Value& k) {
    switch (k.kind()) {
      case Value::Kind::kString:
        return k.as_string();
      case Value::Kind::kNone:
        return "null";
      case Value::Kind::kBool:
        return k.as_bool() ? "true" : "false";
      case Value::Kind::kInt:
        return format_int(k.as_int());
      case Value::Kind::kFloat:
        return json_float(k.as_float());
      default:
        fail("keys must be str, int, float, bool or None, not ", k.type_name());
    }
  }

  void write_dict(const DictData& d, int level) {
    if (d.entries.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (o_.sort_keys)
      stable_merge_sort(entries, [](auto* a, auto* b) { return less(a->first, b->first); });
    out += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += item_sep_;
      newline(level + 1);
      json_string(out, key_string(entries[i]->first), o_.ensure_ascii);
      out += key_sep_;
      write(entries[i]->second, level + 1);
    }
    newline(level);
    out += '}';
  }

  const JsonOptions& o_;
  std::string item_sep_, key_sep_;
};

}  // namespace

std::string to_json(const Value& v, const JsonOptions& opt) {
  JsonWriter w(opt);
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace kiln::jinja
