// Rows and contraction kernels: the loops around the element programs (emit_elem.cpp).
//
// Rows kernel (no product, no attention): one block per MT activation rows; stat stages, then
// one loop per group of sinks over their elements.
//
// Contraction kernel (one mul_mat with a 2-D weight): a block is one output tile of one sink
// group and MT activation rows. It computes the prologue (normalization of x) into shared memory,
// quantized the way `act` says; then the dot products of every weight row the tile needs (its
// columns at each shift) into `ys`; then the epilogue's stats over the tile; then the sinks.
#include <algorithm>
#include <numeric>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/weight_layout.h"
#include "ir/printer.h"
#include "passes/graph_util.h"

namespace kiln::cuda::detail {
namespace {

std::map<const ir::Node*, int> positions(const ir::Graph& body) {
  std::map<const ir::Node*, int> pos;
  int i = 0;
  for (const auto& n : body.nodes()) pos[n.get()] = i++;
  return pos;
}

std::vector<const Stat*> ordered_stats(const KernelCtx& k) {
  auto pos = positions(*k.body);
  std::vector<const Stat*> v;
  for (const auto& [key, s] : k.stats) v.push_back(&s);
  std::sort(v.begin(), v.end(), [&](const Stat* a, const Stat* b) {
    return pos[a->node] != pos[b->node] ? pos[a->node] < pos[b->node] : a->c < b->c;
  });
  return v;
}

// The yield index of v in the region body (the result it becomes), or -1.
std::vector<int> yields_of(const ir::Graph& body, const ir::Value* v) {
  std::vector<int> r;
  for (const auto& n : body.nodes())
    if (n->op == ir::Op::Yield)
      for (int i = 0; i < n->num_operands(); ++i)
        if (n->operand(i) == v) r.push_back(i);
  return r;
}

const ir::Node* yield_node(const ir::Graph& body) {
  return find_op(body, ir::Op::Yield);
}

}  // namespace

// One stat stage per stat, in schedule order: a warp per row of the block's space.
Status emit_stats(KernelCtx& k, Code& out, const std::string& e_base) {
  const std::string P = "st";
  for (const Stat* s : ordered_stats(k)) {
    const std::string id = P + num(s->id);
    const int64_t nr = k.space.MT * s->rpm;
    const ir::Node& n = *s->node;
    out.line("// stat " + id + ": " + std::string(ir::op_name(n.op)) + " over rows of " +
             num(s->row) + " (" + ir::print_node(n) + ")");
    if (s->kind == StatKind::kArgmax)
      out.line("__shared__ int " + id + "_i[" + num(nr) + "];");
    else
      out.line("__shared__ float " + id + "_a[" + num(nr) + "], " + id + "_b[" + num(nr) + "];");
    out.open("for (int lr = warp; lr < " + num(nr) + "; lr += " + num(kWarps) + ")");
    out.line("const int m = m0 + lr / " + num(s->rpm) + ";");
    out.line("const int eb = " + e_base + " + (lr % " + num(s->rpm) + ") * " + num(s->row) + ";");
    // Loops over the row's elements; `body` gets the element's variable.
    auto loop = [&](const std::function<Status(const std::string&)>& body) -> Status {
      out.open("if (m < " + num(k.space.M) + ")");
      out.open("for (int j = lane; j < " + num(s->row) + "; j += 32)");
      out.line("const int e = eb + j;");
      ElemEmitter em(k, out);
      KILN_ASSIGN_OR_RETURN(std::string x,
                            em.value(n.operand(0), Idx::affine("m", "e", s->L, s->c)));
      KILN_RETURN_IF_ERROR(body(x));
      out.close();
      out.close();
      return Status::Ok();
    };
    const std::string rn = num(s->row);
    switch (s->kind) {
      case StatKind::kRms:
        // ggml's arithmetic (the interpreter's): f32 squares summed in double, the mean and the
        // scale rounded to f32. The order of a double sum moves it by ~1e-16 relative, far
        // below the f32 rounding of the mean.
        out.line("double acc = 0.0;");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) {
          out.line("acc += (double)(" + x + " * " + x + ");");
          return Status::Ok();
        }));
        out.line("acc = kl_warp_sum_d(acc);");
        out.line("if (lane == 0) " + id + "_a[lr] = 1.0f / sqrtf((float)(acc / " + rn + ".0) + " +
                 flt(n.attrs.f("eps")) + ");");
        break;
      case StatKind::kNorm:
        out.line("float acc = 0.0f;");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) {
          out.line("acc += " + x + ";");
          return Status::Ok();
        }));
        out.line("const float mean = kl_warp_sum(acc) / " + rn + ".0f;");
        out.line("float var = 0.0f;");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) {
          out.line("var += (" + x + " - mean) * (" + x + " - mean);");
          return Status::Ok();
        }));
        out.line("var = kl_warp_sum(var);");
        out.open("if (lane == 0)");
        out.line(id + "_a[lr] = mean;");
        out.line(id + "_b[lr] = 1.0f / sqrtf(var / " + rn + ".0f + " + flt(n.attrs.f("eps")) +
                 ");");
        out.close();
        break;
      case StatKind::kSoftmax: {
        const double scale = n.attrs.f("scale"), softcap = n.attrs.f("softcap");
        auto z = [&](const std::string& x) -> Result<std::string> {
          std::string e =
              softcap > 0 ? flt(softcap) + " * tanhf(" + x + " / " + flt(softcap) + ")" : x;
          e = "(" + e + ") * " + flt(scale);
          if (n.num_operands() > 1) {
            // The mask at the same element (broadcast against the result).
            ElemEmitter em(k, out);
            Idx idx = Idx::affine("m", "e", s->L, s->c);
            const ir::Shape& os = n.result()->type.shape;
            const ir::Shape& ms = n.operand(1)->type.shape;
            std::string mi;
            if (ms == os) {
              KILN_ASSIGN_OR_RETURN(mi, em.value(n.operand(1), idx));
            } else {
              // Same broadcast rule as the element emitter (flat index of the mask).
              std::string f = idx.flat, s2;
              const auto ostr = ir::strides_of(os);
              const auto mstr = ir::strides_of(ms);
              const int ro = int(os.size()), rm = int(ms.size());
              for (int d = 0; d < rm; ++d) {
                if (ms[size_t(d)] == 1) continue;
                const int od = ro - rm + d;
                s2 += (s2.empty() ? "" : " + ") +
                      ("((" + f + " / " + num(ostr[size_t(od)]) + ") % " + num(os[size_t(od)]) +
                       ") * " + num(mstr[size_t(d)]));
              }
              KILN_ASSIGN_OR_RETURN(
                  mi, em.value(n.operand(1), Idx::plain(s2.empty() ? "0" : "(" + s2 + ")")));
            }
            e += " + " + mi;
          }
          return e;
        };
        out.line("float mx = -kl_inf();");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) -> Status {
          KILN_ASSIGN_OR_RETURN(std::string e, z(x));
          out.line("mx = fmaxf(mx, " + e + ");");
          return Status::Ok();
        }));
        out.line("mx = kl_warp_max(mx);");
        out.line("float sum = 0.0f;");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) -> Status {
          KILN_ASSIGN_OR_RETURN(std::string e, z(x));
          out.line("if (mx != -kl_inf()) sum += expf(" + e + " - mx);");
          return Status::Ok();
        }));
        out.line("sum = kl_warp_sum(sum);");
        out.open("if (lane == 0)");
        out.line(id + "_a[lr] = mx;");
        out.line(id + "_b[lr] = sum;");
        out.close();
        break;
      }
      case StatKind::kArgmax: {
        out.line("float best = -kl_inf();");
        out.line("int at = 0;");
        KILN_RETURN_IF_ERROR(loop([&](const std::string& x) {
          out.line("if (" + x + " > best) { best = " + x + "; at = j; }");
          return Status::Ok();
        }));
        out.line("kl_warp_argmax(&best, &at);");
        out.line("if (lane == 0) " + id + "_i[lr] = at;");
        if (s->sink) {
          // The region yields the argmax: write it at its global row.
          for (int yi : yields_of(*k.body, n.result())) {
            const int nops = k.region->num_operands();
            out.line("if (lane == 0 && m < " + num(k.space.M) + ") r" + num(yi) + "[m * " +
                     num(s->rpm) + " + lr % " + num(s->rpm) +
                     "] = " + store_expr(k.region->result(yi)->type.dtype, "at") + ";");
            (void)nops;
          }
        }
        break;
      }
    }
    out.close();
    out.line("KL_SYNC();");
  }
  return Status::Ok();
}

