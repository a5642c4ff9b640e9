#include "ir/verifier.h"

#include <unordered_set>

#include "ir/infer.h"
#include "ir/printer.h"

namespace kiln::ir {
namespace {

Status verify_graph(const Graph& g, bool is_region, int num_region_operands,
                    const std::vector<const TensorType*>& region_operand_types) {
  std::unordered_set<const Value*> defined;
  std::unordered_set<std::string> names;
  std::unordered_set<std::string> interface_names;  // input/output/state names
  int yields = 0;
  size_t idx = 0;
  for (const auto& np : g.nodes()) {
    const Node& n = *np;
    auto where = [&] {
      return "graph " + g.name() + ", node " + std::to_string(idx) + " (" +
             std::string(n.info().name) + ")";
    };
    const OpInfo& info = n.info();
    int no = n.num_operands();
    if (no < info.min_operands || (info.max_operands >= 0 && no > info.max_operands))
      return make_error(where(), ": wrong number of operands (", no, ")");
    for (size_t i = 0; i < n.operands.size(); ++i) {
      const Value* o = n.operands[i];
      if (!o) return make_error(where(), ": operand ", i, " is null");
      if (!defined.count(o))
        return make_error(where(), ": operand ", i,
                          " is not defined before its use in this graph (not SSA or a cycle)");
    }
    Attrs copy = n.attrs;
    Status st = normalize_attrs(n.op, copy);
    if (!st.ok()) return make_error(where(), ": ", st.message());
    if (!(copy == n.attrs)) return make_error(where(), ": attributes not in normal form");

    if (n.op == Op::Arg) {
      if (!is_region) return make_error(where(), ": arg outside a region body");
      int64_t k = n.attrs.i("index");
      if (k < 0 || k >= num_region_operands)
        return make_error(where(), ": arg index ", k, " out of range");
      if (n.result()->type != *region_operand_types[size_t(k)])
        return make_error(where(), ": arg type ", n.result()->type.str(),
                          " differs from the region operand ",
                          region_operand_types[size_t(k)]->str());
    }
    if (n.op == Op::Yield) {
      if (!is_region) return make_error(where(), ": yield outside a region body");
      if (idx + 1 != g.size()) return make_error(where(), ": yield must be the last node");
      ++yields;
    }
    if (n.op == Op::Output && is_region) return make_error(where(), ": output inside a region");
    if (n.op == Op::Input || n.op == Op::Output || n.op == Op::State) {
      std::string key = std::string(info.name) + ":" + n.attrs.s("name");
      if (!interface_names.insert(key).second)
        return make_error(where(), ": duplicate ", info.name, " name \"", n.attrs.s("name"), "\"");
    }
    if ((n.op == Op::Region) != (n.body != nullptr))
      return make_error(where(), ": only region nodes have a body");
    if (n.body) {
      std::vector<const TensorType*> types;
      for (const Value* o : n.operands) types.push_back(&o->type);
      KILN_RETURN_IF_ERROR(verify_graph(*n.body, true, n.num_operands(), types));
    }

    auto inferred = infer_types(n);
    if (!inferred.ok()) return make_error(where(), ": ", inferred.message());
    if (!info.has(kSource)) {
      if (inferred->size() != n.results.size())
        return make_error(where(), ": has ", n.results.size(), " results, expected ",
                          inferred->size());
      for (size_t i = 0; i < n.results.size(); ++i)
        if ((*inferred)[i] != n.results[i]->type)
          return make_error(where(), ": result ", i, " has type ", n.results[i]->type.str(),
                            ", inference gives ", (*inferred)[i].str());
    } else if (n.results.size() != 1) {
      return make_error(where(), ": a source has exactly one result");
    }
    for (const Value* r : n.results) {
      if (r->def != &n) return make_error(where(), ": result does not point back to its node");
      if (!r->name.empty() && !names.insert(r->name).second)
        return make_error(where(), ": duplicate value name %", r->name);
      defined.insert(r);
    }
    ++idx;
  }
  if (is_region && yields != 1)
    return make_error("graph ", g.name(), ": region body needs one yield");
  return Status::Ok();
}

}  // namespace

Status verify(const Graph& g) {
  return verify_graph(g, false, 0, {});
}

}  // namespace kiln::ir
