// Element expressions: the value of one element of any body value, computed from its operands'
// elements through the op's index map (broadcast, permute, slice, concat, gather ...), or loaded
// from memory, a row buffer or a product tile. Float values are f32, integers i64.
#if KILN_WITH_LLVM

#include <cmath>
#include <limits>

#include "codegen/cpu/emit.h"

namespace kiln::cpu {

using ir::Op;

std::string lib_suffix(DType t);

namespace {

int64_t prod(const ir::Shape& s, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to; ++i) n *= s[i];
  return n;
}

// Dims of s before which the product of dims is `rows` (0 when there is none): where a tile
// stage's row index ends and its column begins.
size_t row_split(const ir::Shape& s, int64_t rows) {
  int64_t p = 1;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (p == rows) return i;
    if (i < s.size()) p *= s[i];
  }
  return size_t(-1);
}

}  // namespace

llvm::Value* RegionEmitter::flat_of(Ix& ix) {
  if (ix.flat) return ix.flat;
  if (ix.row && ix.col) {
    const int64_t nrow = ix.type->numel() / U.mrows;
    ix.flat = B.CreateAdd(B.CreateMul(ix.row, cst(nrow)), ix.col);
  } else {
    ix.flat = linearize(ix.dims, ix.type->shape);
  }
  return ix.flat;
}

const std::vector<llvm::Value*>& RegionEmitter::dims_of(Ix& ix) {
  if (!ix.dims.empty() || ix.type->shape.empty()) return ix.dims;
  const ir::Shape& s = ix.type->shape;
  if (ix.row && ix.col) {
    const size_t k = row_split(s, U.mrows);
    if (k != size_t(-1)) {
      ix.dims = delinearize(ix.row, s, 0, k);
      auto rest = delinearize(ix.col, s, k, s.size());
      ix.dims.insert(ix.dims.end(), rest.begin(), rest.end());
      return ix.dims;
    }
  }
  ix.dims = delinearize(flat_of(ix), s, 0, s.size());
  return ix.dims;
}

// The index of operand k of n for the element `out` of its result.
Ix RegionEmitter::operand_ix(const ir::Node& n, int k, Ix& out) {
  const ir::Value* o = n.operand(k);
  Ix in;
  in.type = &o->type;
  if (o->type.shape == out.type->shape) {
    in = out;
    in.type = &o->type;
    return in;
  }
  // numpy broadcasting, aligned at the trailing dimension.
  const auto& od = dims_of(out);
  const int off = out.type->rank() - o->type.rank();
  for (int i = 0; i < o->type.rank(); ++i)
    in.dims.push_back(o->type.dim(i) == 1 ? cst(0) : od[size_t(i + off)]);
  return in;
}

Result<llvm::Value*> RegionEmitter::felem(const ir::Value* v, Ix ix) {
  KILN_ASSIGN_OR_RETURN(llvm::Value * x, elem(v, std::move(ix)));
  return to_f32(x);
}

Result<llvm::Value*> RegionEmitter::ielem(const ir::Value* v, Ix ix) {
  KILN_ASSIGN_OR_RETURN(llvm::Value * x, elem(v, std::move(ix)));
  return to_i64(x);
}

Result<llvm::Value*> RegionEmitter::elem(const ir::Value* v, Ix ix, bool computing) {
  ix.type = &v->type;
  if (ix.aligned && ix.upos) {
    auto rb = U.rowbuf.find(v->def);
    if (rb != U.rowbuf.end())
      return static_cast<llvm::Value*>(B.CreateLoad(f32, f32_gep(rb->second, ix.upos)));
    if (U.mm && v == U.mm->result())
      for (auto& [shift, tile] : U.tiles)
        if (shift == ix.shift)
          return static_cast<llvm::Value*>(B.CreateLoad(f32, f32_gep(tile, ix.upos)));
  }
  auto h = computing ? P.homes.end() : P.homes.find(v);
  if (h != P.homes.end() && P.recompute.count(v) && !(U.mm == nullptr && P.tile_values.count(v)))
    h = P.homes.end();
  if (h != P.homes.end()) {
    const int64_t row = v->type.rank() ? v->type.dim(-1) : 1;
    return load(home_ptr(h->second), v->type.dtype, row, flat_of(ix));
  }
  std::vector<const void*> key{v, ix.flat, ix.upos, ix.row, ix.col};
  for (llvm::Value* d : ix.dims) key.push_back(d);
  auto m = memo_.find(key);
  if (m != memo_.end()) return m->second;
  KILN_ASSIGN_OR_RETURN(llvm::Value * r, compute(v, ix));
  memo_[key] = r;
  return r;
}

