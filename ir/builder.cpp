#include "ir/builder.h"

#include "ir/infer.h"
#include "ir/printer.h"

namespace kiln::ir {

void Builder::fail(Error e) {
  if (status_.ok()) status_ = Status(std::move(e));
}

Node* Builder::add(Op op, std::vector<Value*> operands, Attrs attrs,
                   std::vector<TensorType> types) {
  auto n =
      before_ ? g_.insert_node(before_, op, std::move(operands), std::move(attrs), std::move(types))
              : g_.add_node(op, std::move(operands), std::move(attrs), std::move(types));
  if (!n.ok()) {
    fail(n.error().wrap("graph " + g_.name()));
    return nullptr;
  }
  if (!next_name_.empty() && !(*n)->results.empty()) g_.set_value_name((*n)->result(), next_name_);
  next_name_.clear();
  return *n;
}

Node* Builder::node(Op op, std::vector<Value*> operands, Attrs attrs) {
  if (!status_.ok()) return nullptr;
  for (Value* v : operands)
    if (!v) return nullptr;
  Attrs normalized = attrs;
  Status st = normalize_attrs(op, normalized);
  if (!st.ok()) {
    fail(st.error());
    return nullptr;
  }
  InferInput in;
  for (Value* v : operands) in.operands.push_back(&v->type);
  in.attrs = &normalized;
  in.body = nullptr;
  auto types = infer_types(op, in);
  if (!types.ok()) {
    std::string shapes;
    for (Value* v : operands) shapes += (shapes.empty() ? "" : ", ") + v->type.str();
    fail(types.error().wrap("graph " + g_.name() + " (operands " + shapes + ")"));
    return nullptr;
  }
  return add(op, std::move(operands), std::move(normalized), std::move(*types));
}

Value* Builder::op(Op op, std::vector<Value*> operands, Attrs attrs) {
  Node* n = node(op, std::move(operands), std::move(attrs));
  if (!n) return nullptr;
  if (n->results.size() != 1) {
    fail(make_error(op_name(op), ": expected one result"));
    return nullptr;
  }
  return n->result();
}

Value* Builder::input(const std::string& name, TensorType t) {
  if (!status_.ok()) return nullptr;
  if (next_name_.empty()) next_name_ = name;
  Node* n = add(Op::Input, {}, {{"name", name}}, {std::move(t)});
  return n ? n->result() : nullptr;
}

Value* Builder::weight(const std::string& name, TensorType t) {
  if (!status_.ok()) return nullptr;
  Node* n = add(Op::Weight, {}, {{"name", name}}, {std::move(t)});
  return n ? n->result() : nullptr;
}

Value* Builder::state(const std::string& name, TensorType t) {
  if (!status_.ok()) return nullptr;
  if (next_name_.empty()) next_name_ = name;
  Node* n = add(Op::State, {}, {{"name", name}}, {std::move(t)});
  return n ? n->result() : nullptr;
}

Value* Builder::arg(int index, TensorType t) {
  if (!status_.ok()) return nullptr;
  Node* n = add(Op::Arg, {}, {{"index", int64_t(index)}}, {std::move(t)});
  return n ? n->result() : nullptr;
}

void Builder::output(Value* v, const std::string& name) {
  if (!status_.ok() || !v) return;
  add(Op::Output, {v}, {{"name", name}}, {});
}

Value* Builder::softmax(Value* x, Value* mask, double scale, double softcap) {
  std::vector<Value*> ops = {x};
  if (mask) ops.push_back(mask);
  return op(Op::Softmax, std::move(ops), {{"scale", scale}, {"softcap", softcap}});
}

}  // namespace kiln::ir
