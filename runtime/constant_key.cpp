#include "runtime/constant_key.h"

#include "ir/attrs.h"

namespace kiln::runtime {

std::string constant_key(const ir::Value& v) {
  const ir::Node& n = *v.def;
  if (n.op == ir::Op::Weight) return "weight(" + n.attrs.s("name") + ":" + v.type.str() + ")";
  std::string k(ir::op_name(n.op));
  k += "{";
  for (const ir::Attr& a : n.attrs.list()) k += a.name + "=" + ir::attr_value_str(a.value) + ",";
  k += "}(";
  for (const ir::Value* o : n.operands) k += constant_key(*o) + ",";
  k += ")#" + std::to_string(v.index) + ":" + v.type.str();
  return k;
}

std::string packed_key(const ir::Value& v) {
  return constant_key(v) + "@mk-packed";
}

}  // namespace kiln::runtime