Status close_stats(KernelCtx& k) {
  std::set<std::pair<const ir::Node*, int64_t>> done;
  for (;;) {
    std::vector<std::pair<const ir::Node*, int64_t>> todo;
    for (const auto& [key, s] : k.stats)
      if (!done.count(key)) todo.push_back(key);
    if (todo.empty()) return Status::Ok();
    for (const auto& key : todo) {
      done.insert(key);
      KernelCtx probe = k;  // emit one stage into a scratch buffer to discover nested stats
      std::map<std::pair<const ir::Node*, int64_t>, Stat> one = {{key, k.stats.at(key)}};
      probe.stats = one;
      Code scratch;
      KILN_RETURN_IF_ERROR(emit_stats(probe, scratch, "0"));
      for (auto& [pk, ps] : probe.stats)
        if (!k.stats.count(pk)) {
          Stat s = ps;
          s.id = int(k.stats.size());
          k.stats.emplace(pk, s);
        }
      for (int64_t sh : probe.shifts) k.slot_of(sh);
    }
  }
}

namespace {

// The sinks of a kernel: values written per element (yields that are not aliases, kv_writes).
struct Sink {
  const ir::Node* store = nullptr;   // kv_write
  const ir::Value* value = nullptr;  // yield: the value; kv_write: its x
  int result = -1;                   // yield index
  int64_t L = 0;
};

Status collect_sinks(const KernelCtx& k, std::vector<Sink>& sinks,
                     std::set<const ir::Node*>& argmax_sinks) {
  const ir::Node* y = yield_node(*k.body);
  if (!y) return make_error("region body without yield");
  for (int i = 0; i < y->num_operands(); ++i) {
    const ir::Value* v = y->operand(i);
    if (yield_is_alias(v)) continue;
    if (v->def && v->def->op == ir::Op::Argmax) {
      argmax_sinks.insert(v->def);
      continue;
    }
    Sink s;
    s.value = v;
    s.result = i;
    sinks.push_back(s);
  }
  for (const auto& n : k.body->nodes())
    if (n->op == ir::Op::KvWrite) {
      Sink s;
      s.store = n.get();
      s.value = n->operand(1);
      sinks.push_back(s);
    }
  return Status::Ok();
}

// Writes one sink at element (m, e) of its per-row space.
Status emit_sink(KernelCtx& k, ElemEmitter& em, Code& out, const Sink& s, const Idx& idx) {
  KILN_ASSIGN_OR_RETURN(std::string x, em.value(s.value, idx));
  if (!s.store) {
    const ir::Value* r = k.region->result(s.result);
    out.line("r" + num(s.result) + "[" + idx.flat + "] = " + store_expr(r->type.dtype, x) + ";");
    return Status::Ok();
  }
  // kv_write(cache [S, C, H, D], x [B, T, H, D], pos [B, T], seq [B])
  const ir::Node& n = *s.store;
  uint64_t off = 0;
  const int ci = arg_root(n.operand(0), &off);
  if (ci < 0 || off != 0) return make_error("kv_write into a cache that is not a kernel operand");
  const ir::TensorType& ct = n.operand(0)->type;
  const DType cd = ct.dtype;
  if (cd != DType::F16 && cd != DType::F32 && cd != DType::BF16)
    return make_error("a ", dtype_name(cd), " KV cache is not supported on CUDA (f16, bf16, f32)");
  const ir::TensorType& xt = s.value->type;
  const int64_t S = ct.dim(0), C = ct.dim(1), HD = ct.dim(2) * ct.dim(3), T = xt.dim(1);
  const std::string f = "(" + idx.flat + ")";
  KILN_ASSIGN_OR_RETURN(std::string p, em.value(n.operand(2), Idx::plain(f + " / " + num(HD))));
  KILN_ASSIGN_OR_RETURN(std::string q, em.value(n.operand(3), Idx::plain(f + " / " + num(T * HD))));
  out.line("if (" + p + " >= 0 && " + p + " < " + num(C) + " && " + q + " >= 0 && " + q + " < " +
           num(S) + ") a" + num(ci) + "[((u64)" + q + " * " + num(C) + " + " + p + ") * " +
           num(HD) + " + " + f + " % " + num(HD) + "] = " + store_expr(cd, x) + ";");
  return Status::Ok();
}

int64_t row_count(const ir::Value* v) {
  const int64_t last = v->type.rank() ? v->type.dim(-1) : 1;
  return last ? numel(v) / last : 0;
}

void declare_args(const KernelCtx& k, Code& out) {
  const ir::Node& r = *k.region;
  for (int i = 0; i < r.num_operands(); ++i) {
    const DType t = r.operand(i)->type.dtype;
    const bool writes = [&] {
      for (const auto& n : k.body->nodes())
        if (n->op == ir::Op::KvWrite && arg_root(n->operand(0)) == i) return true;
      return false;
    }();
    const std::string ty = is_quantized(t) ? "u8" : c_type(t);
    out.line((writes ? "" : "const ") + ty + "* __restrict__ a" + num(i) + " = (" +
             (writes ? "" : "const ") + ty + "*)args.p[" + num(i) + "];");
  }
  for (int i = 0; i < int(r.results.size()); ++i) {
    if (yield_is_alias(yield_node(*k.body)->operand(i))) continue;
    const std::string ty = c_type(r.result(i)->type.dtype);
    out.line(ty + "* __restrict__ r" + num(i) + " = (" + ty + "*)args.p[" +
             num(r.num_operands() + i) + "];");
  }
}

std::string header(const std::string& entry, int threads) {
  return "extern \"C\" __global__ void __launch_bounds__(" + num(threads) + ") " + entry +
         "(const KilnArgs args)";
}

}  // namespace

