// The stage loops of a kernel: flat stages (units of elements, row ops per unit, sinks), tile
// stages (product tiles through the microkernels or the library, then the epilogue per tile),
// attention and batched products (library calls).
#if KILN_WITH_LLVM

#include <cstddef>

#include "codegen/cpu/cpu_codegen.h"
#include "codegen/cpu/emit.h"

namespace kiln::cpu {

using ir::Op;
using plan::Sink;
using plan::SinkKind;

std::string lib_suffix(DType t);

namespace {

llvm::Value* min64(llvm::IRBuilder<>& B, llvm::Value* a, llvm::Value* b) {
  return B.CreateSelect(B.CreateICmpSLT(a, b), a, b);
}

uint64_t rbytes(DType t, int64_t n) {
  return row_bytes(t, uint64_t(n)).value_or(0);
}

// The kernel library's rounding of activation rows to mul_mat's act (Q8_1 rounds as Q8_0).
std::string act_function(DType act) {
  switch (act) {
    case DType::F16:
      return "kl_act_f16";
    case DType::BF16:
      return "kl_act_bf16";
    case DType::Q8_K:
      return "kl_act_q8_k";
    default:
      return "kl_act_q8_0";
  }
}

}  // namespace

// Rows of a row op inside the current unit: `nsub` rows of its value starting at flat index
// `start` (unit buffer position ubase; in tile stages row m, column c of the value's rows).
Status RegionEmitter::row_op(const plan::RowOp& r, llvm::Value* start, llvm::Value* ubase,
                             llvm::Value* nsub, llvm::Value* tmp, int64_t tmp_row, llvm::Value* m,
                             llvm::Value* c) {
  const ir::Node& n = *r.node;
  const ir::Value* R = n.result();
  const ir::Shape& shape = R->type.shape;
  const int64_t row = r.row;
  llvm::Value* buf = U.rowbuf.at(&n);
  Status st;
  loop(cst(0), nsub, [&](llvm::Value* q) {
    llvm::Value* off = B.CreateMul(q, cst(row));
    llvm::Value* rstart = B.CreateAdd(start, off);
    llvm::Value* ub = B.CreateAdd(ubase, off);
    llvm::Value* cs = c ? B.CreateAdd(c, off) : nullptr;
    std::vector<llvm::Value*> rowdims =
        delinearize(B.CreateUDiv(rstart, cst(row)), shape, 0, shape.size() - 1);
    llvm::Value* out = f32_gep(buf, ub);
    // Operand k of n over this row, into dst.
    auto fill = [&](int k, llvm::Value* dst) {
      loop(cst(0), cst(row), [&](llvm::Value* e) {
        if (!st.ok()) return;
        Ix ix;
        ix.type = &R->type;
        ix.flat = B.CreateAdd(rstart, e);
        ix.dims = rowdims;
        ix.dims.push_back(e);
        ix.aligned = true;
        ix.upos = B.CreateAdd(ub, e);
        ix.row = m;
        ix.col = cs ? B.CreateAdd(cs, e) : nullptr;
        auto v = felem(n.operand(k), operand_ix(n, k, ix));
        if (!v.ok()) {
          st = v.status();
          return;
        }
        B.CreateStore(*v, f32_gep(dst, e));
      });
    };
    switch (n.op) {
      case Op::RmsNorm:
      case Op::Norm:
        fill(0, tmp);
        call(n.op == Op::RmsNorm ? "kl_rms_norm_row" : "kl_norm_row", void_,
             {tmp, out, cst(row), llvm::ConstantFP::get(f64, n.attrs.f("eps"))});
        break;
      case Op::Softmax: {
        fill(0, tmp);
        llvm::Value* mask = llvm::ConstantPointerNull::get(B.getPtrTy());
        if (n.num_operands() > 1) {
          mask = f32_gep(tmp, cst(tmp_row));
          fill(1, mask);
        }
        call("kl_softmax_row", void_,
             {tmp, mask, out, cst(row), cf(float(n.attrs.f("scale"))),
              cf(float(n.attrs.f("softcap")))});
        break;
      }
      case Op::Rope: {
        fill(0, tmp);
        Ix pi;
        pi.dims.assign(rowdims.begin(), rowdims.end() - 1);
        auto pos = ielem(n.operand(1), pi);
        if (!pos.ok()) {
          st = pos.status();
          return;
        }
        const int64_t nd = n.attrs.i("n_dims");
        RopeAngles& a = rope_angles(n);
        if_then(B.CreateICmpNE(*pos, B.CreateLoad(i64, a.pos)), [&] {
          call("kl_rope_angles", void_,
               {a.cs, cst(nd), *pos, cf(float(n.attrs.f("freq_scale"))), cf(a.theta_scale)});
          B.CreateStore(*pos, a.pos);
        });
        call("kl_rope_row", void_,
             {tmp, out, cst(row), cst(nd), B.getInt32(n.attrs.s("mode") == "neox"), a.cs});
        break;
      }
      case Op::GetRows: {
        Ix ii;
        ii.dims = rowdims;
        auto idx = ielem(n.operand(1), ii);
        auto table = pointer(n.operand(0));
        if (!idx.ok() || !table.ok()) {
          st = idx.ok() ? table.status() : idx.status();
          return;
        }
        const ir::TensorType& tt = n.operand(0)->type;
        llvm::Value* i = *idx;
        i = B.CreateSelect(B.CreateICmpSLT(i, cst(0)), cst(0), i);
        i = B.CreateSelect(B.CreateICmpSGE(i, cst(tt.dim(0))), cst(tt.dim(0) - 1), i);
        if (P.packed_tables.count(&n)) {  // the microkernels' layout (region_plan.h)
          call("kl_dequant_packed_row_" + lib_suffix(tt.dtype), void_, {*table, i, out, cst(row)});
          break;
        }
        llvm::Value* src = byte_gep(*table, B.CreateMul(i, cst(int64_t(rbytes(tt.dtype, row)))));
        call("kl_dequant_row_" + lib_suffix(tt.dtype), void_, {src, out, cst(row)});
        break;
      }
      default:
        st = make_error("internal: ", ir::op_name(n.op), " is not a row op");
    }
  });
  return st;
}

Status RegionEmitter::sink_rows(const Sink& s, llvm::Value* start, llvm::Value* ubase,
                                llvm::Value* nrows, llvm::Value* tmp, llvm::Value* m,
                                llvm::Value* c) {
  const ir::Value* src = s.source;
  const ir::Shape& shape = src->type.shape;
  const int64_t row = s.row;
  Status st;
  loop(cst(0), nrows, [&](llvm::Value* q) {
    llvm::Value* off = B.CreateMul(q, cst(row));
    llvm::Value* rstart = B.CreateAdd(start, off);
    llvm::Value* ub = B.CreateAdd(ubase, off);
    llvm::Value* cs = c ? B.CreateAdd(c, off) : nullptr;
    llvm::Value* ridx = B.CreateUDiv(rstart, cst(row));
    std::vector<llvm::Value*> rowdims = delinearize(ridx, shape, 0, shape.size() - 1);
    loop(cst(0), cst(row), [&](llvm::Value* k) {
      if (!st.ok()) return;
      Ix ix;
      ix.flat = B.CreateAdd(rstart, k);
      ix.dims = rowdims;
      ix.dims.push_back(k);
      ix.aligned = true;
      ix.upos = B.CreateAdd(ub, k);
      ix.row = m;
      ix.col = cs ? B.CreateAdd(cs, k) : nullptr;
      auto v = felem(src, ix);
      if (!v.ok()) {
        st = v.status();
        return;
      }
      B.CreateStore(*v, f32_gep(tmp, k));
    });
    if (!st.ok()) return;
    switch (s.kind) {
      case SinkKind::kQuant: {
        const DType t = s.value->type.dtype;
        llvm::Value* dst =
            byte_gep(home_ptr(s.dest), B.CreateMul(ridx, cst(int64_t(rbytes(t, row)))));
        call("kl_quantize_row_" + lib_suffix(t), void_, {tmp, dst, cst(row)});
        break;
      }
      case SinkKind::kArgmax: {
        llvm::Value* a = call("kl_argmax_row", i32, {tmp, cst(row)});
        store(home_ptr(s.dest), s.value->type.dtype, ridx, B.CreateSExt(a, i64));
        break;
      }
      case SinkKind::kKv: {
        const ir::Node& kv = *s.node;
        const ir::TensorType& cache = kv.operand(0)->type;
        const int64_t S = cache.dim(0), Cn = cache.dim(1), H = cache.dim(2);
        Ix pi, si;
        pi.dims = {rowdims[0], rowdims[1]};
        si.dims = {rowdims[0]};
        auto pos = ielem(kv.operand(2), pi);
        auto seq = ielem(kv.operand(3), si);
        if (!pos.ok() || !seq.ok()) {
          st = pos.ok() ? seq.status() : pos.status();
          return;
        }
        llvm::Value* ok =
            B.CreateAnd(B.CreateAnd(B.CreateICmpSGE(*pos, cst(0)), B.CreateICmpSLT(*pos, cst(Cn))),
                        B.CreateAnd(B.CreateICmpSGE(*seq, cst(0)), B.CreateICmpSLT(*seq, cst(S))));
        auto base = pointer(kv.operand(0));
        if (!base.ok()) {
          st = base.status();
          return;
        }
        if_then(ok, [&] {
          llvm::Value* slot = B.CreateAdd(
              B.CreateMul(B.CreateAdd(B.CreateMul(*seq, cst(Cn)), *pos), cst(H)), rowdims[2]);
          llvm::Value* dst =
              byte_gep(*base, B.CreateMul(slot, cst(int64_t(rbytes(cache.dtype, row)))));
          call("kl_quantize_row_" + lib_suffix(cache.dtype), void_, {tmp, dst, cst(row)});
        });
        break;
      }
      default:
        break;
    }
  });
  return st;
}

Status RegionEmitter::store_elems(const Sink& s, llvm::Value* start, llvm::Value* width,
                                  int64_t unit_len, llvm::Value* ubase, bool whole_rows,
                                  llvm::Value* m, llvm::Value* c) {
  const ir::Value* src = s.source;
  const ir::Shape& shape = src->type.shape;
  const int64_t l = shape.empty() ? 1 : shape.back();
  llvm::Value* dst = home_ptr(s.dest);
  const DType t = s.value->type.dtype;
  Status st;
  auto one = [&](Ix ix) {
    if (!st.ok()) return;
    auto v = elem(src, ix, /*computing=*/true);
    if (!v.ok()) {
      st = v.status();
      return;
    }
    store(dst, t, flat_of(ix), *v);
  };
  if (!shape.empty() && unit_len > 0 && whole_rows && unit_len % l == 0) {
    // Whole rows of the value: the multi-index of a row once, then a vector loop along it.
    loop(cst(0), cst(unit_len / l), [&](llvm::Value* r) {
      llvm::Value* rstart = B.CreateAdd(start, B.CreateMul(r, cst(l)));
      std::vector<llvm::Value*> rowdims =
          delinearize(B.CreateUDiv(rstart, cst(l)), shape, 0, shape.size() - 1);
      llvm::Value* ub = B.CreateAdd(ubase, B.CreateMul(r, cst(l)));
      loop(cst(0), cst(l), [&](llvm::Value* d) {
        Ix ix;
        ix.flat = B.CreateAdd(rstart, d);
        ix.dims = rowdims;
        ix.dims.push_back(d);
        ix.aligned = true;
        ix.upos = B.CreateAdd(ub, d);
        one(ix);
      });
    });
    return st;
  }
  if (!shape.empty() && unit_len > 0 && !whole_rows && unit_len == l) {
    // A chunk of one row.
    std::vector<llvm::Value*> rowdims =
        delinearize(B.CreateUDiv(start, cst(l)), shape, 0, shape.size() - 1);
    llvm::Value* d0 = B.CreateURem(start, cst(l));
    loop(cst(0), width, [&](llvm::Value* j) {
      Ix ix;
      ix.flat = B.CreateAdd(start, j);
      ix.dims = rowdims;
      ix.dims.push_back(B.CreateAdd(d0, j));
      ix.aligned = true;
      ix.upos = B.CreateAdd(ubase, j);
      one(ix);
    });
    return st;
  }
  loop(cst(0), width, [&](llvm::Value* j) {
    Ix ix;
    ix.flat = B.CreateAdd(start, j);
    ix.aligned = true;
    ix.upos = B.CreateAdd(ubase, j);
    ix.row = m;
    ix.col = c ? B.CreateAdd(c, j) : nullptr;
    one(ix);
  });
  return st;
}

Status RegionEmitter::flat_stage(const plan::FlatStage& f) {
  U = Unit{};
  const int64_t L = f.unit, chunks = f.chunks;
  const int64_t cw = (L + chunks - 1) / chunks;
  const int64_t nunits = f.numel / L * chunks;
  llvm::Value *lo = cst(0), *hi = cst(nunits);
  if (f.split) std::tie(lo, hi) = split(cst(nunits));
  llvm::Value* tmp = f.tmp_row ? priv_f32(f.tmp) : nullptr;
  for (const plan::RowOp& r : f.rowops) U.rowbuf[r.node] = priv_f32(r.buf);
  Status st;
  loop(lo, hi, [&](llvm::Value* u) {
    llvm::Value *start, *width;
    if (chunks > 1) {
      llvm::Value* c0 = B.CreateMul(B.CreateURem(u, cst(chunks)), cst(cw));
      start = B.CreateAdd(B.CreateMul(B.CreateUDiv(u, cst(chunks)), cst(L)), c0);
      width = min64(B, cst(cw), B.CreateSub(cst(L), c0));
    } else {
      start = B.CreateMul(u, cst(L));
      width = cst(L);
    }
    for (const plan::RowOp& r : f.rowops) {
      if (!st.ok()) return;
      st = row_op(r, start, cst(0), cst(L / r.row), tmp, f.tmp_row, nullptr, nullptr);
    }
    for (const Sink& s : f.sinks) {
      if (!st.ok()) return;
      if (s.kind == SinkKind::kStore)
        st = store_elems(s, start, width, L, cst(0), chunks == 1, nullptr, nullptr);
      else
        st = sink_rows(s, start, cst(0), cst(L / s.row), tmp, nullptr, nullptr);
    }
  });
  U = Unit{};
  return st;
}

Status RegionEmitter::tile_stage(const plan::TileStage& t) {
  const ir::Node& mm = *t.mm;
  if (t.has_prologue) KILN_RETURN_IF_ERROR(flat_stage(t.prologue));
  llvm::Value* x = nullptr;
  if (t.has_prologue) {
    x = home_ptr(t.prologue.sinks[0].dest);
  } else {
    KILN_ASSIGN_OR_RETURN(x, pointer(mm.operand(0)));
  }
  KILN_ASSIGN_OR_RETURN(llvm::Value * W, pointer(mm.operand(1)));
  const DType wt = mm.operand(1)->type.dtype;
  const int64_t wrb = int64_t(rbytes(wt, t.K));
  llvm::Value* gemm = nullptr;
  llvm::Value* xq = nullptr;
  if (t.microkernel) {
    // args->mk[i] is a `const mk::Kernels*`; quantize every activation row once per thread.
    llvm::Value* kern = B.CreateLoad(ptr, B.CreateGEP(ptr, mk, cst(t.mk_index)));
    llvm::Value* quant = B.CreateLoad(
        ptr, byte_gep(kern, cst(int64_t(offsetof(mk::Kernels, quantize_act_ggml_x86)))));
    gemm =
        B.CreateLoad(ptr, byte_gep(kern, cst(int64_t(t.packed ? offsetof(mk::Kernels, gemm_packed)
                                                              : offsetof(mk::Kernels, gemm)))));
    xq = byte_gep(priv_base, cst(int64_t(t.xq)));
    llvm::FunctionType* qty = llvm::FunctionType::get(void_, {ptr, ptr, i32}, false);
    loop(cst(0), cst(t.M), [&](llvm::Value* m) {
      B.CreateCall(
          qty, quant,
          {f32_gep(x, B.CreateMul(m, cst(t.K))),
           byte_gep(xq, B.CreateMul(m, cst(int64_t(t.xq_row)))), B.getInt32(int32_t(t.K))});
    });
  }
  llvm::FunctionType* gty =
      llvm::FunctionType::get(void_, {ptr, i64, i32, i32, ptr, i64, i32, ptr, i64, i32}, false);
  llvm::FunctionType* pty = llvm::FunctionType::get(
      void_, {ptr, i32, i32, i32, ptr, i64, i32, ptr, i64, i32, i32}, false);
  llvm::Value* wtmp = priv_f32(t.wtmp);
  // mul_mat's act on the library path: every activation row rounded once per thread.
  llvm::Value* xs = nullptr;
  if (t.rounded) {
    llvm::Value* xr = priv_f32(t.xr);
    if (t.sums) xs = priv_f32(t.xs);
    const std::string round = act_function(t.act);
    loop(cst(0), cst(t.M), [&](llvm::Value* m) {
      llvm::Value* row = B.CreateMul(m, cst(t.K));
      call(round, void_, {f32_gep(x, row), f32_gep(xr, row), cst(t.K)});
      if (xs)
        call("kl_act_q8_1_sums", void_,
             {f32_gep(x, row), f32_gep(xs, B.CreateMul(m, cst(t.K / 32))), cst(t.K)});
    });
    x = xr;
  }

  int64_t total = 0;
  for (const plan::TileGroup& g : t.groups) total += g.ntiles;
  auto [lo, hi] = split(cst(total));
  int64_t base = 0;
  Status st;
  for (const plan::TileGroup& g : t.groups) {
    U = Unit{};
    U.mm = &mm;
    U.mrows = t.M;
    for (size_t i = 0; i < g.shifts.size(); ++i)
      U.tiles.push_back({g.shifts[i], priv_f32(g.tbuf + uint64_t(i * t.M * g.tile) * 4)});
    for (const plan::RowOp& r : g.rowops) U.rowbuf[r.node] = priv_f32(r.buf);
    llvm::Value* tmp = g.tmp_row ? priv_f32(g.tmp) : nullptr;
    llvm::Value* glo = B.CreateSelect(B.CreateICmpSGT(lo, cst(base)), lo, cst(base));
    llvm::Value* ghi = min64(B, hi, cst(base + g.ntiles));
    loop(glo, ghi, [&](llvm::Value* tt) {
      llvm::Value* c0 = B.CreateMul(B.CreateSub(tt, cst(base)), cst(g.tile));
      llvm::Value* w = min64(B, cst(g.tile), B.CreateSub(cst(g.ny), c0));
      for (auto& [shift, tb] : U.tiles) {
        llvm::Value* n0 = B.CreateAdd(c0, cst(shift));
        llvm::Value* n1 = B.CreateAdd(n0, w);
        if (t.packed) {
          B.CreateCall(
              pty, gemm,
              {W, B.getInt32(int32_t(t.N)), B.CreateTrunc(n0, i32), B.CreateTrunc(n1, i32), xq,
               cst(int64_t(t.xq_row)), B.getInt32(int32_t(t.M)), f32_gep(tb, B.CreateNeg(n0)),
               cst(g.tile), B.getInt32(int32_t(t.K)), real_tokens()});
        } else if (t.microkernel) {
          // y[m * stride + n] for n in [n0, n1): the tile buffer, shifted back by n0 columns.
          B.CreateCall(gty, gemm,
                       {W, cst(wrb), B.CreateTrunc(n0, i32), B.CreateTrunc(n1, i32), xq,
                        cst(int64_t(t.xq_row)), B.getInt32(int32_t(t.M)),
                        f32_gep(tb, B.CreateNeg(n0)), cst(g.tile), B.getInt32(int32_t(t.K))});
        } else if (xs) {
          call("kl_mm_" + lib_suffix(wt) + "_q8_1", void_,
               {W, cst(wrb), n0, n1, x, cst(t.K), xs, cst(t.M), tb, cst(g.tile), cst(t.K)});
        } else {
          call("kl_mm_" + lib_suffix(wt), void_,
               {W, cst(wrb), n0, n1, x, cst(t.K), cst(t.M), tb, cst(g.tile), cst(t.K), wtmp});
        }
      }
      for (const plan::RowOp& r : g.rowops) {
        const int64_t nrow = r.node->result()->type.numel() / t.M;
        loop(cst(0), cst(t.M), [&](llvm::Value* m) {
          if (!st.ok()) return;
          llvm::Value* cr = B.CreateAdd(c0, cst(r.shift));
          llvm::Value* start = B.CreateAdd(B.CreateMul(m, cst(nrow)), cr);
          st = row_op(r, start, B.CreateMul(m, cst(g.tile)), B.CreateUDiv(w, cst(r.row)), tmp,
                      g.tmp_row, m, cr);
        });
      }
      for (const Sink& s : g.sinks) {
        loop(cst(0), cst(t.M), [&](llvm::Value* m) {
          if (!st.ok()) return;
          llvm::Value* start = B.CreateAdd(B.CreateMul(m, cst(g.ny)), c0);
          llvm::Value* ub = B.CreateMul(m, cst(g.tile));
          if (s.kind == SinkKind::kStore)
            st = store_elems(s, start, w, -1, ub, false, m, c0);
          else
            st = sink_rows(s, start, ub, B.CreateUDiv(w, cst(s.row)), tmp, m, c0);
        });
      }
    });
    base += g.ntiles;
    U = Unit{};
    KILN_RETURN_IF_ERROR(st);
  }
  return st;
}

Status RegionEmitter::attention_stage(const plan::AttentionStage& a) {
  const ir::Node& n = *a.node;
  std::vector<llvm::Value*> p;
  for (int i = 0; i < 5; ++i) {
    KILN_ASSIGN_OR_RETURN(llvm::Value * v, pointer(n.operand(i)));
    p.push_back(v);
  }
  for (int i = 3; i < 5; ++i)
    if (n.operand(i)->type.dtype != DType::I32)
      return make_error("attention: ", i == 3 ? "pos" : "seq", " must be i32");
  KILN_ASSIGN_OR_RETURN(llvm::Value * y, pointer(n.result()));
  const ir::TensorType& q = n.operand(0)->type;
  const ir::TensorType& kc = n.operand(1)->type;
  const ir::TensorType& vc = n.operand(2)->type;
  llvm::Value* shared = a.shared_floats ? byte_gep(shared_base, cst(int64_t(a.shared)))
                                        : llvm::ConstantPointerNull::get(B.getPtrTy());
  call("kl_attention", void_,
       {p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        y,
        cst(q.dim(0)),
        cst(q.dim(1)),
        cst(q.dim(2)),
        cst(q.dim(3)),
        cst(kc.dim(0)),
        cst(kc.dim(1)),
        cst(kc.dim(2)),
        cst(vc.dim(3)),
        B.getInt32(int32_t(dtype_info(kc.dtype).ggml_id)),
        B.getInt32(int32_t(dtype_info(vc.dtype).ggml_id)),
        cf(float(n.attrs.f("scale"))),
        cf(float(n.attrs.f("softcap"))),
        cst(n.attrs.i("window")),
        B.getInt32(n.attrs.dtype("act") == DType::F16),
        shared,
        priv_f32(a.priv),
        B.CreateTrunc(ith, i32),
        B.CreateTrunc(nth, i32),
        barrier_fn,
        barrier_ctx});
  return Status::Ok();
}

// y[b..., m, n] = sum_k x[b..., m, k] w[b' ..., n, k] with b' = b / (x_d / w_d) per batch dim.
Status RegionEmitter::batched_stage(const plan::BatchedStage& bs) {
  const ir::Node& n = *bs.node;
  const ir::TensorType& xt = n.operand(0)->type;
  const ir::TensorType& wt = n.operand(1)->type;
  if (xt.dtype != DType::F32) return make_error("mul_mat: a batched product needs f32 activations");
  KILN_ASSIGN_OR_RETURN(llvm::Value * x, pointer(n.operand(0)));
  KILN_ASSIGN_OR_RETURN(llvm::Value * w, pointer(n.operand(1)));
  KILN_ASSIGN_OR_RETURN(llvm::Value * y, pointer(n.result()));
  const int64_t K = xt.dim(-1), M = xt.dim(-2), N = wt.dim(-2);
  const int nb = xt.rank() - 2;
  ir::Shape xb(xt.shape.begin(), xt.shape.end() - 2), wb(wt.shape.begin(), wt.shape.end() - 2);
  std::vector<int64_t> wstride = ir::strides_of(wb);
  int64_t batches = 1;
  for (int64_t d : xb) batches *= d;
  const int64_t tile = 32, ntiles = (N + tile - 1) / tile;
  const int64_t wrb = int64_t(rbytes(wt.dtype, K));
  auto [lo, hi] = split(cst(batches * ntiles));
  loop(lo, hi, [&](llvm::Value* u) {
    llvm::Value* bi = B.CreateUDiv(u, cst(ntiles));
    llvm::Value* n0 = B.CreateMul(B.CreateURem(u, cst(ntiles)), cst(tile));
    llvm::Value* n1 = min64(B, B.CreateAdd(n0, cst(tile)), cst(N));
    std::vector<llvm::Value*> d = delinearize(bi, xb, 0, size_t(nb));
    llvm::Value* wbi = cst(0);
    for (int k = 0; k < nb; ++k)
      wbi = B.CreateAdd(wbi,
                        B.CreateMul(B.CreateUDiv(d[size_t(k)], cst(xb[size_t(k)] / wb[size_t(k)])),
                                    cst(wstride[size_t(k)])));
    llvm::Value* wp = byte_gep(w, B.CreateMul(wbi, cst(N * wrb)));
    llvm::Value* xp = f32_gep(x, B.CreateMul(bi, cst(M * K)));
    llvm::Value* yp = f32_gep(y, B.CreateAdd(B.CreateMul(bi, cst(M * N)), n0));
    const DType act = n.attrs.dtype("act");
    const bool sums = act == DType::Q8_1 && (wt.dtype == DType::Q4_1 || wt.dtype == DType::Q5_1);
    if (act != DType::F32) {
      llvm::Value* xr = priv_f32(bs.xr);
      call(act_function(act), void_, {xp, xr, cst(M * K)});
      if (sums) call("kl_act_q8_1_sums", void_, {xp, priv_f32(bs.xs), cst(M * K)});
      xp = xr;
    }
    if (sums)
      call("kl_mm_" + lib_suffix(wt.dtype) + "_q8_1", void_,
           {wp, cst(wrb), n0, n1, xp, cst(K), priv_f32(bs.xs), cst(M), yp, cst(N), cst(K)});
    else
      call("kl_mm_" + lib_suffix(wt.dtype), void_,
           {wp, cst(wrb), n0, n1, xp, cst(K), cst(M), yp, cst(N), cst(K), priv_f32(bs.wtmp)});
  });
  return Status::Ok();
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
