// Contraction kernels: one mul_mat with a 2-D weight, its prologue (what makes x: a norm, a
// residual, a gather) and its epilogue (slices, bias, residual, activation, gating, rope, head
// norms, KV-cache writes, and the fused argmax of the logits).
//
// Block (blockIdx.x = work item, blockIdx.y = activation-row tile of MT rows):
//  1. the prologue's stats, then x's rows [m0, m0 + MT) into shared memory, quantized per `act`
//     (int8 + scales for the integer dot products, or floats rounded as `act` says);
//  2. the product at the tile's columns: for each shift s (a slice of the merged product the
//     epilogue reads) the weight rows s + e0 .. s + e0 + TW, a warp per RW rows, lanes over
//     16-byte units of the packed row, results into ys[shift][row][column];
//  3. the epilogue's stats over the tile (head norms), then every sink at (m, e0 .. e0 + TW).
#include <algorithm>
#include <numeric>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/weight_layout.h"
#include "ir/printer.h"
#include "passes/graph_util.h"

namespace kiln::cuda::detail {
namespace {

struct Sink {
  const ir::Node* store = nullptr;
  const ir::Value* value = nullptr;
  int result = -1;
  int64_t L = 0;
};

// How x is held for the dot products.
enum class ActPath { kInt, kFloat };

struct Product {
  const ir::Node* mm = nullptr;
  DType wt = DType::F32, act = DType::F32;
  int64_t K = 0, N = 0, M = 0;
  int w_arg = -1;
  uint64_t row_bytes = 0;
  ActPath path = ActPath::kFloat;
  std::string type;   // "q8_0", ...
  int64_t units = 0;  // per row (int path)
};

bool int_path(DType w, DType act) {
  switch (w) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
      return act == DType::Q8_0 || act == DType::Q8_1;
    case DType::Q4_K:
    case DType::Q6_K:
      return act == DType::Q8_K;
    default:
      return false;
  }
}

int64_t units_per_row(DType w, int64_t K) {
  switch (w) {
    case DType::Q8_0:
      return K / 16;
    case DType::Q4_K:
      return K / 64;
    default:
      return K / 32;  // legacy 4/5-bit blocks, Q6_K eighths of a super-block
  }
}

std::string unit_type(DType w) {
  switch (w) {
    case DType::Q8_0:
      return "KlU8";
    case DType::Q4_K:
      return "KlUK4";
    case DType::Q6_K:
      return "KlUK6";
    default:
      return "KlU4";
  }
}

// The legacy-quant products ggml-cpu computes with its x86 block dot products (the pairs the
// reference interpreter reproduces in ggml's order, runtime/interp_matmul.cpp): these kernels sum
// in the same order, so their results are bit-identical to the interpreter's and llama.cpp's.
bool ggml_lanes(DType w, DType act) {
  return (act == DType::Q8_1 && (w == DType::Q4_1 || w == DType::Q5_1)) ||
         (act == DType::Q8_0 && (w == DType::Q4_0 || w == DType::Q5_0 || w == DType::Q8_0));
}

// Per legacy type: the prelude function giving lane l's weight word, the quant offset undone by
// subtracting offset * sum(x quants), and the byte offsets of the scale and min planes in a
// packed row (weight_layout.cpp; nb blocks of 32).
struct LaneType {
  const char* word;
  int offset;
  std::string d, m;
};
LaneType lane_type(DType w, int64_t K) {
  const int64_t nb = K / 32;
  switch (w) {
    case DType::Q8_0:
      return {"kl_lane_q8_0", 0, num(K), ""};
    case DType::Q4_0:
      return {"kl_lane_q4", 8, num(K / 2), ""};
    case DType::Q4_1:
      return {"kl_lane_q4", 0, num(K / 2), num(K / 2 + 2 * nb)};
    case DType::Q5_0:
      return {"kl_lane_q5", 16, num(K / 2 + 4 * nb), ""};
    default:  // Q5_1
      return {"kl_lane_q5", 0, num(K / 2 + 4 * nb), num(K / 2 + 6 * nb)};
  }
}

int64_t lcm(int64_t a, int64_t b) {
  return a / std::gcd(a, b) * b;
}

// Alignment the epilogue of a sink needs: rows of its reductions and heads of its ropes.
void alignment(const ir::Value* v, const ir::Value* y, int64_t& a,
               std::set<const ir::Value*>& seen) {
  if (!seen.insert(v).second || v == y || !v->def) return;
  const ir::Node& n = *v->def;
  if (n.has(ir::kReduction)) a = lcm(a, n.operand(0)->type.dim(-1));
  // A rope element reads its pair partner from the tile: the next/previous column in "normal"
  // mode (pairs of 2), the other half of the head in "neox" mode.
  if (n.op == ir::Op::Rope)
    a = lcm(a, n.attrs.s("mode") == "neox" ? n.operand(0)->type.dim(-1) : 2);
  for (const ir::Value* o : n.operands)
    if (depends_on(o, y)) alignment(o, y, a, seen);
}

Status emit_sink(KernelCtx& k, ElemEmitter& em, Code& out, const Sink& s, const Idx& idx) {
  KILN_ASSIGN_OR_RETURN(std::string x, em.value(s.value, idx));
  if (!s.store) {
    out.line("r" + num(s.result) + "[" + idx.flat +
             "] = " + store_expr(k.region->result(s.result)->type.dtype, x) + ";");
    return Status::Ok();
  }
  const ir::Node& n = *s.store;
  uint64_t off = 0;
  const int ci = arg_root(n.operand(0), &off);
  if (ci < 0 || off != 0) return make_error("kv_write into a cache that is not a kernel operand");
  const ir::TensorType& ct = n.operand(0)->type;
  const DType cd = ct.dtype;
  if (cd != DType::F16 && cd != DType::F32 && cd != DType::BF16)
    return make_error("a ", dtype_name(cd), " KV cache is not supported on CUDA (f16, bf16, f32)");
  const int64_t S = ct.dim(0), C = ct.dim(1), HD = ct.dim(2) * ct.dim(3), T = s.value->type.dim(1);
  const std::string f = "(" + idx.flat + ")";
  KILN_ASSIGN_OR_RETURN(std::string p, em.value(n.operand(2), Idx::plain(f + " / " + num(HD))));
  KILN_ASSIGN_OR_RETURN(std::string q, em.value(n.operand(3), Idx::plain(f + " / " + num(T * HD))));
  out.line("if (" + p + " >= 0 && " + p + " < " + num(C) + " && " + q + " >= 0 && " + q + " < " +
           num(S) + ") a" + num(ci) + "[((u64)" + q + " * " + num(C) + " + " + p + ") * " +
           num(HD) + " + " + f + " % " + num(HD) + "] = " + store_expr(cd, x) + ";");
  return Status::Ok();
}

struct Group {
  int64_t L = 0, align = 1, tw = 0, tiles = 0;
  std::vector<Sink> sinks;
  std::vector<int64_t> shifts;
  KernelCtx ctx;
  bool argmax = false;  // this group's sink is the fused-argmax output
  int argmax_sink = -1;
};

std::string shift_expr(const std::vector<int64_t>& shifts, const std::string& slot) {
  std::string e = num(shifts.back());
  for (size_t i = shifts.size() - 1; i-- > 0;)
    e = "(" + slot + " == " + num(int64_t(i)) + " ? " + num(shifts[i]) + " : " + e + ")";
  return e;
}

// The start of a product loop over a tile's weight rows: a warp takes `per` rows per step (RW
// per lane group), row i of step rb being `row` (an expression of rb, r and the lane); wr[r] is
// its packed weight row (row 0 when out of range: ok[r] false), and each accumulator in `accs`
// starts at 0 for every activation row.
void open_row_step(Code& out, const Product& P, const std::vector<int64_t>& shifts, int64_t tw,
                   int64_t L, int64_t RW, int64_t per, const std::string& row,
                   const std::vector<std::string>& accs) {
  const int64_t rows = int64_t(shifts.size()) * tw;
  out.open("for (int rb = warp * " + num(per) + "; rb < " + num(rows) +
           "; rb += " + num(kWarps * per) + ")");
  std::string decl, zero;
  for (const std::string& a : accs) {
    decl += (decl.empty() ? "" : ", ") + a + "[" + num(RW) + "][MT]";
    zero += " " + a + "[r][ml] = 0.0f;";
  }
  out.line("float " + decl + ";");
  out.line("const u8* wr[" + num(RW) + "];");
  out.line("bool ok[" + num(RW) + "];");
  out.line("#pragma unroll");
  out.open("for (int r = 0; r < " + num(RW) + "; ++r)");
  out.line("const int i = " + row + ", slot = i / TW, j = i % TW;");
  out.line("ok[r] = i < " + num(rows) + " && e0 + j < " + num(L) + ";");
  out.line("wr[r] = W + (u64)(ok[r] ? " + shift_expr(shifts, "slot") + " + e0 + j : 0) * " +
           num(int64_t(P.row_bytes)) + "ull;");
  out.line("#pragma unroll");
  out.line("for (int ml = 0; ml < MT; ++ml) {" + zero + " }");
  out.close();
}

// The end of a product loop: `value` (of acc[r][ml], ...; computed by every lane, as it may
// shuffle) into the tile ys by the lanes where `writer` holds; closes the step loop.
void close_row_step(Code& out, int64_t rows, int64_t RW, const std::string& row,
                    const std::string& value, const std::string& writer) {
  out.line("#pragma unroll");
  out.open("for (int r = 0; r < " + num(RW) + "; ++r)");
  out.line("const int i = " + row + ", slot = i / TW, j = i % TW;");
  out.line("#pragma unroll");
  out.open("for (int ml = 0; ml < MT; ++ml)");
  out.line("const float s = " + value + ";");
  out.line("if (" + writer + " && i < " + num(rows) + ") ys[(slot * MT + ml) * TW + j] = s;");
  out.close();
  out.close();
  out.close();
}

// The products of one tile in ggml's lane order (ggml_lanes): lane group gg = lane / 8 of a warp
// takes weight rows rb + 4r + gg, and lane gl = lane % 8 accumulates ggml's lane gl of each:
// acc = fmaf(d_w * d_x, isum, acc) block after block, in order, then kl_hsum8 over the group; the
// min terms of Q4_1/Q5_1 (m_w * s_x) in a chain of their own, added last.
void emit_lane_products(Code& out, const Product& P, const std::vector<int64_t>& shifts, int64_t tw,
                        int64_t L, int64_t RW) {
  const LaneType lt = lane_type(P.wt, P.K);
  const bool min = !lt.m.empty();
  const int64_t rows = int64_t(shifts.size()) * tw, nb = P.K / 32;
  out.line("const int gl = lane & 7, gg = lane >> 3;");
  const std::string row = "rb + 4 * r + gg";
  open_row_step(out, P, shifts, tw, L, RW, 4 * RW, row,
                min ? std::vector<std::string>{"acc", "mac"} : std::vector<std::string>{"acc"});
  out.line("#pragma unroll 4");
  out.open("for (int b = 0; b < " + num(nb) + "; ++b)");
  out.line("#pragma unroll");
  out.open("for (int r = 0; r < " + num(RW) + "; ++r)");
  out.open("if (ok[r])");
  out.line("const int w = " + std::string(lt.word) + "(wr[r], K, b, gl);");
  out.line("const float dw = kl_h2f(kl_ld2(wr[r] + " + lt.d + " + 2 * b));");
  if (min) out.line("const float mw = kl_h2f(kl_ld2(wr[r] + " + lt.m + " + 2 * b));");
  out.line("#pragma unroll");
  out.open("for (int ml = 0; ml < MT; ++ml)");
  out.line("const int xw = *(const int*)(xq + ml * K + 32 * b + 4 * gl);");
  out.line("const int is = kl_dp4a(w, xw, 0)" +
           (lt.offset ? " - " + num(lt.offset) + " * kl_dp4a(0x01010101, xw, 0)" : std::string()) +
           ";");
  out.line("acc[r][ml] = fmaf(dw * xd[ml * " + num(nb) + " + b], (float)is, acc[r][ml]);");
  if (min) out.line("mac[r][ml] = fmaf(mw, xs[ml * " + num(nb) + " + b], mac[r][ml]);");
  out.close();
  out.close();
  out.close();
  out.close();
  close_row_step(out, rows, RW, row,
                 "kl_hsum8(acc[r][ml])" + std::string(min ? " + mac[r][ml]" : ""), "gl == 0");
}

// Q4_K and Q6_K products in the order of the ggml kernel llama.cpp picks for them (the
// interpreter's mul_mat_ggml_kquant): the integer parts of every unit are exact, so lanes may
// compute and add them in any order; the float folds are then replayed in ggml's order by every
// lane of the warp alike (the values of a round gathered with shuffles), so one lane's result is
// the row's. ggml chooses by the batch's real token count T (the rows of a prefill bucket that
// are not padding): prefill kernels read it at run time (KernelSpec::token_count); decode's is 1.
//  - Q4_K: rows below T - T % 4 fold per pair of sub-blocks (gemm 4x8x8), the others once per
//    super-block (gemv): acc += sum * (d_w d_x), acc_min += mins * (dmin_w d_x), acc - acc_min.
//  - Q6_K, T < 8: eight ggml lanes per super-block, each an exact integer, fused into its own
//    f32 accumulator with d_x d_w, then hsum_float_8. T >= 8: the super-block's exact sum S,
//    acc = fmaf(S * d_w, d_x, acc).
void emit_kquant_products(Code& out, const Product& P, const std::vector<int64_t>& shifts,
                          int64_t tw, int64_t L, int64_t RW) {
  // T: the real token count (ntok, set up by build_contraction when M > 1).
  const std::string T = P.M > 1 ? "ntok" : "1";
  const bool q4 = P.wt == DType::Q4_K;
  const int64_t rows = int64_t(shifts.size()) * tw, units = P.units, nsb = P.K / 256;
  const int64_t per_sb = q4 ? 4 : 8;  // units per super-block
  open_row_step(out, P, shifts, tw, L, RW, RW, "rb + r", {"acc", "acc2"});
  out.open("for (int u0 = 0; u0 < " + num(units) + "; u0 += 32)");
  out.line("const int u = u0 + lane, sb0 = u0 / " + num(per_sb) + ";");
  out.line("#pragma unroll");
  out.open("for (int r = 0; r < " + num(RW) + "; ++r)");
  out.line("const bool have = ok[r] && u < " + num(units) + ";");
  if (q4) {
    out.line("KlUK4 w;");
    out.line("float dw = 0.0f, dmw = 0.0f;");
    out.open("if (have)");
    out.line("w = kl_load_q4_k(wr[r], K, u);");
    out.line("dw = kl_h2f((u16)(w.dm & 0xffff));");
    out.line("dmw = kl_h2f((u16)(w.dm >> 16));");
    out.close();
  } else {
    out.line("KlUK6 w;");
    out.line("if (have) w = kl_load_q6_k(wr[r], K, u);");
  }
  out.line("#pragma unroll");
  out.open("for (int ml = 0; ml < MT; ++ml)");
  if (q4) {
    out.line("int dot = 0, mins = 0;");
    out.line("if (have) kl_uparts_q4_k(w, xq + ml * K, xsum + ml * " + num(P.K / 32) +
             ", u, &dot, &mins);");
    out.line("const bool gemm = m0 + ml < " + T + " - " + T + " % 4;");
    // One fold per step t: the integer sums of lane `src`, scaled by its super-block's d_x.
    auto fold = [&](const std::string& steps, const std::string& src, const std::string& sb) {
      out.open("for (int t = 0; " + steps + "; ++t)");
      out.line("const int s = kl_shfl_idx_i(dot, " + src + "), mn = kl_shfl_idx_i(mins, " + src +
               ");");
      out.line("const float xdv = xd[ml * " + num(nsb) + " + " + sb + "];");
      out.line("const float d = kl_shfl_idx(dw, " + src + ") * xdv, dm = kl_shfl_idx(dmw, " + src +
               ") * xdv;");
      out.line("acc[r][ml] = fmaf((float)s, d, acc[r][ml]);");
      out.line("acc2[r][ml] = fmaf((float)mn, dm, acc2[r][ml]);");
      out.close();
    };
    out.open("if (gemm)");  // fold per unit (pair of sub-blocks), in unit order
    fold("t < 32 && u0 + t < " + num(units), "t", "(u0 + t) / 4");
    out.close();
    out.open("else");  // fold per super-block
    out.line("dot += kl_shfl_xor_i(dot, 1);");
    out.line("dot += kl_shfl_xor_i(dot, 2);");
    out.line("mins += kl_shfl_xor_i(mins, 1);");
    out.line("mins += kl_shfl_xor_i(mins, 2);");
    fold("t < 8 && sb0 + t < " + num(nsb), "4 * t", "sb0 + t");
    out.close();
  } else {
    out.line("int l0 = 0, l1 = 0, whole = 0;");
    out.line("if (have) kl_uparts_q6_k(w, xq + ml * K, u, &l0, &l1, &whole);");
    out.line("const u8* wrow = wr[r];");
    out.open("if (" + T + " < 8)");
    {
      // ggml lane gl = lane & 7 of super-block sb0 + t is unit 8t + gl / 2 (first half) plus
      // unit 8t + 4 + gl / 2 (second half), minus 32 x the scaled sums of its two 16-groups.
      out.line("l0 += kl_shfl_xor_i(l0, 4);");
      out.line("l1 += kl_shfl_xor_i(l1, 4);");
      out.line("const int gl = lane & 7;");
      out.open("for (int t = 0; t < 4 && sb0 + t < " + num(nsb) + "; ++t)");
      out.line("const int a0 = kl_shfl_idx_i(l0, 8 * t + (gl >> 1));");
      out.line("const int a1 = kl_shfl_idx_i(l1, 8 * t + (gl >> 1));");
      out.line("const int sb = sb0 + t;");
      out.line("const i8* sc = (const i8*)(wrow + " + num(3 * P.K / 4) + " + 16 * sb);");
      out.line("const int* bs = xb16 + ml * " + num(P.K / 16) + " + 16 * sb;");
      out.line(
          "const int v = ((gl & 1) ? a1 : a0) - 32 * (bs[2 * gl] * (int)sc[2 * gl] + bs[2 * gl + "
          "1] "
          "* (int)sc[2 * gl + 1]);");
      out.line("const float d = xd[ml * " + num(nsb) + " + sb] * kl_h2f(kl_ld2(wrow + " +
               num(3 * P.K / 4 + P.K / 16) + " + 2 * sb));");
      out.line("if (ok[r]) acc[r][ml] = fmaf(d, (float)v, acc[r][ml]);");
      out.close();
    }
    out.close();
    out.open("else");
    {
      out.line("whole += kl_shfl_xor_i(whole, 1);");
      out.line("whole += kl_shfl_xor_i(whole, 2);");
      out.line("whole += kl_shfl_xor_i(whole, 4);");
      out.open("for (int t = 0; t < 4 && sb0 + t < " + num(nsb) + "; ++t)");
      out.line("const int S = kl_shfl_idx_i(whole, 8 * t), sb = sb0 + t;");
      out.line("const float dw = kl_h2f(kl_ld2(wrow + " + num(3 * P.K / 4 + P.K / 16) +
               " + 2 * sb));");
      out.line("if (ok[r]) acc[r][ml] = fmaf((float)S * dw, xd[ml * " + num(nsb) +
               " + sb], acc[r][ml]);");
      out.close();
    }
    out.close();
  }
  out.close();
  out.close();
  out.close();
  // Q6_K: every lane holds the tiled sum; the vector lanes are reduced.
  close_row_step(out, rows, RW, "rb + r",
                 q4 ? "acc[r][ml] - acc2[r][ml]" : T + " < 8 ? kl_hsum8(acc[r][ml]) : acc[r][ml]",
                 "lane == 0");
}
}  // namespace

