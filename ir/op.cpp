#include "ir/op.h"

#include <vector>

namespace kiln::ir {
namespace {

AttrKind parse_kind(std::string_view k) {
  if (k == "i") return AttrKind::Int;
  if (k == "f") return AttrKind::Float;
  if (k == "s") return AttrKind::String;
  if (k == "is") return AttrKind::Ints;
  return AttrKind::DType;  // "t"
}

// Parses "name:kind=default,..." from ops.def (trusted input, checked by ir_test).
std::vector<AttrSpec> parse_spec(std::string_view spec) {
  std::vector<AttrSpec> out;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t colon = item.find(':');
    size_t eq = item.find('=');
    AttrSpec a;
    a.name = std::string(item.substr(0, colon));
    a.kind = parse_kind(item.substr(colon + 1, eq == std::string_view::npos ? eq : eq - colon - 1));
    if (eq != std::string_view::npos) a.default_text = std::string(item.substr(eq + 1));
    out.push_back(std::move(a));
  }
  return out;
}

const std::vector<OpInfo>& table() {
  static const std::vector<OpInfo> t = [] {
    std::vector<OpInfo> v;
#define X(E, name, mn, mx, nr, traits, attrs) \
  v.push_back(OpInfo{Op::E, name, mn, mx, nr, uint32_t(traits), parse_spec(attrs)});
#include "ir/ops.def"
#undef X
    return v;
  }();
  return t;
}

}  // namespace

const OpInfo& op_info(Op op) {
  return table()[size_t(op)];
}
std::string_view op_name(Op op) {
  return op_info(op).name;
}
int num_ops() {
  return int(table().size());
}

std::optional<Op> op_from_name(std::string_view name) {
  for (const OpInfo& i : table())
    if (i.name == name) return i.op;
  return std::nullopt;
}

}  // namespace kiln::ir
