#include "ir/infer.h"

#include <algorithm>

namespace kiln::ir {
namespace {

using Types = std::vector<TensorType>;
using R = Result<Types>;

const TensorType& arg(const InferInput& in, int i) {
  return *in.operands[size_t(i)];
}

Error err(Op op, auto&&... pieces) {
  return make_error(op_name(op), ": ", std::forward<decltype(pieces)>(pieces)...);
}

bool is_index_type(DType t) {
  return t == DType::I32 || t == DType::I64;
}
bool is_activation(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

R declared(const InferInput&) {
  return Types{};
}

R sink(const InferInput&) {
  return Types{};
}

R unary_float(Op op, const InferInput& in) {
  const TensorType& x = arg(in, 0);
  if (!is_activation(x.dtype)) return err(op, "operand must be f32/f16/bf16, found ", x.str());
  return Types{{DType::F32, x.shape}};
}

R binary(Op op, const InferInput& in) {
  const TensorType& a = arg(in, 0);
  const TensorType& b = arg(in, 1);
  if (!is_activation(a.dtype) || !is_activation(b.dtype))
    return err(op, "operands must be f32/f16/bf16, found ", a.str(), " and ", b.str());
  auto s = broadcast_shapes(a.shape, b.shape);
  if (!s)
    return err(op, "shapes ", shape_str(a.shape), " and ", shape_str(b.shape), " do not broadcast");
  return Types{{DType::F32, *s}};
}

// Quantized tensors keep whole blocks along the last axis; data movement may not split them.
bool last_axis_ok(const TensorType& t, int axis) {
  return !is_quantized(t.dtype) || axis < t.rank() - 1;
}

}  // namespace

R infer_Input(const InferInput& in) {
  return declared(in);
}
R infer_Weight(const InferInput& in) {
  return declared(in);
}
R infer_State(const InferInput& in) {
  return declared(in);
}
R infer_Arg(const InferInput& in) {
  return declared(in);
}
R infer_Output(const InferInput& in) {
  return sink(in);
}
R infer_Yield(const InferInput& in) {
  return sink(in);
}

R infer_MulMat(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  const TensorType& w = arg(in, 1);
  if (!is_activation(x.dtype))
    return err(Op::MulMat, "activations must be f32/f16/bf16, found ", x.str());
  if (x.rank() < 2 || w.rank() < 2)
    return err(Op::MulMat, "operands need rank >= 2: ", x.str(), ", ", w.str());
  DType act = in.attrs->dtype("act");
  if (act != DType::F32 && act != DType::F16 && act != DType::BF16 && act != DType::Q8_0 &&
      act != DType::Q8_1 && act != DType::Q8_K)
    return err(Op::MulMat, "act must be f32, f16, bf16, q8_0, q8_1 or q8_k, found ",
               dtype_name(act));
  if (act != DType::F32 && !row_bytes(act, uint64_t(x.dim(-1))))
    return err(Op::MulMat, "inner dimension ", x.dim(-1), " is not a whole number of ",
               dtype_name(act), " blocks");
  if (x.dim(-1) != w.dim(-1))
    return err(Op::MulMat, "inner dimensions differ: ", x.str(), " x ", w.str());
  if (w.rank() != 2 && w.rank() != x.rank())
    return err(Op::MulMat, "weights must be 2-D or have the activations' rank: ", x.str(), " x ",
               w.str());
  Shape out(x.shape.begin(), x.shape.end() - 1);
  out.push_back(w.dim(-2));
  if (w.rank() == x.rank())
    for (int i = 0; i + 2 < x.rank(); ++i)
      if (w.shape[size_t(i)] == 0 || x.shape[size_t(i)] % w.shape[size_t(i)] != 0)
        return err(Op::MulMat, "batch dim ", i, " of ", w.str(), " does not divide ", x.str());
  return Types{{DType::F32, out}};
}

R infer_GetRows(const InferInput& in) {
  const TensorType& t = arg(in, 0);
  const TensorType& idx = arg(in, 1);
  if (t.rank() != 2) return err(Op::GetRows, "table must be 2-D, found ", t.str());
  if (!is_index_type(idx.dtype))
    return err(Op::GetRows, "indices must be i32/i64, found ", idx.str());
  Shape out = idx.shape;
  out.push_back(t.dim(1));
  return Types{{DType::F32, out}};
}

R infer_Add(const InferInput& in) {
  return binary(Op::Add, in);
}
R infer_Sub(const InferInput& in) {
  return binary(Op::Sub, in);
}
R infer_Mul(const InferInput& in) {
  return binary(Op::Mul, in);
}
R infer_Div(const InferInput& in) {
  return binary(Op::Div, in);
}
R infer_Scale(const InferInput& in) {
  return unary_float(Op::Scale, in);
}
R infer_Silu(const InferInput& in) {
  return unary_float(Op::Silu, in);
}
R infer_Tanh(const InferInput& in) {
  return unary_float(Op::Tanh, in);
}
R infer_Exp(const InferInput& in) {
  return unary_float(Op::Exp, in);
}

R infer_Gelu(const InferInput& in) {
  const std::string& a = in.attrs->s("approx");
  if (a != "tanh" && a != "erf" && a != "tanh_f16")
    return err(Op::Gelu, "approx must be \"tanh\", \"tanh_f16\" or \"erf\", found \"", a, "\"");
  return unary_float(Op::Gelu, in);
}

R infer_Cast(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  DType to = in.attrs->dtype("to");
  if (!is_activation(x.dtype) && !is_quantized(x.dtype))
    return err(Op::Cast, "cannot cast from ", x.str());
  if (x.rank() == 0 || !row_bytes(to, uint64_t(x.dim(-1))))
    return err(Op::Cast, "last dim of ", x.str(), " is not a whole number of ", dtype_name(to),
               " blocks");
  return Types{{to, x.shape}};
}

R infer_Rope(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  const TensorType& pos = arg(in, 1);
  const std::string& mode = in.attrs->s("mode");
  int64_t nd = in.attrs->i("n_dims");
  if (mode != "normal" && mode != "neox")
    return err(Op::Rope, "mode must be \"normal\" or \"neox\"");
  if (x.rank() < 3) return err(Op::Rope, "operand must be [..., T, H, D], found ", x.str());
  if (!is_index_type(pos.dtype)) return err(Op::Rope, "positions must be i32, found ", pos.str());
  if (Shape(x.shape.begin(), x.shape.end() - 2) != pos.shape)
    return err(Op::Rope, "positions ", pos.str(), " do not match ", x.str());
  if (nd <= 0 || nd % 2 || nd > x.dim(-1))
    return err(Op::Rope, "n_dims ", nd, " invalid for ", x.str());
  return unary_float(Op::Rope, in);
}

R infer_RmsNorm(const InferInput& in) {
  return unary_float(Op::RmsNorm, in);
}
R infer_Norm(const InferInput& in) {
  return unary_float(Op::Norm, in);
}

R infer_Softmax(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  if (in.operands.size() == 2) {
    const TensorType& m = arg(in, 1);
    auto s = broadcast_shapes(x.shape, m.shape);
    if (!s || *s != x.shape)
      return err(Op::Softmax, "mask ", m.str(), " does not broadcast to ", x.str());
  }
  return unary_float(Op::Softmax, in);
}

R infer_Argmax(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  if (x.rank() < 1) return err(Op::Argmax, "operand must have rank >= 1");
  return Types{{DType::I32, Shape(x.shape.begin(), x.shape.end() - 1)}};
}

R infer_Reshape(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  TensorType out{x.dtype, in.attrs->ints("shape")};
  for (int64_t d : out.shape)
    if (d <= 0) return err(Op::Reshape, "dims must be positive: ", shape_str(out.shape));
  if (!shape_in_range(out.shape))
    return err(Op::Reshape, "shape ", shape_str(out.shape), " holds more than 2^40 elements");
  if (out.numel() != x.numel())
    return err(Op::Reshape, "cannot reshape ", x.str(), " to ", shape_str(out.shape));
  if (is_quantized(x.dtype) && (out.rank() == 0 || out.dim(-1) != x.dim(-1)))
    return err(Op::Reshape, "a quantized tensor keeps its last dim");
  return Types{out};
}

R infer_View(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  TensorType out{x.dtype, in.attrs->ints("shape")};
  int64_t off = in.attrs->i("offset");
  for (int64_t d : out.shape)
    if (d <= 0) return err(Op::View, "dims must be positive: ", shape_str(out.shape));
  if (!shape_in_range(out.shape))
    return err(Op::View, "shape ", shape_str(out.shape), " holds more than 2^40 elements");
  if (off < 0 || off > kMaxElements || off + out.numel() > x.numel())
    return err(Op::View, "window [", off, ", +", out.numel(), ") outside ", x.str());
  if (is_quantized(x.dtype) && (out.dim(-1) != x.dim(-1) || off % x.dim(-1)))
    return err(Op::View, "a quantized view must take whole rows");
  return Types{out};
}

R infer_Permute(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  const auto& perm = in.attrs->ints("perm");
  if (int(perm.size()) != x.rank())
    return err(Op::Permute, "perm has ", perm.size(), " entries for ", x.str());
  std::vector<bool> seen(perm.size());
  Shape out;
  for (int64_t p : perm) {
    if (p < 0 || p >= x.rank() || seen[size_t(p)])
      return err(Op::Permute, "perm is not a permutation");
    seen[size_t(p)] = true;
    out.push_back(x.shape[size_t(p)]);
  }
  if (is_quantized(x.dtype) && perm.back() != x.rank() - 1)
    return err(Op::Permute, "a quantized tensor keeps its last axis");
  return Types{{x.dtype, out}};
}

R infer_Slice(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  int64_t axis = in.attrs->i("axis"), start = in.attrs->i("start"), size = in.attrs->i("size");
  if (axis < 0 || axis >= x.rank())
    return err(Op::Slice, "axis ", axis, " out of range for ", x.str());
  if (start < 0 || size <= 0 || start > x.shape[size_t(axis)] - size)
    return err(Op::Slice, "[", start, ", +", size, ") out of range for ", x.str());
  if (!last_axis_ok(x, int(axis))) return err(Op::Slice, "cannot split the blocks of ", x.str());
  Shape out = x.shape;
  out[size_t(axis)] = size;
  return Types{{x.dtype, out}};
}

R infer_Concat(const InferInput& in) {
  const TensorType& x = arg(in, 0);
  int64_t axis = in.attrs->i("axis");
  if (axis < 0 || axis >= x.rank())
    return err(Op::Concat, "axis ", axis, " out of range for ", x.str());
  if (!last_axis_ok(x, int(axis))) return err(Op::Concat, "cannot join the blocks of ", x.str());
  Shape out = x.shape;
  for (size_t i = 1; i < in.operands.size(); ++i) {
    const TensorType& y = arg(in, int(i));
    if (y.dtype != x.dtype || y.rank() != x.rank())
      return err(Op::Concat, "operands differ: ", x.str(), ", ", y.str());
    for (int d = 0; d < x.rank(); ++d)
      if (d != axis && y.shape[size_t(d)] != x.shape[size_t(d)])
        return err(Op::Concat, "operands differ off the axis: ", x.str(), ", ", y.str());
    out[size_t(axis)] += y.shape[size_t(axis)];
    if (!shape_in_range(out)) return err(Op::Concat, "result holds more than 2^40 elements");
  }
  return Types{{x.dtype, out}};
}

R infer_KvWrite(const InferInput& in) {
  const TensorType& c = arg(in, 0);
  const TensorType& x = arg(in, 1);
  const TensorType& pos = arg(in, 2);
  const TensorType& seq = arg(in, 3);
  if (c.rank() != 4 || x.rank() != 4)
    return err(Op::KvWrite, "cache must be [S, C, H, D] and values [B, T, H, D]: ", c.str(), ", ",
               x.str());
  if (c.dim(2) != x.dim(2) || c.dim(3) != x.dim(3))
    return err(Op::KvWrite, "head shape of ", x.str(), " does not match cache ", c.str());
  if (pos.shape != Shape{x.dim(0), x.dim(1)} || !is_index_type(pos.dtype))
    return err(Op::KvWrite, "positions must be i32[B, T], found ", pos.str());
  if (seq.shape != Shape{x.dim(0)} || !is_index_type(seq.dtype))
    return err(Op::KvWrite, "sequence slots must be i32[B], found ", seq.str());
  return Types{c};
}

R infer_AttnMask(const InferInput& in) {
  const TensorType& pos = arg(in, 0);
  if (pos.rank() != 2 || !is_index_type(pos.dtype))
    return err(Op::AttnMask, "positions must be i32[B, T]");
  int64_t ctx = in.attrs->i("ctx");
  if (ctx <= 0) return err(Op::AttnMask, "ctx must be positive");
  const Shape out{pos.dim(0), pos.dim(1), ctx};
  if (!shape_in_range(out)) return err(Op::AttnMask, "ctx ", ctx, " makes more than 2^40 elements");
  return Types{{DType::F32, out}};
}

R infer_Attention(const InferInput& in) {
  const TensorType& q = arg(in, 0);
  const TensorType& k = arg(in, 1);
  const TensorType& v = arg(in, 2);
  const TensorType& pos = arg(in, 3);
  const TensorType& seq = arg(in, 4);
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    return err(Op::Attention, "q must be [B, T, Hq, D], caches [S, C, Hkv, D]");
  if (k.shape[0] != v.shape[0] || k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2])
    return err(Op::Attention, "k and v caches differ: ", k.str(), ", ", v.str());
  if (q.dim(3) != k.dim(3)) return err(Op::Attention, "head dims differ: ", q.str(), ", ", k.str());
  if (q.dim(2) % k.dim(2) != 0) return err(Op::Attention, "query heads not a multiple of kv heads");
  DType act = in.attrs->dtype("act");
  if (act != DType::F32 && act != DType::F16)
    return err(Op::Attention, "act must be f32 or f16, found ", dtype_name(act));
  if (pos.shape != Shape{q.dim(0), q.dim(1)} || !is_index_type(pos.dtype))
    return err(Op::Attention, "positions must be i32[B, T], found ", pos.str());
  if (seq.shape != Shape{q.dim(0)} || !is_index_type(seq.dtype))
    return err(Op::Attention, "sequence slots must be i32[B], found ", seq.str());
  return Types{{DType::F32, {q.dim(0), q.dim(1), q.dim(2), v.dim(3)}}};
}

R infer_Region(const InferInput& in) {
  if (!in.body) return err(Op::Region, "has no body");
  std::vector<Node*> y = in.body->nodes_of(Op::Yield);
  if (y.size() != 1) return err(Op::Region, "body must end in exactly one yield");
  Types out;
  for (Value* v : y[0]->operands) out.push_back(v->type);
  return out;
}

Result<std::vector<TensorType>> infer_types(Op op, const InferInput& in) {
  using Fn = R (*)(const InferInput&);
  static const Fn table[] = {
#define X(E, name, mn, mx, nr, traits, attrs) &infer_##E,
#include "ir/ops.def"
#undef X
  };
  const OpInfo& info = op_info(op);
  int n = int(in.operands.size());
  if (n < info.min_operands || (info.max_operands >= 0 && n > info.max_operands))
    return make_error(info.name, ": takes ", info.min_operands,
                      info.max_operands == info.min_operands ? "" : " or more", " operands, found ",
                      n);
  return table[size_t(op)](in);
}

Result<std::vector<TensorType>> infer_types(const Node& n) {
  InferInput in;
  for (Value* v : n.operands) in.operands.push_back(&v->type);
  in.attrs = &n.attrs;
  in.body = n.body.get();
  return infer_types(n.op, in);
}

}  // namespace kiln::ir
