// Node attributes: a small ordered list of named values, checked against the op's spec.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ir/dtype.h"
#include "ir/op.h"
#include "ir/status.h"

namespace kiln::ir {

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, DType>;

struct Attr {
  std::string name;
  AttrValue value;
  bool operator==(const Attr& o) const { return name == o.name && value == o.value; }
};

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<Attr> list) : list_(list) {}

  void set(std::string name, AttrValue v);
  const AttrValue* find(std::string_view name) const;
  const std::vector<Attr>& list() const { return list_; }
  bool operator==(const Attrs& o) const { return list_ == o.list_; }

  // Typed getters; the verifier guarantees presence and kind, so these assert in debug builds
  // and return a neutral value otherwise.
  int64_t i(std::string_view name) const;
  double f(std::string_view name) const;
  const std::string& s(std::string_view name) const;
  const std::vector<int64_t>& ints(std::string_view name) const;
  DType dtype(std::string_view name) const;

 private:
  std::vector<Attr> list_;
};

AttrKind kind_of(const AttrValue& v);
std::string_view attr_kind_name(AttrKind k);
// Text of an attribute value as printed in IR ("1e-05", "\"neox\"", "[0, 2, 1]", "f16").
std::string attr_value_str(const AttrValue& v);
// Parses a default from ops.def / a literal of the given kind.
Result<AttrValue> parse_attr_literal(AttrKind kind, std::string_view text);

// Fills defaults and checks names and kinds against the op's spec.
Status normalize_attrs(Op op, Attrs& attrs);

}  // namespace kiln::ir