Status build_rows(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out) {
  std::vector<Sink> sinks;
  std::set<const ir::Node*> argmax_sinks;
  KILN_RETURN_IF_ERROR(collect_sinks(k, sinks, argmax_sinks));
  // M: the rows every sink and reduction splits into (gcd of their row counts).
  int64_t M = 0;
  for (const Sink& s : sinks) M = std::gcd(M, row_count(s.value));
  for (const auto& n : k.body->nodes())
    if (n->has(ir::kReduction)) M = std::gcd(M, row_count(n->operand(0)));
  if (M == 0) M = 1;
  int64_t maxL = 1;
  for (const Sink& s : sinks) maxL = std::max(maxL, numel(s.value) / M);
  int64_t MT = 1;
  while (MT * 2 <= M && MT * 2 * maxL <= 1024 && MT < 64) MT *= 2;
  k.space = Space{false, M, MT, 0};
  k.stats.clear();
  // Analysis: run every sink once to discover stats.
  {
    Code scratch;
    KernelCtx probe = k;
    probe.analysis = true;
    for (const Sink& s : sinks) {
      ElemEmitter em(probe, scratch);
      KILN_RETURN_IF_ERROR(
          emit_sink(probe, em, scratch, s, Idx::affine("m", "e", numel(s.value) / M, 0)));
    }
    k.stats = probe.stats;
    for (const ir::Node* a : argmax_sinks) {
      ElemEmitter em(probe, scratch);
      auto r = em.value(a->result(), Idx::plain("m0"));
      if (!r.ok()) return r.error();
      k.stats = probe.stats;
    }
    KILN_RETURN_IF_ERROR(close_stats(k));
    for (auto& [key, s] : k.stats)
      if (argmax_sinks.count(s.node)) s.sink = true;
  }
  out.open(header(entry, kThreads));
  declare_args(k, out);
  out.line("const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;");
  out.line("(void)lane; (void)warp;");
  out.line("const int m0 = blockIdx.x * " + num(MT) + ";");
  out.line("kl_pdl_launch();");
  out.line("kl_pdl_wait();");
  KILN_RETURN_IF_ERROR(emit_stats(k, out, "0"));
  // One loop per distinct L.
  std::map<int64_t, std::vector<const Sink*>> groups;
  for (const Sink& s : sinks) {
    if (numel(s.value) % M) return make_error("a result does not split into ", M, " rows");
    groups[numel(s.value) / M].push_back(&s);
  }
  for (auto& [L, g] : groups) {
    out.open("for (int i = tid; i < " + num(MT * L) + "; i += " + num(kThreads) + ")");
    out.line("const int m = m0 + i / " + num(L) + ", e = i % " + num(L) + ";");
    out.open("if (m < " + num(M) + ")");
    ElemEmitter em(k, out);
    for (const Sink* s : g)
      KILN_RETURN_IF_ERROR(emit_sink(k, em, out, *s, Idx::affine("m", "e", L, 0)));
    out.close();
    out.close();
  }
  out.close();
  spec.kind = KernelKind::kRows;
  spec.grid[0] = uint32_t((M + MT - 1) / MT);
  spec.block = kThreads;
  spec.summary = "rows: M=" + num(M) + " in blocks of " + num(MT) + ", " +
                 num(int64_t(k.stats.size())) + " row stats, " + num(int64_t(sinks.size())) +
                 " sinks";
  return Status::Ok();
}

}  // namespace kiln::cuda::detail
