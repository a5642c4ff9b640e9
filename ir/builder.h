// Builds graphs with type inference. Errors are sticky: after the first failure every call
// returns nullptr (and calls given a nullptr operand do too), and status() reports the first
// error, so lowering code reads as straight-line math and checks once at the end.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::ir {

class Builder {
 public:
  explicit Builder(Graph& g) : g_(g) {}

  Graph& graph() { return g_; }
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  // New nodes go before `n` (nullptr: append at the end, the default).
  void insert_before(Node* n) { before_ = n; }
  // Names the next result (made unique); the name applies to one node.
  Builder& named(std::string name) {
    next_name_ = std::move(name);
    return *this;
  }

  // Any op, types inferred. Returns the node (nullptr on error).
  Node* node(Op op, std::vector<Value*> operands, Attrs attrs = {});
  // Any single-result op.
  Value* op(Op op, std::vector<Value*> operands, Attrs attrs = {});

  Value* input(const std::string& name, TensorType t);
  Value* weight(const std::string& name, TensorType t);
  Value* state(const std::string& name, TensorType t);
  Value* arg(int index, TensorType t);
  void output(Value* v, const std::string& name);

  Value* mul_mat(Value* x, Value* w, DType act = DType::F32) {
    return op(Op::MulMat, {x, w}, {{"act", act}});
  }
  Value* get_rows(Value* table, Value* idx) { return op(Op::GetRows, {table, idx}); }
  Value* add(Value* a, Value* b) { return op(Op::Add, {a, b}); }
  Value* sub(Value* a, Value* b) { return op(Op::Sub, {a, b}); }
  Value* mul(Value* a, Value* b) { return op(Op::Mul, {a, b}); }
  Value* div(Value* a, Value* b) { return op(Op::Div, {a, b}); }
  Value* scale(Value* x, double s) { return op(Op::Scale, {x}, {{"scale", s}}); }
  Value* silu(Value* x) { return op(Op::Silu, {x}); }
  Value* gelu(Value* x, const std::string& approx = "tanh") {
    return op(Op::Gelu, {x}, {{"approx", approx}});
  }
  Value* tanh(Value* x) { return op(Op::Tanh, {x}); }
  Value* exp(Value* x) { return op(Op::Exp, {x}); }
  Value* cast(Value* x, DType to) { return op(Op::Cast, {x}, {{"to", to}}); }
  Value* rope(Value* x, Value* pos, const std::string& mode, int64_t n_dims, double base,
              double freq_scale = 1.0) {
    return op(
        Op::Rope, {x, pos},
        {{"mode", mode}, {"n_dims", n_dims}, {"freq_base", base}, {"freq_scale", freq_scale}});
  }
  Value* rms_norm(Value* x, double eps) { return op(Op::RmsNorm, {x}, {{"eps", eps}}); }
  Value* norm(Value* x, double eps) { return op(Op::Norm, {x}, {{"eps", eps}}); }
  Value* softmax(Value* x, Value* mask, double scale, double softcap = 0.0);
  Value* argmax(Value* x) { return op(Op::Argmax, {x}); }
  Value* reshape(Value* x, Shape s) { return op(Op::Reshape, {x}, {{"shape", std::move(s)}}); }
  Value* view(Value* x, int64_t offset, Shape s) {
    return op(Op::View, {x}, {{"offset", offset}, {"shape", std::move(s)}});
  }
  Value* permute(Value* x, std::vector<int64_t> perm) {
    return op(Op::Permute, {x}, {{"perm", std::move(perm)}});
  }
  Value* slice(Value* x, int64_t axis, int64_t start, int64_t size) {
    return op(Op::Slice, {x}, {{"axis", axis}, {"start", start}, {"size", size}});
  }
  Value* concat(std::vector<Value*> xs, int64_t axis) {
    return op(Op::Concat, std::move(xs), {{"axis", axis}});
  }
  Value* kv_write(Value* cache, Value* x, Value* pos, Value* seq) {
    return op(Op::KvWrite, {cache, x, pos, seq});
  }
  Value* attn_mask(Value* pos, int64_t ctx, int64_t window) {
    return op(Op::AttnMask, {pos}, {{"ctx", ctx}, {"window", window}});
  }
  Value* attention(Value* q, Value* k, Value* v, Value* pos, Value* seq, double scale,
                   int64_t window = 0, double softcap = 0.0, DType act = DType::F32) {
    return op(Op::Attention, {q, k, v, pos, seq},
              {{"scale", scale}, {"window", window}, {"softcap", softcap}, {"act", act}});
  }

 private:
  Node* add(Op op, std::vector<Value*> operands, Attrs attrs, std::vector<TensorType> types);
  void fail(Error e);

  Graph& g_;
  Status status_;
  Node* before_ = nullptr;
  std::string next_name_;
};

}  // namespace kiln::ir
