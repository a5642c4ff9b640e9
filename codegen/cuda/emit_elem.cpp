// The element emitter: CUDA statements computing one element of a region-body value, recursively
// from its operands, with a memo so that each (value, index) is computed once per loop body.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/weight_layout.h"
#include "ir/printer.h"
#include "passes/graph_util.h"

namespace kiln::cuda::detail {

std::string num(int64_t v) {
  return std::to_string(v);
}

std::string flt(double v) {
  if (std::isinf(v)) return v > 0 ? "kl_inf()" : "(-kl_inf())";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9ef", float(v));
  return buf;
}

std::string dbl(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17e", v);
  return buf;
}

void Code::line(const std::string& s) {
  out_.append(size_t(2 * depth_), ' ');
  out_ += s;
  out_ += '\n';
}
void Code::open(const std::string& head) {
  line(head + " {");
  ++depth_;
}
void Code::close(const std::string& tail) {
  --depth_;
  line(tail);
}

Idx Idx::affine(std::string m, std::string e, int64_t L, int64_t c) {
  Idx i;
  i.aff = true;
  i.m = std::move(m);
  i.e = std::move(e);
  i.L = L;
  i.c = c;
  i.flat = "(" + i.m + " * " + num(L) + " + " + i.e + (c ? " + " + num(c) : "") + ")";
  return i;
}

Idx Idx::plain(std::string flat) {
  Idx i;
  i.flat = std::move(flat);
  return i;
}

std::string Idx::key() const {
  return aff ? "a:" + m + "|" + e + "|" + num(L) + "|" + num(c) : "f:" + flat;
}

int64_t numel(const ir::Value* v) {
  return v->type.numel();
}

bool is_int_type(DType t) {
  return is_integer(t) || t == DType::BOOL;
}

std::string c_type(DType t) {
  switch (t) {
    case DType::F32:
      return "float";
    case DType::F16:
    case DType::BF16:
      return "u16";
    case DType::I32:
      return "int";
    case DType::I64:
      return "i64";
    case DType::I16:
      return "short";
    case DType::I8:
      return "i8";
    case DType::BOOL:
      return "u8";
    default:
      return "u8";  // quantized: bytes
  }
}

std::string store_expr(DType t, const std::string& v) {
  switch (t) {
    case DType::F16:
      return "kl_f2h(" + v + ")";
    case DType::BF16:
      return "kl_f2bf(" + v + ")";
    case DType::I32:
      return "(int)(" + v + ")";
    case DType::I64:
      return "(i64)(" + v + ")";
    case DType::I16:
      return "(short)(" + v + ")";
    case DType::I8:
      return "(i8)(" + v + ")";
    case DType::BOOL:
      return "(u8)((" + v + ") != 0)";
    default:
      return v;
  }
}

bool depends_on(const ir::Value* v, const ir::Value* on) {
  if (v == on) return true;
  if (!v->def) return false;
  for (const ir::Value* o : v->def->operands)
    if (depends_on(o, on)) return true;
  return false;
}

int arg_root(const ir::Value* v, uint64_t* offset) {
  uint64_t off = 0;
  while (v->def && passes::is_free(*v->def)) {
    auto a = passes::alias_of(*v->def, v->index);
    if (!a) return -1;
    off += a->offset;
    v = v->def->operand(a->operand);
  }
  if (offset) *offset = off;
  if (v->def && v->def->op == ir::Op::Arg) return int(v->def->attrs.i("index"));
  return -1;
}

bool yield_is_alias(const ir::Value* v) {
  while (v->def && (passes::is_free(*v->def) || passes::is_store(*v->def))) {
    if (passes::is_store(*v->def)) return true;
    v = v->def->operand(0);
  }
  return v->def && v->def->op == ir::Op::Arg;
}

const ir::Node* find_op(const ir::Graph& body, ir::Op op) {
  for (const auto& n : body.nodes())
    if (n->op == op) return n.get();
  return nullptr;
}

std::string rope_table_name(const ir::Node& n) {
  // One table per (n_dims, base, scale): the name encodes them so identical ropes share it.
  char buf[128];
  std::snprintf(buf, sizeof buf, "kl_rope_%lld_%016llx_%016llx", (long long)n.attrs.i("n_dims"),
                (unsigned long long)std::hash<double>{}(n.attrs.f("freq_base")),
                (unsigned long long)std::hash<double>{}(n.attrs.f("freq_scale")));
  return buf;
}

std::string rope_tables(const std::vector<const ir::Node*>& ropes) {
  std::set<std::string> done;
  std::string out;
  for (const ir::Node* n : ropes) {
    const std::string name = rope_table_name(*n);
    if (!done.insert(name).second) continue;
    const int64_t nd = n->attrs.i("n_dims");
    const double base = n->attrs.f("freq_base"), fs = n->attrs.f("freq_scale");
    out += "// rope: n_dims " + num(nd) + ", freq_base " + dbl(base) + ", freq_scale " + dbl(fs) +
           ": theta_i = pos * table[i]\n";
    out += "__device__ const double " + name + "[" + num(std::max<int64_t>(nd / 2, 1)) + "] = {";
    for (int64_t i = 0; i < nd / 2; ++i)
      out += (i ? ", " : "") + dbl(fs * std::pow(base, -2.0 * double(i) / double(nd)));
    if (nd / 2 == 0) out += "0.0";
    out += "};\n";
  }
  return out;
}

std::string KernelCtx::table_arg(const HostTable& t) {
  int at = -1;
  for (size_t i = 0; i < host_tables->size(); ++i)
    if ((*host_tables)[i].key() == t.key()) at = int(i);
  if (at < 0) {
    at = int(host_tables->size());
    host_tables->push_back(t);
  }
  if (std::find(tables_used->begin(), tables_used->end(), at) == tables_used->end())
    tables_used->push_back(at);
  return "((const float*)args.p[" + num(kMaxArgs - 1 - at) + "])";
}

int KernelCtx::slot_of(int64_t shift) {
  for (size_t i = 0; i < shifts.size(); ++i)
    if (shifts[i] == shift) return int(i);
  shifts.push_back(shift);
  return int(shifts.size() - 1);
}

std::string ElemEmitter::emit(const std::string& type, const char* prefix,
                              const std::string& expr) {
  std::string v = k_.var(prefix);
  code_.line("const " + type + " " + v + " = " + expr + ";");
  return v;
}

std::string ElemEmitter::flat(const Idx& idx) {
  if (!idx.aff) return idx.flat;
  auto it = memo_.find("flat:" + idx.key());
  if (it != memo_.end()) return it->second;
  std::string v = emit("int", "ix", idx.flat);
  memo_["flat:" + idx.key()] = v;
  return v;
}

Result<std::string> ElemEmitter::value(const ir::Value* v, const Idx& idx) {
  const std::string key = std::to_string(v->id) + "@" + idx.key();
  if (auto it = memo_.find(key); it != memo_.end()) return it->second;
  KILN_ASSIGN_OR_RETURN(std::string r, compute(v, idx));
  memo_[key] = r;
  return r;
}

namespace {

bool is_elementwise_shape(const ir::Value* a, const ir::Value* out) {
  return a->type.shape == out->type.shape;
}

// The flat index of operand shape `in` read broadcast against `out` at flat index `f`.
std::string broadcast_index(const ir::Shape& out, const ir::Shape& in, const std::string& f) {
  const int ro = int(out.size()), ri = int(in.size());
  int64_t in_numel = 1;
  for (int64_t d : in) in_numel *= d;
  if (in_numel == 1) return "0";
  // Trailing dims equal and leading ones broadcast: f % numel(in).
  bool suffix = ri <= ro;
  for (int i = 0; suffix && i < ri; ++i) suffix = in[size_t(ri - 1 - i)] == out[size_t(ro - 1 - i)];
  if (suffix) return "(" + f + " % " + num(in_numel) + ")";
  // General: coordinates of f in `out`, recomposed with in's strides (0 where broadcast).
  std::string s;
  const auto os = ir::strides_of(out);
  const auto is = ir::strides_of(in);
  for (int d = 0; d < ri; ++d) {
    const int od = ro - ri + d;
    if (in[size_t(d)] == 1) continue;
    std::string coord =
        "((" + f + " / " + num(os[size_t(od)]) + ") % " + num(out[size_t(od)]) + ")";
    s += (s.empty() ? "" : " + ") + coord + " * " + num(is[size_t(d)]);
  }
  return s.empty() ? "0" : "(" + s + ")";
}

}  // namespace

Result<std::string> ElemEmitter::operand_at(const ir::Node& n, int i, const Idx& idx) {
  const ir::Value* a = n.operand(i);
  const ir::Value* out = n.result();
  if (is_elementwise_shape(a, out)) return value(a, idx);
  return value(a, Idx::plain(broadcast_index(out->type.shape, a->type.shape, flat(idx))));
}

Result<std::string> ElemEmitter::arg(int index, const ir::Value* v, const Idx& idx) {
  if (index < 0 || index >= int(k_.arg_names.size()))
    return make_error("arg index ", index, " out of range");
  const std::string& p = k_.arg_names[size_t(index)];
  const DType t = v->type.dtype;
  const std::string f = flat(idx);
  if (is_quantized(t) || k_.layouts[size_t(index)] == ArgLayout::kPacked) {
    if (k_.layouts[size_t(index)] != ArgLayout::kPacked)
      return make_error("a ", dtype_name(t), " operand that is not a constant (only weights ",
                        "are read quantized on CUDA)");
    const int64_t K = v->type.dim(-1);
    auto row = packed_row_bytes(t, K);
    if (!row) return make_error("weight type ", dtype_name(t), " is not supported on CUDA");
    return emit("float", "w",
                "kl_deq_" + std::string(dtype_name(t)) + "(" + p + " + (u64)(" + f + " / " +
                    num(K) + ") * " + num(int64_t(row)) + "ull, " + num(K) + ", " + f + " % " +
                    num(K) + ")");
  }
  switch (t) {
    case DType::F32:
      return emit("float", "x", p + "[" + f + "]");
    case DType::F16:
      return emit("float", "x", "kl_h2f(" + p + "[" + f + "])");
    case DType::BF16:
      return emit("float", "x", "kl_bf2f(" + p + "[" + f + "])");
    case DType::I32:
    case DType::I64:
    case DType::I16:
    case DType::I8:
    case DType::BOOL:
      return emit("int", "n", "(int)" + p + "[" + f + "]");
    default:
      return make_error("operands of type ", dtype_name(t), " are not supported on CUDA");
  }
}

Result<std::string> ElemEmitter::compute(const ir::Value* v, const Idx& idx) {
  const ir::Node* n = v->def;
  if (!n) return make_error("a value without a defining node");
  using ir::Op;
  auto un = [&](const std::string& f) -> Result<std::string> {
    KILN_ASSIGN_OR_RETURN(std::string a, value(n->operand(0), idx));
    return emit("float", "v", f + "(" + a + ")");
  };
  auto bin = [&](const char* op) -> Result<std::string> {
    KILN_ASSIGN_OR_RETURN(std::string a, operand_at(*n, 0, idx));
    KILN_ASSIGN_OR_RETURN(std::string b, operand_at(*n, 1, idx));
    return emit("float", "v", a + " " + op + " " + b);
  };
  switch (n->op) {
    case Op::Arg:
      return arg(int(n->attrs.i("index")), v, idx);
    case Op::Add:
      return bin("+");
    case Op::Sub:
      return bin("-");
    case Op::Mul:
      return bin("*");
    case Op::Div:
      return bin("/");
    case Op::Scale: {
      KILN_ASSIGN_OR_RETURN(std::string a, value(n->operand(0), idx));
      return emit("float", "v", a + " * " + flt(n->attrs.f("scale")));
    }
    case Op::Silu:
      return un("kl_silu");
    case Op::Tanh:
      return un("tanhf");
    case Op::Exp:
      return un("expf");
    case Op::Gelu: {
      const std::string& a = n->attrs.s("approx");
      if (a == "tanh_f16") {  // ggml's f16 GELU from its host-made table
        HostTable t;
        t.kind = HostTable::kGeluF16;
        const std::string tab = k_.table_arg(t);
        KILN_ASSIGN_OR_RETURN(std::string x, value(n->operand(0), idx));
        return emit("float", "v", "kl_gelu_f16_table(" + x + ", " + tab + ")");
      }
      return un(a == "erf" ? "kl_gelu_erf" : "kl_gelu_tanh");
    }
    case Op::Cast: {
      KILN_ASSIGN_OR_RETURN(std::string a, value(n->operand(0), idx));
      const DType to = n->attrs.dtype("to");
      switch (to) {
        case DType::F32:
          return a;
        case DType::F16:
          return emit("float", "v", "kl_round_f16(" + a + ")");
        case DType::BF16:
          return emit("float", "v", "kl_round_bf16(" + a + ")");
        case DType::I32:
        case DType::I64:
        case DType::I16:
        case DType::I8:
          return emit("int", "n", "(isnan((float)" + a + ") ? 0 : (int)(" + a + "))");
        default:
          return make_error("cast to ", dtype_name(to),
                            " inside a kernel is not supported on CUDA");
      }
    }
    case Op::Reshape:
      return value(n->operand(0), idx);
    case Op::View: {
      const int64_t off = n->attrs.i("offset");
      const ir::Value* a = n->operand(0);
      if (idx.aff && numel(a) == numel(v)) {
        Idx j = idx;
        j.c += off;
        return value(a, Idx::affine(j.m, j.e, j.L, j.c));
      }
      return value(a, Idx::plain("(" + flat(idx) + " + " + num(off) + ")"));
    }
    case Op::Slice: {
      const ir::Value* a = n->operand(0);
      const int64_t axis = n->attrs.i("axis"), start = n->attrs.i("start"),
                    size = n->attrs.i("size");
      const ir::Shape& os = v->type.shape;
      int64_t inner = 1, outer = 1;
      for (size_t d = size_t(axis) + 1; d < os.size(); ++d) inner *= os[d];
      for (int64_t d = 0; d < axis; ++d) outer *= os[size_t(d)];
      const int64_t in_axis = a->type.shape[size_t(axis)];
      if (idx.aff && outer == k_.space.M)  // the rows are exactly the dims before the axis
        return value(a, Idx::affine(idx.m, idx.e, in_axis * inner, idx.c + start * inner));
      const std::string f = flat(idx);
      return value(
          a, Idx::plain("((" + f + " / " + num(size * inner) + ") * " + num(in_axis * inner) +
                        " + " + num(start * inner) + " + " + f + " % " + num(size * inner) + ")"));
    }
    case Op::Permute: {
      const ir::Value* a = n->operand(0);
      const auto& perm = n->attrs.ints("perm");
      const ir::Shape& os = v->type.shape;
      const auto ostr = ir::strides_of(os);
      const auto istr = ir::strides_of(a->type.shape);
      const std::string f = flat(idx);
      std::string s;
      for (size_t d = 0; d < os.size(); ++d) {
        if (os[d] == 1) continue;
        s += (s.empty() ? "" : " + ") + ("((" + f + " / " + num(ostr[d]) + ") % " + num(os[d]) +
                                         ") * " + num(istr[size_t(perm[d])]));
      }
      return value(a, Idx::plain(s.empty() ? "0" : "(" + s + ")"));
    }
    case Op::Concat: {
      const int64_t axis = n->attrs.i("axis");
      const ir::Shape& os = v->type.shape;
      int64_t inner = 1;
      for (size_t d = size_t(axis) + 1; d < os.size(); ++d) inner *= os[d];
      const std::string f = flat(idx);
      const std::string c =
          emit("int", "ix", "(" + f + " / " + num(inner) + ") % " + num(os[size_t(axis)]));
      const std::string outer = emit("int", "ix", f + " / " + num(inner * os[size_t(axis)]));
      const std::string r = k_.var("v");
      code_.line((is_int_type(v->type.dtype) ? "int " : "float ") + r + ";");
      int64_t at = 0;
      for (int i = 0; i < n->num_operands(); ++i) {
        const ir::Value* a = n->operand(i);
        const int64_t len = a->type.shape[size_t(axis)];
        code_.open((i ? "else if (" : "if (") + c + " < " + num(at + len) + ")");
        auto saved = memo_;
        auto x = value(
            a, Idx::plain("(" + outer + " * " + num(len * inner) + " + (" + c + " - " + num(at) +
                          ") * " + num(inner) + " + " + f + " % " + num(inner) + ")"));
        memo_ = std::move(saved);
        if (!x.ok()) return x.error();
        code_.line(r + " = " + *x + ";");
        code_.close();
        at += len;
      }
      return r;
    }
    case Op::GetRows: {
      const ir::Value* t = n->operand(0);
      const int64_t C = t->type.dim(-1);
      const std::string f = flat(idx);
      KILN_ASSIGN_OR_RETURN(std::string r,
                            value(n->operand(1), Idx::plain("(" + f + " / " + num(C) + ")")));
      return value(t, Idx::plain("(" + r + " * " + num(C) + " + " + f + " % " + num(C) + ")"));
    }
    case Op::Rope:
      return rope(*n, idx);
    case Op::RmsNorm:
    case Op::Norm:
    case Op::Softmax:
    case Op::Argmax:
      return reduction(*n, idx);
    case Op::MulMat:
      return product(*n, idx);
    default:
      if (k_.opaque_ok.count(v)) return make_error("internal: opaque value read per element");
      return make_error("op '", ir::op_name(n->op), "' cannot be computed per element here (",
                        ir::print_node(*n), ")");
  }
}

// Rotary embedding of one element: it reads its pair partner at the same row.
Result<std::string> ElemEmitter::rope(const ir::Node& n, const Idx& idx) {
  const ir::Value* x = n.operand(0);
  const ir::Value* pos = n.operand(1);
  const int64_t D = x->type.dim(-1), H = x->type.dim(-2), nd = n.attrs.i("n_dims");
  const bool neox = n.attrs.s("mode") == "neox";
  const int64_t half = nd / 2;
  if (numel(pos) * H * D != numel(x))
    return make_error("rope: positions ", pos->type.str(), " do not match ", x->type.str());
  const std::string f = flat(idx);
  const std::string d = emit("int", "d", f + " % " + num(D));
  // Offset of the partner: +-half (neox) or +-1 (normal); 0 past n_dims.
  const std::string off =
      neox ? emit("int", "o",
                  "(" + d + " >= " + num(nd) + ") ? 0 : (" + d + " < " + num(half) + " ? " +
                      num(half) + " : " + num(-half) + ")")
           : emit("int", "o", "(" + d + " >= " + num(nd) + ") ? 0 : ((" + d + " & 1) ? -1 : 1)");
  Idx pidx = idx.aff ? Idx::affine(idx.m, "(" + idx.e + " + " + off + ")", idx.L, idx.c)
                     : Idx::plain("(" + f + " + " + off + ")");
  KILN_ASSIGN_OR_RETURN(std::string a, value(x, idx));
  KILN_ASSIGN_OR_RETURN(std::string b, value(x, pidx));
  KILN_ASSIGN_OR_RETURN(std::string p, value(pos, Idx::plain("(" + f + " / " + num(H * D) + ")")));
  const std::string j =
      neox ? "(" + d + " < " + num(half) + " ? " + d + " : " + d + " - " + num(half) + ")"
           : "(" + d + " >> 1)";
  const std::string first = neox ? "(" + d + " < " + num(half) + ")" : "((" + d + " & 1) == 0)";
  const std::string r = k_.var("r");
  code_.line("float " + r + " = " + a + ";");
  code_.open("if (" + d + " < " + num(nd) + ")");
  // cos and sin from the host-made table (HostTable), rounded as the interpreter's.
  HostTable ht;
  ht.n_dims = nd;
  ht.freq_base = n.attrs.f("freq_base");
  ht.freq_scale = n.attrs.f("freq_scale");
  ht.positions = k_.rope_positions;
  // A graph without a KV cache has no table (rope_positions 0): sincos in double throughout.
  const int64_t rows = k_.rope_positions;
  const std::string tab = rows > 0 ? k_.table_arg(ht) : "((const float*)0)";
  code_.line("float cs, sn;");
  code_.open("if (" + num(rows) + " > 0 && " + p + " >= -1 && " + p + " < " + num(rows) + ")");
  code_.line("const float* cst = " + tab + " + 2 * ((u64)(" + p + " + 1) * " + num(half) + " + " +
             j + ");");
  code_.line("cs = cst[0];");
  code_.line("sn = cst[1];");
  code_.close();
  code_.open("else");
  code_.line("double sd, cd;");
  code_.line("sincos((double)" + p + " * " + rope_table_name(n) + "[" + j + "], &sd, &cd);");
  code_.line("cs = (float)cd;");
  code_.line("sn = (float)sd;");
  code_.close();
  // (a, b) -> (a cos - b sin, a sin + b cos) with a the first of the pair, fused as GCC fuses
  // ggml's rotation (and the interpreter's).
  code_.line(r + " = " + first + " ? fmaf(" + a + ", cs, -(" + b + " * sn)) : fmaf(" + b +
             ", sn, " + a + " * cs);");
  code_.close();
  return r;
}

// A reduction's element: its operand's element and the stat of its row.
Result<std::string> ElemEmitter::reduction(const ir::Node& n, const Idx& idx) {
  const int64_t row = n.operand(0)->type.dim(-1);
  const Space& sp = k_.space;
  StatKind kind = n.op == ir::Op::RmsNorm   ? StatKind::kRms
                  : n.op == ir::Op::Norm    ? StatKind::kNorm
                  : n.op == ir::Op::Softmax ? StatKind::kSoftmax
                                            : StatKind::kArgmax;
  if (numel(n.operand(0)) % sp.M != 0)
    return make_error(ir::op_name(n.op), " over ", n.operand(0)->type.str(),
                      " does not split into the kernel's ", sp.M, " rows");
  const int64_t L = numel(n.operand(0)) / sp.M;
  int64_t c = 0;
  std::string local;  // the stat's row inside the block
  if (kind == StatKind::kArgmax) {
    // The argmax value at idx (one element per row): the row is idx itself.
    if (sp.tile) return make_error("argmax inside a contraction epilogue is not supported on CUDA");
    local = "(" + flat(idx) + " - m0 * " + num(L / row) + ")";
  } else if (sp.tile) {
    if (!idx.aff || idx.L != L)
      return make_error(ir::op_name(n.op), " in an epilogue reached by an index that is not ",
                        "affine in the product's columns (", ir::print_node(n), ")");
    c = idx.c;
    if (c % row != 0 || sp.tw % row != 0)
      return make_error(ir::op_name(n.op), " rows of ", row, " are not aligned with the tile (",
                        sp.tw, " columns, offset ", c, ")");
    local = "((" + idx.m + " - m0) * " + num(sp.tw / row) + " + (" + idx.e + " - e0) / " +
            num(row) + ")";
  } else {
    if (L % row != 0) return make_error(ir::op_name(n.op), ": rows do not tile the kernel's rows");
    local = "(" + flat(idx) + " / " + num(row) + " - m0 * " + num(L / row) + ")";
  }
  auto key = std::make_pair(&n, c);
  auto it = k_.stats.find(key);
  if (it == k_.stats.end()) {
    Stat s;
    s.node = &n;
    s.kind = kind;
    s.c = c;
    s.id = int(k_.stats.size());
    s.row = row;
    s.L = L;
    s.rpm = sp.tile ? sp.tw / row : L / row;
    it = k_.stats.emplace(key, s).first;
  }
  const std::string st = "st" + num(it->second.id);
  const std::string lr = emit("int", "l", local);
  if (kind == StatKind::kArgmax) return emit("int", "n", st + "_i[" + lr + "]");
  KILN_ASSIGN_OR_RETURN(std::string x, value(n.operand(0), idx));
  switch (kind) {
    case StatKind::kRms:
      return emit("float", "v", x + " * " + st + "_a[" + lr + "]");
    case StatKind::kNorm:
      return emit("float", "v",
                  "(" + x + " - " + st + "_a[" + lr + "]) * " + st + "_b[" + lr + "]");
    default:
      break;
  }
  // softmax: z = (softcap ? softcap tanh(x / softcap) : x) * scale + mask
  const double scale = n.attrs.f("scale"), softcap = n.attrs.f("softcap");
  std::string z = softcap > 0 ? flt(softcap) + " * tanhf(" + x + " / " + flt(softcap) + ")" : x;
  z = "(" + z + ") * " + flt(scale);
  if (n.num_operands() > 1) {
    KILN_ASSIGN_OR_RETURN(std::string mk, operand_at(n, 1, idx));
    z += " + " + mk;
  }
  const std::string zv = emit("float", "z", z);
  return emit("float", "v",
              "(" + st + "_a[" + lr + "] == -kl_inf()) ? 0.0f : expf(" + zv + " - " + st + "_a[" +
                  lr + "]) / " + st + "_b[" + lr + "]");
}

// The product's element in a contraction epilogue: the tile in shared memory.
Result<std::string> ElemEmitter::product(const ir::Node& n, const Idx& idx) {
  if (&n != k_.mm) return make_error("a second mul_mat in one kernel");
  if (!idx.aff || idx.L != k_.N)
    return make_error("the epilogue reads the product at an index that is not a column shift ",
                      "of the output tile (a permute or gather after mul_mat)");
  const int slot = k_.slot_of(idx.c);
  return emit("float", "y",
              "ys[(" + num(slot) + " * MT + (" + idx.m + " - m0)) * TW + (" + idx.e + " - e0)]");
}

}  // namespace kiln::cuda::detail