RegionEmitter::RopeAngles& RegionEmitter::rope_angles(const ir::Node& rope) {
  const int64_t nd = rope.attrs.i("n_dims");
  const double base = rope.attrs.f("freq_base"), fs = rope.attrs.f("freq_scale");
  const std::tuple<int64_t, double, double> key{nd, base, fs};
  auto it = rope_angles_.find(key);
  if (it != rope_angles_.end()) return it->second;
  // Allocated and invalidated at the top of the function: no position computed yet.
  llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
  RopeAngles a;
  a.cs = eb.CreateAlloca(f32, cst(std::max<int64_t>(nd, 1)), "rope.cs");
  a.pos = eb.CreateAlloca(i64, nullptr, "rope.pos");
  eb.CreateStore(cst(std::numeric_limits<int64_t>::min()), a.pos);
  // freq_base^(-2/n_dims) in f32 by the C library's powf, as ggml-cpu and the interpreter.
  a.theta_scale = std::pow(float(base), -2.0f / float(nd));
  return rope_angles_.emplace(key, a).first->second;
}

Result<llvm::Value*> RegionEmitter::concat(const ir::Node& n, Ix& ix) {
  const size_t axis = size_t(n.attrs.i("axis"));
  const auto& od = dims_of(ix);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(C, "cat.done", F);
  std::vector<std::pair<llvm::Value*, llvm::BasicBlock*>> in;
  int64_t start = 0;
  const bool is_int = is_integer(n.result()->type.dtype) || n.result()->type.dtype == DType::BOOL;
  for (int k = 0; k < n.num_operands(); ++k) {
    const int64_t size = n.operand(k)->type.dim(int(axis));
    const bool last = k + 1 == n.num_operands();
    llvm::BasicBlock* take = llvm::BasicBlock::Create(C, "cat.take", F);
    llvm::BasicBlock* next = last ? nullptr : llvm::BasicBlock::Create(C, "cat.next", F);
    if (last)
      B.CreateBr(take);
    else
      B.CreateCondBr(B.CreateICmpSLT(od[axis], cst(start + size)), take, next);
    B.SetInsertPoint(take);
    Ix oi;
    oi.dims = od;
    oi.dims[axis] = B.CreateSub(od[axis], cst(start));
    auto saved = memo_;
    KILN_ASSIGN_OR_RETURN(llvm::Value * x, elem(n.operand(k), oi));
    memo_ = std::move(saved);
    x = is_int ? to_i64(x) : to_f32(x);
    in.push_back({x, B.GetInsertBlock()});
    B.CreateBr(done);
    if (next) B.SetInsertPoint(next);
    start += size;
  }
  B.SetInsertPoint(done);
  llvm::PHINode* phi = B.CreatePHI(is_int ? i64 : f32, unsigned(in.size()));
  for (auto& [x, bb] : in) phi->addIncoming(x, bb);
  return static_cast<llvm::Value*>(phi);
}