Status build_contraction(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out,
                         const Options& o) {
  // ---- the product ----
  Product P;
  for (const auto& n : k.body->nodes())
    if (n->op == ir::Op::MulMat) {
      if (P.mm) return make_error("two mul_mats in one region");
      P.mm = n.get();
    }
  const ir::Value* x = P.mm->operand(0);
  const ir::Value* w = P.mm->operand(1);
  const ir::Value* y = P.mm->result();
  if (w->type.rank() != 2)
    return make_error("mul_mat with a batched weight (", w->type.str(),
                      ") is not supported on CUDA; ", "run without decompose-attention");
  uint64_t woff = 0;
  P.w_arg = arg_root(w, &woff);
  if (P.w_arg < 0 || woff != 0) return make_error("the weight of mul_mat is not a kernel operand");
  P.wt = w->type.dtype;
  P.act = P.mm->attrs.dtype("act");
  P.K = x->type.dim(-1);
  P.N = w->type.dim(0);
  P.M = numel(x) / P.K;
  if (!supported_weight_type(P.wt))
    return make_error("weight type ", dtype_name(P.wt), " is not supported on CUDA");
  if (is_quantized(P.wt)) {
    KILN_ASSIGN_OR_RETURN(PackedRow pr, packed_row(P.wt, P.K));
    P.row_bytes = pr.bytes;
  } else {
    P.row_bytes = uint64_t(P.K) * dtype_info(P.wt).block_bytes;
  }
  P.type = std::string(dtype_name(P.wt));
  P.path = int_path(P.wt, P.act) ? ActPath::kInt : ActPath::kFloat;
  P.units = P.path == ActPath::kInt ? units_per_row(P.wt, P.K) : (P.K + 31) / 32;
  const bool q8k = P.act == DType::Q8_K;
  if ((P.act == DType::Q8_0 || P.act == DType::Q8_1) && P.K % 32)
    return make_error("act ", dtype_name(P.act), " needs K a multiple of 32, K = ", P.K);
  if (q8k && P.K % 256) return make_error("act q8_k needs K a multiple of 256, K = ", P.K);
  if (is_quantized(P.wt) && P.path == ActPath::kFloat && P.K % 32)
    return make_error("K = ", P.K, " is not a whole number of blocks");

  // Rows per block: decode products hold one row; prefill tiles of up to 16 rows, within the
  // 48 KB of static shared memory.
  int64_t MT = 1;
  const int64_t xbytes_per_row = P.path == ActPath::kInt ? P.K + P.K / 32 * 16 : P.K * 4;
  while (MT * 2 <= std::min<int64_t>(P.M, 16) && 2 * MT * xbytes_per_row <= 24 * 1024) MT *= 2;
  if (P.M > 1 && MT == 1 && xbytes_per_row > 40 * 1024)
    return make_error("K = ", P.K, " is too long for the shared-memory activation tile");
  // Weight rows a warp keeps in flight; decode (MT = 1) sizes it below from the tile so every warp
  // of the block has rows and each lane issues several independent 16-byte loads at once.
  int64_t RW = std::max<int64_t>(1, 4 / MT);

  // ---- sinks, in the prologue (not reading the product) and the epilogue ----
  const ir::Node* yn = find_op(*k.body, ir::Op::Yield);
  std::vector<Sink> pro, epi;
  for (int i = 0; i < yn->num_operands(); ++i) {
    const ir::Value* v = yn->operand(i);
    if (yield_is_alias(v)) continue;
    if (v->def && v->def->op == ir::Op::Argmax)
      return make_error("argmax inside a contraction kernel is not supported on CUDA");
    Sink s{nullptr, v, i, 0};
    (depends_on(v, y) ? epi : pro).push_back(s);
  }
  for (const auto& n : k.body->nodes())
    if (n->op == ir::Op::KvWrite) {
      Sink s{n.get(), n->operand(1), -1, 0};
      (depends_on(s.value, y) ? epi : pro).push_back(s);
    }
  if (epi.empty()) return make_error("the product of mul_mat is not used");

  // ---- groups of epilogue sinks by elements per row ----
  std::vector<Group> groups;
  for (Sink& s : epi) {
    if (numel(s.value) % P.M)
      return make_error("an epilogue value of ", numel(s.value), " elements does not split into ",
                        P.M, " rows");
    s.L = numel(s.value) / P.M;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.L == s.L; });
    if (g == groups.end()) {
      groups.emplace_back();
      g = groups.end() - 1;
      g->L = s.L;
    }
    std::set<const ir::Value*> seen;
    alignment(s.value, y, g->align, seen);
    g->sinks.push_back(s);
  }
  // Weight rows per block. Decode is latency-bound, not bandwidth-bound: it wants enough blocks to
  // cover the 132 SMs of an H200 twice (~264), from one row per warp (8) up to 8 rows per warp
  // (64, large products like the logits, where each block's prologue is amortized over more rows).
  int64_t target = MT <= 2 ? 16 : 32;
  if (MT == 1) {
    target = kWarps;
    while (target < 8 * kWarps && P.N / (2 * target) >= 264) target *= 2;
  }
  for (Group& g : groups) {
    // Pass 1 (tile = alignment) finds the shifts; then the tile is sized; pass 2 finds stats.
    for (int pass = 0; pass < 2; ++pass) {
      g.ctx = k;
      g.ctx.analysis = true;
      g.ctx.mm = P.mm;
      g.ctx.N = P.N;
      g.ctx.shifts.clear();
      g.ctx.stats.clear();
      g.ctx.space = Space{true, P.M, MT, pass == 0 ? g.align : g.tw};
      Code scratch;
      for (const Sink& s : g.sinks) {
        ElemEmitter em(g.ctx, scratch);
        KILN_RETURN_IF_ERROR(emit_sink(g.ctx, em, scratch, s, Idx::affine("m", "E", g.L, 0)));
      }
      KILN_RETURN_IF_ERROR(close_stats(g.ctx));
      if (pass == 0) {
        const int64_t ns = int64_t(g.ctx.shifts.size());
        int64_t tw = std::max<int64_t>(1, target / ns) / g.align * g.align;
        tw = std::max(tw, g.align);
        const int64_t cap = (g.L + g.align - 1) / g.align * g.align;
        g.tw = std::min(tw, cap);
        g.tiles = (g.L + g.tw - 1) / g.tw;
      }
    }
    g.shifts = g.ctx.shifts;
    g.ctx.analysis = false;
    for (int64_t s : g.shifts)
      if (s < 0 || s + g.L > P.N)
        return make_error("the epilogue reads columns [", s, ", ", s + g.L, ") of a product of ",
                          P.N);
  }

  // ggml's lane order: a warp holds 4 weight rows at a time, 8 lanes each (one per ggml lane).
  const bool lanes = P.path == ActPath::kInt && ggml_lanes(P.wt, P.act);
  const bool kquant = P.path == ActPath::kInt && (P.wt == DType::Q4_K || P.wt == DType::Q6_K);
  const int64_t rows_per_warp = lanes ? 4 : 1;
  if (MT == 1) {
    int64_t rows_max = 0;
    for (const Group& g : groups) rows_max = std::max(rows_max, int64_t(g.shifts.size()) * g.tw);
    const int64_t per = kWarps * rows_per_warp;
    RW = std::clamp<int64_t>((rows_max + per - 1) / per, 1, lanes ? 4 : 8);
  }

  // ---- the kernel ----
  int64_t ys_floats = 0, total_tiles = 0;
  for (const Group& g : groups) {
    ys_floats = std::max(ys_floats, int64_t(g.shifts.size()) * MT * g.tw);
    total_tiles += g.tiles;
  }
  out.open("extern \"C\" __global__ void __launch_bounds__(" + num(kThreads) + ") " + entry +
           "(const KilnArgs args)");
  {
    // Arguments.
    const ir::Node& r = *k.region;
    for (int i = 0; i < r.num_operands(); ++i) {
      const DType t = r.operand(i)->type.dtype;
      bool writes = false;
      for (const auto& n : k.body->nodes())
        if (n->op == ir::Op::KvWrite && arg_root(n->operand(0)) == i) writes = true;
      const std::string ty = is_quantized(t) ? "u8" : c_type(t);
      out.line((writes ? "" : "const ") + ty + "* __restrict__ a" + num(i) + " = (" +
               (writes ? "" : "const ") + ty + "*)args.p[" + num(i) + "];");
    }
    for (int i = 0; i < int(r.results.size()); ++i) {
      if (yield_is_alias(yn->operand(i))) continue;
      const std::string ty = c_type(r.result(i)->type.dtype);
      out.line(ty + "* __restrict__ r" + num(i) + " = (" + ty + "*)args.p[" +
               num(r.num_operands() + i) + "];");
    }
    if (spec.argmax) {
      const int base = r.num_operands() + int(r.results.size());
      out.line("u64* __restrict__ amax_cells = (u64*)args.p[" + num(base) + "];");
      out.line("const u32* __restrict__ sample = (const u32*)args.p[" + num(base + 1) + "];");
    }
  }
  out.line("const u8* __restrict__ W = (const u8*)a" + num(P.w_arg) + ";");
  out.line("constexpr int MT = " + num(MT) + ", K = " + num(P.K) + ";");
  out.line("const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;");
  out.line("const int m0 = blockIdx.y * MT;");
  // Which group and tile this block computes.
  out.line("int grp = 0, tile = blockIdx.x;");
  {
    int64_t acc = 0;
    for (size_t gi = 0; gi + 1 < groups.size(); ++gi) {
      acc += groups[gi].tiles;
      out.line("if (blockIdx.x >= " + num(acc) + ") { grp = " + num(int64_t(gi + 1)) +
               "; tile = blockIdx.x - " + num(acc) + "; }");
    }
  }
  out.line("kl_pdl_launch();");
  if (o.pdl) {
    // The weights never change: pull this block's rows toward L2 while the previous kernel
    // finishes.
    out.open("");
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const Group& g = groups[gi];
      const int64_t lines = (int64_t(P.row_bytes) + 127) / 128;
      const int64_t rows = int64_t(g.shifts.size()) * g.tw;
      out.open("if (grp == " + num(int64_t(gi)) + ")");
      out.open("for (int i = tid; i < " + num(rows * lines) + "; i += " + num(kThreads) + ")");
      out.line("const int rr = i / " + num(lines) + ", slot = rr / " + num(g.tw) + ", j = rr % " +
               num(g.tw) + ";");
      out.line("const int e = tile * " + num(g.tw) + " + j;");
      out.line("if (e < " + num(g.L) + ") kl_prefetch_l2(W + (u64)(" +
               shift_expr(g.shifts, "slot") + " + e) * " + num(int64_t(P.row_bytes)) +
               "ull + (i % " + num(lines) + ") * 128);");
      out.close();
      out.close();
    }
    out.close();
  }
  out.line("kl_pdl_wait();");
  if (kquant && P.M > 1) {
    // ggml picks its K-quant kernels by the real token count: see emit_kquant_products.
    spec.token_count = true;
    const int at = spec.num_operands + spec.num_results + (spec.argmax ? 2 : 0);
    out.line("const int ntok_run = *(const int*)args.p[" + num(at) + "];");
    out.line("const int ntok = ntok_run > 0 && ntok_run < " + num(P.M) +
             " ? ntok_run : " + num(P.M) + ";");
  }

  // ---- 1. prologue ----
  KernelCtx pk = k;
  pk.space = Space{false, P.M, MT, 0};
  pk.stats.clear();
  {
    Code scratch;
    pk.analysis = true;
    ElemEmitter em(pk, scratch);
    auto r = em.value(x, Idx::affine("m", "e", P.K, 0));
    if (!r.ok()) return r.error().wrap("prologue");
    for (const Sink& s : pro) {
      ElemEmitter e2(pk, scratch);
      KILN_RETURN_IF_ERROR(
          emit_sink(pk, e2, scratch, s, Idx::affine("m", "e", numel(s.value) / P.M, 0)));
    }
    KILN_RETURN_IF_ERROR(close_stats(pk));
    pk.analysis = false;
  }
  out.line("// prologue: x = " + (x->def ? ir::print_node(*x->def) : std::string("?")));
  KILN_RETURN_IF_ERROR(emit_stats(pk, out, "0"));
  const int64_t nb32 = P.K / 32;
  if (P.path == ActPath::kInt) {
    out.line("__shared__ __align__(16) i8 xq[MT * K];");
    out.line("__shared__ float xd[MT * " + num(q8k ? P.K / 256 : nb32) + "];");
    out.line("__shared__ int xsum[MT * " + num(nb32) + "];");
    if (q8k) out.line("__shared__ int xb16[MT * " + num(P.K / 16) + "];");  // Q8_K's bsums
    if (P.act == DType::Q8_1) out.line("__shared__ float xs[MT * " + num(nb32) + "];");
    if (!q8k) {
      // q8_0 / q8_1 (ggml-cpu's quantizer): a warp per block of 32.
      out.open("for (int t = warp; t < MT * " + num(nb32) + "; t += " + num(kWarps) + ")");
      out.line("const int ml = t / " + num(nb32) + ", kb = t % " + num(nb32) + ", m = m0 + ml;");
      out.line("const int e = kb * 32 + lane;");
      out.line("float xv = 0.0f;");
      out.open("if (m < " + num(P.M) + ")");
      ElemEmitter em(pk, out);
      KILN_ASSIGN_OR_RETURN(std::string v, em.value(x, Idx::affine("m", "e", P.K, 0)));
      out.line("xv = " + v + ";");
      out.close();
      out.line("const float amax = kl_warp_max(fabsf(xv));");
      out.line("const float id = amax != 0.0f ? 127.0f / amax : 0.0f;");
      out.line("const int q = kl_rint(xv * id);");
      out.line("const int qsum = kl_warp_sum_i(q);");
      out.line("xq[ml * K + e] = (i8)q;");
      out.open("if (lane == 0)");
      out.line("xd[t] = kl_round_f16(amax / 127.0f);");
      out.line("xsum[t] = qsum;");
      if (P.act == DType::Q8_1) out.line("xs[t] = kl_round_f16(amax / 127.0f * (float)qsum);");
      out.close();
      out.close();
    } else {
      // q8_k (ggml's reference quantizer): a warp per super-block, 8 elements per lane.
      const int64_t nsb = P.K / 256;
      out.open("for (int t = warp; t < MT * " + num(nsb) + "; t += " + num(kWarps) + ")");
      out.line("const int ml = t / " + num(nsb) + ", sb = t % " + num(nsb) + ", m = m0 + ml;");
      out.line("float xv[8];");
      out.line("float amax = 0.0f, mx = 0.0f;");
      out.line("int at = 0x7fffffff;");
      out.line("#pragma unroll");
      out.open("for (int u = 0; u < 8; ++u)");
      out.line("const int e = sb * 256 + lane * 8 + u;");
      out.line("xv[u] = 0.0f;");
      out.open("if (m < " + num(P.M) + ")");
      ElemEmitter em(pk, out);
      KILN_ASSIGN_OR_RETURN(std::string v, em.value(x, Idx::affine("m", "e", P.K, 0)));
      out.line("xv[u] = " + v + ";");
      out.close();
      out.line("if (fabsf(xv[u]) > amax) { amax = fabsf(xv[u]); mx = xv[u]; at = e; }");
      out.close();
      out.open("for (int off = 16; off > 0; off >>= 1)");
      out.line("const float a2 = kl_shfl_xor(amax, off), m2 = kl_shfl_xor(mx, off);");
      out.line("const int at2 = kl_shfl_xor_i(at, off);");
      out.line("if (a2 > amax || (a2 == amax && at2 < at)) { amax = a2; mx = m2; at = at2; }");
      out.close();
      out.line("const float iscale = amax != 0.0f ? -127.0f / mx : 0.0f;");
      out.line("int gs = 0;");
      out.line("#pragma unroll");
      out.open("for (int u = 0; u < 8; ++u)");
      out.line("const int q = amax != 0.0f ? min(127, kl_rint(iscale * xv[u])) : 0;");
      out.line("xq[ml * K + sb * 256 + lane * 8 + u] = (i8)q;");
      out.line("gs += q;");
      out.close();
      out.line("gs += kl_shfl_xor_i(gs, 1);");
      out.line("if ((lane & 1) == 0) xb16[ml * " + num(P.K / 16) +
               " + sb * 16 + (lane >> 1)] = gs;");
      out.line("gs += kl_shfl_xor_i(gs, 2);");
      out.line("if ((lane & 3) == 0) xsum[ml * " + num(nb32) + " + sb * 8 + (lane >> 2)] = gs;");
      out.line("if (lane == 0) xd[t] = amax != 0.0f ? 1.0f / iscale : 0.0f;");
      out.close();
    }
  } else {
    out.line("__shared__ float xf[MT * K];");
    if (P.act == DType::F32 || P.act == DType::F16 || P.act == DType::BF16) {
      out.open("for (int i = tid; i < MT * K; i += " + num(kThreads) + ")");
      out.line("const int ml = i / K, e = i % K, m = m0 + ml;");
      out.line("float xv = 0.0f;");
      out.open("if (m < " + num(P.M) + ")");
      ElemEmitter em(pk, out);
      KILN_ASSIGN_OR_RETURN(std::string v, em.value(x, Idx::affine("m", "e", P.K, 0)));
      out.line("xv = " + v + ";");
      out.close();
      out.line(std::string("xf[i] = ") +
               (P.act == DType::F16    ? "kl_round_f16(xv)"
                : P.act == DType::BF16 ? "kl_round_bf16(xv)"
                                       : "xv") +
               ";");
      out.close();
    } else if (P.act == DType::Q8_0 || P.act == DType::Q8_1 || P.act == DType::Q8_K) {
      // x rounded to what its 8-bit blocks represent (d * q), used in f32.
      const int64_t qb = q8k ? 256 : 32, per = qb / 32;
      out.open("for (int t = warp; t < MT * " + num(P.K / qb) + "; t += " + num(kWarps) + ")");
      out.line("const int ml = t / " + num(P.K / qb) + ", b = t % " + num(P.K / qb) +
               ", m = m0 + ml;");
      out.line("float xv[" + num(per) + "];");
      out.line("float amax = 0.0f, mx = 0.0f;");
      out.line("int at = 0x7fffffff;");
      out.open("for (int u = 0; u < " + num(per) + "; ++u)");
      out.line("const int e = b * " + num(qb) + " + lane * " + num(per) + " + u;");
      out.line("xv[u] = 0.0f;");
      out.open("if (m < " + num(P.M) + ")");
      ElemEmitter em(pk, out);
      KILN_ASSIGN_OR_RETURN(std::string v, em.value(x, Idx::affine("m", "e", P.K, 0)));
      out.line("xv[u] = " + v + ";");
      out.close();
      out.line("if (fabsf(xv[u]) > amax) { amax = fabsf(xv[u]); mx = xv[u]; at = e; }");
      out.close();
      out.open("for (int off = 16; off > 0; off >>= 1)");
      out.line("const float a2 = kl_shfl_xor(amax, off), m2 = kl_shfl_xor(mx, off);");
      out.line("const int at2 = kl_shfl_xor_i(at, off);");
      out.line("if (a2 > amax || (a2 == amax && at2 < at)) { amax = a2; mx = m2; at = at2; }");
      out.close();
      if (q8k) {
        out.line("const float iscale = amax != 0.0f ? -127.0f / mx : 0.0f;");
        out.line("const float d = amax != 0.0f ? 1.0f / iscale : 0.0f;");
        out.line("for (int u = 0; u < " + num(per) + "; ++u) xf[ml * K + b * " + num(qb) +
                 " + lane * " + num(per) +
                 " + u] = d * (float)(amax != 0.0f ? min(127, kl_rint(iscale * xv[u])) : 0);");
      } else {
        out.line("const float id = amax != 0.0f ? 127.0f / amax : 0.0f;");
        out.line("const float d = kl_round_f16(amax / 127.0f);");
        out.line("xf[ml * K + b * 32 + lane] = d * (float)kl_rint(xv[0] * id);");
      }
      out.close();
    } else {
      return make_error("act ", dtype_name(P.act), " is not supported on CUDA");
    }
  }
  out.line("KL_SYNC();");
  if (!pro.empty()) {
    // Values of the prologue the region also yields: written by the first tile's blocks.
    out.open("if (blockIdx.x == 0)");
    std::map<int64_t, std::vector<const Sink*>> by_l;
    for (const Sink& s : pro) by_l[numel(s.value) / P.M].push_back(&s);
    for (auto& [L, ss] : by_l) {
      out.open("for (int i = tid; i < MT * " + num(L) + "; i += " + num(kThreads) + ")");
      out.line("const int m = m0 + i / " + num(L) + ", e = i % " + num(L) + ";");
      out.open("if (m < " + num(P.M) + ")");
      ElemEmitter em(pk, out);
      for (const Sink* s : ss)
        KILN_RETURN_IF_ERROR(emit_sink(pk, em, out, *s, Idx::affine("m", "e", L, 0)));
      out.close();
      out.close();
    }
    out.close();
  }

  // ---- 2. and 3., per group ----
  out.line("__shared__ float ys[" + num(ys_floats) + "];");
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    Group& g = groups[gi];
    const int64_t ns = int64_t(g.shifts.size()), rows = ns * g.tw;
    out.open("if (grp == " + num(int64_t(gi)) + ")");
    out.line("// " + num(int64_t(g.sinks.size())) + " sinks of " + num(g.L) + " per row; tile " +
             num(g.tw) + " columns at shifts" + [&] {
               std::string s;
               for (int64_t v : g.shifts) s += " " + num(v);
               return s;
             }());
    out.line("constexpr int TW = " + num(g.tw) + ";");
    out.line("const int e0 = tile * TW;");
    if (lanes) {
      emit_lane_products(out, P, g.shifts, g.tw, g.L, RW);
    } else if (kquant) {
      emit_kquant_products(out, P, g.shifts, g.tw, g.L, RW);
    } else {
      // Dot products: warp per RW weight rows, lanes over the units of a row.
      open_row_step(out, P, g.shifts, g.tw, g.L, RW, RW, "rb + r", {"acc"});
      // The unit loop has a constant trip count: unrolled, the loads of every iteration are issued
      // before the first dot product needs its data.
      if ((P.units + 31) / 32 <= 4) out.line("#pragma unroll");
      out.open("for (int u = lane; u < " + num(P.units) + "; u += 32)");
      out.line("#pragma unroll");
      out.open("for (int r = 0; r < " + num(RW) + "; ++r)");
      out.open("if (ok[r])");
      if (P.path == ActPath::kInt) {
        const std::string nbx = num(q8k ? P.K / 256 : nb32);
        out.line("const " + unit_type(P.wt) + " w = kl_load_" + P.type + "(wr[r], K, u);");
        out.line("#pragma unroll");
        out.line(
            "for (int ml = 0; ml < MT; ++ml) acc[r][ml] += kl_udot_" + P.type +
            "(w, xq + ml * K, xd + ml * " + nbx + ", " +
            (P.act == DType::Q8_1 ? "xs + ml * " + num(nb32) : std::string("(const float*)0")) +
            ", xsum + ml * " + num(nb32) + ", u);");
      } else {
        out.line("float wv[32];");
        out.line("#pragma unroll");
        out.line("for (int t = 0; t < 32; ++t) wv[t] = 32 * u + t < K ? kl_deq_" + P.type +
                 "(wr[r], K, 32 * u + t) : 0.0f;");
        out.line("#pragma unroll");
        out.open("for (int ml = 0; ml < MT; ++ml)");
        out.line("float s = 0.0f;");
        out.line("#pragma unroll");
        out.line(
            "for (int t = 0; t < 32; ++t) if (32 * u + t < K) s += wv[t] * xf[ml * K + 32 * u + "
            "t];");
        out.line("acc[r][ml] += s;");
        out.close();
      }
      out.close();
      out.close();
      out.close();
      close_row_step(out, rows, RW, "rb + r", "kl_warp_sum(acc[r][ml])", "lane == 0");
    }
    out.line("KL_SYNC();");
    // Epilogue stats over the tile, then the sinks.
    {
      KernelCtx& ek = g.ctx;
      KILN_RETURN_IF_ERROR(emit_stats(ek, out, "e0"));
      out.open("for (int i = tid; i < MT * TW; i += " + num(kThreads) + ")");
      out.line("const int m = m0 + i / TW, E = e0 + i % TW;");
      out.open("if (m < " + num(P.M) + " && E < " + num(g.L) + ")");
      ElemEmitter em(ek, out);
      for (const Sink& s : g.sinks)
        KILN_RETURN_IF_ERROR(emit_sink(ek, em, out, s, Idx::affine("m", "E", g.L, 0)));
      out.close();
      out.close();
      // The fused argmax of the sampled output.
      const Sink* am = nullptr;
      if (spec.argmax)
        for (const Sink& s : g.sinks)
          if (s.result == spec.argmax_result) am = &s;
      if (am) {
        out.line("// fused argmax / Gumbel-max sample of " + k.region->result(am->result)->name);
        out.line("__shared__ float am_v[" + num(kWarps) + "];");
        out.line("__shared__ int am_i[" + num(kWarps) + "];");
        out.line("const float temp = kl_bits_f(sample[0]);");
        out.open("for (int ml = 0; ml < MT; ++ml)");
        out.line("const int m = m0 + ml;");
        out.line("float best = -kl_inf();");
        out.line("int at = 0x7fffffff;");
        out.open("if (m < " + num(P.M) + ")");
        out.open("for (int t = tid; t < TW; t += " + num(kThreads) + ")");
        out.line("const int E = e0 + t;");
        out.open("if (E < " + num(g.L) + ")");
        ElemEmitter em2(ek, out);
        KILN_ASSIGN_OR_RETURN(std::string v, em2.value(am->value, Idx::affine("m", "E", g.L, 0)));
        out.line("float s = " + v + ";");
        out.line(
            "if (temp > 0.0f) s = s / temp - logf(-logf(kl_uniform(sample[1], sample[2], "
            "sample[3], (u32)(m * " +
            num(g.L) + " + E))));");
        out.line("if (s > best || (s == best && E < at)) { best = s; at = E; }");
        out.close();
        out.close();
        out.close();
        out.line("kl_warp_argmax(&best, &at);");
        out.line("if (lane == 0) { am_v[warp] = best; am_i[warp] = at; }");
        out.line("KL_SYNC();");
        out.open("if (tid == 0 && m < " + num(P.M) + ")");
        out.line("best = am_v[0]; at = am_i[0];");
        out.open("for (int q = 1; q < " + num(kWarps) + "; ++q)");
        out.line(
            "if (am_v[q] > best || (am_v[q] == best && am_i[q] < at)) { best = am_v[q]; at = "
            "am_i[q]; }");
        out.close();
        out.line("if (at != 0x7fffffff) kl_atomic_max64(amax_cells + m, kl_argmax_key(best, at));");
        out.close();
        out.line("KL_SYNC();");
        out.close();
      }
    }
    out.close();
  }
  out.close();

  spec.kind = KernelKind::kContraction;
  spec.grid[0] = uint32_t(total_tiles);
  spec.grid[1] = uint32_t((P.M + MT - 1) / MT);
  spec.block = kThreads;
  std::string gs;
  for (const Group& g : groups)
    gs += (gs.empty() ? "" : ", ") + num(g.tiles) + "x" + num(g.tw) + " cols" +
          (g.shifts.size() > 1 ? " x" + num(int64_t(g.shifts.size())) + " shifts" : "");
  spec.summary = "contraction " + P.type + " [" + num(P.N) + " x " + num(P.K) + "] act " +
                 std::string(dtype_name(P.act)) + (P.path == ActPath::kInt ? " (dp4a)" : " (f32)") +
                 ", M=" + num(P.M) + " in tiles of " + num(MT) + ", tiles: " + gs;
  return Status::Ok();
}

}  // namespace kiln::cuda::detail