Result<llvm::Value*> RegionEmitter::compute(const ir::Value* v, Ix& ix) {
  const ir::Node& n = *v->def;
  auto binary = [&](auto f) -> Result<llvm::Value*> {
    KILN_ASSIGN_OR_RETURN(llvm::Value * a, felem(n.operand(0), operand_ix(n, 0, ix)));
    KILN_ASSIGN_OR_RETURN(llvm::Value * b, felem(n.operand(1), operand_ix(n, 1, ix)));
    return f(a, b);
  };
  auto unary = [&](const char* fn) -> Result<llvm::Value*> {
    KILN_ASSIGN_OR_RETURN(llvm::Value * a, felem(n.operand(0), operand_ix(n, 0, ix)));
    return call(fn, f32, {a});
  };
  switch (n.op) {
    case Op::Add:
      return binary([&](auto a, auto b) { return B.CreateFAdd(a, b); });
    case Op::Sub:
      return binary([&](auto a, auto b) { return B.CreateFSub(a, b); });
    case Op::Mul:
      return binary([&](auto a, auto b) { return B.CreateFMul(a, b); });
    case Op::Div:
      return binary([&](auto a, auto b) { return B.CreateFDiv(a, b); });
    case Op::Scale: {
      KILN_ASSIGN_OR_RETURN(llvm::Value * a, felem(n.operand(0), operand_ix(n, 0, ix)));
      return B.CreateFMul(a, cf(float(n.attrs.f("scale"))));
    }
    case Op::Silu:
      return unary("kl_silu");
    case Op::Tanh:
      return unary("kl_tanhf");
    case Op::Exp:
      return unary("kl_expf");
    case Op::Gelu: {
      const std::string& a = n.attrs.s("approx");
      return unary(a == "erf"        ? "kl_gelu_erf"
                   : a == "tanh_f16" ? "kl_gelu_tanh_f16"
                                     : "kl_gelu_tanh");
    }
    case Op::Cast: {
      KILN_ASSIGN_OR_RETURN(llvm::Value * a, elem(n.operand(0), operand_ix(n, 0, ix)));
      const DType to = n.attrs.dtype("to");
      const bool from_int = a->getType()->isIntegerTy();
      switch (to) {
        case DType::F32:
        case DType::F64:
          return to_f32(a);
        case DType::F16:
          return call("kl_f16_to_f32", f32, {call("kl_f32_to_f16", i16, {to_f32(a)})});
        case DType::BF16:
          return call("kl_bf16_to_f32", f32, {call("kl_f32_to_bf16", i16, {to_f32(a)})});
        case DType::BOOL: {
          llvm::Value* nz = from_int ? B.CreateICmpNE(a, cst(0))
                                     : B.CreateFCmpUNE(a, llvm::ConstantFP::get(f32, 0.0));
          return B.CreateZExt(nz, i64);
        }
        default: {
          // Integers: through f32, truncated toward zero and saturated (NaN gives 0).
          llvm::Type* ty = to == DType::I8    ? i8
                           : to == DType::I16 ? i16
                           : to == DType::I32 ? i32
                                              : i64;
          llvm::Value* x = B.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {ty, f32}, {to_f32(a)});
          return B.CreateSExt(x, i64);
        }
      }
    }
    case Op::Reshape: {
      Ix in = ix;
      in.type = &n.operand(0)->type;
      in.flat = flat_of(ix);
      in.dims.clear();
      return elem(n.operand(0), in);
    }
    case Op::View: {
      const int64_t off = n.attrs.i("offset");
      Ix in = ix;
      in.type = &n.operand(0)->type;
      in.flat = off ? B.CreateAdd(flat_of(ix), cst(off)) : flat_of(ix);
      in.dims.clear();
      if (off != 0) {
        // Aligned only in a tile stage with one row (the planner's rule): a column shift.
        if (in.aligned && U.mm && U.mrows == 1) {
          in.shift += off;
          if (in.col) in.col = B.CreateAdd(in.col, cst(off));
        } else {
          in.aligned = false;
          in.row = in.col = nullptr;
        }
      }
      return elem(n.operand(0), in);
    }
    case Op::Slice: {
      const size_t axis = size_t(n.attrs.i("axis"));
      const int64_t start = n.attrs.i("start");
      const ir::Shape& s = n.operand(0)->type.shape;
      Ix in;
      in.type = &n.operand(0)->type;
      in.dims = dims_of(ix);
      in.dims[axis] = B.CreateAdd(in.dims[axis], cst(start));
      if (ix.aligned && U.mm && prod(s, 0, axis) == U.mrows) {
        in.aligned = true;
        in.upos = ix.upos;
        in.shift = ix.shift + start * prod(s, axis + 1, s.size());
        if (ix.row && ix.col && prod(s, 0, axis) == U.mrows) {
          in.row = ix.row;
          in.col = B.CreateAdd(ix.col, cst(start * prod(s, axis + 1, s.size())));
        }
      }
      return elem(n.operand(0), in);
    }
    case Op::Permute: {
      const auto& perm = n.attrs.ints("perm");
      const auto& od = dims_of(ix);
      Ix in;
      in.type = &n.operand(0)->type;
      in.dims.resize(od.size());
      for (size_t i = 0; i < od.size(); ++i) in.dims[size_t(perm[i])] = od[i];
      return elem(n.operand(0), in);
    }
    case Op::Concat:
      return concat(n, ix);
    case Op::GetRows: {
      // y[i..., c] = t[idx[i...], c]; an index outside the table reads its nearest row.
      const auto& od = dims_of(ix);
      Ix ii;
      ii.dims.assign(od.begin(), od.end() - 1);
      KILN_ASSIGN_OR_RETURN(llvm::Value * r, ielem(n.operand(1), ii));
      const int64_t R = n.operand(0)->type.dim(0);
      r = B.CreateSelect(B.CreateICmpSLT(r, cst(0)), cst(0), r);
      r = B.CreateSelect(B.CreateICmpSGE(r, cst(R)), cst(R - 1), r);
      Ix ti;
      ti.dims = {r, od.back()};
      return elem(n.operand(0), ti);
    }
    case Op::AttnMask: {
      const auto& od = dims_of(ix);  // b, t, j
      const int64_t ctx = n.attrs.i("ctx"), window = n.attrs.i("window");
      Ix pi;
      pi.dims = {od[0], od[1]};
      KILN_ASSIGN_OR_RETURN(llvm::Value * p, ielem(n.operand(0), pi));
      llvm::Value* j = od[2];
      llvm::Value* lo = cst(0);
      if (window > 0) {
        lo = B.CreateSub(p, cst(window - 1));
        lo = B.CreateSelect(B.CreateICmpSLT(lo, cst(0)), cst(0), lo);
      }
      llvm::Value* hi = B.CreateSelect(B.CreateICmpSGT(p, cst(ctx - 1)), cst(ctx - 1), p);
      llvm::Value* vis = B.CreateAnd(B.CreateICmpSGE(j, lo), B.CreateICmpSLE(j, hi));
      llvm::Value* pad = B.CreateICmpSLT(p, cst(0));
      vis = B.CreateSelect(pad, B.CreateICmpEQ(j, cst(0)), vis);
      return B.CreateSelect(vis, cf(0.0), cf(-std::numeric_limits<float>::infinity()));
    }
    default:
      return make_error("internal: ", ir::op_name(n.op), " ", v->type.str(),
                        " is neither in memory nor computable per element here");
  }
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
