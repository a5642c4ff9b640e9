// decompose-attention against attention's definition (docs/ir.md), on random data: a tiny
// evaluator runs the decomposed graph op by op, and a direct loop computes attention. (The
// runtime's interpreter gets the same check against its own attention kernel.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <unordered_map>

#include "ir/builder.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Op;
using ir::Value;

using Tensor = std::vector<float>;
const float kNegInf = -std::numeric_limits<float>::infinity();

int64_t numel(const ir::Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<int64_t> unravel(int64_t i, const ir::Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const ir::Shape& s) {
  int64_t i = 0;
  for (size_t d = 0; d < s.size(); ++d) i = i * s[d] + idx[d];
  return i;
}

// Visible keys of a query at position p, as attn_mask and attention define them.
bool visible(int64_t j, int32_t p, int64_t window) {
  if (p < 0) return j == 0;
  return j <= p && (window == 0 || p - j < window);
}

// The ops decompose-attention emits, plus attention itself, as plain loops.
class Eval {
 public:
  std::unordered_map<const Value*, Tensor> vals;

  const Tensor& at(const Value* v) { return vals.at(v); }

  void run(const Graph& g) {
    for (const auto& n : g.nodes()) step(*n);
  }

  void step(const Node& n) {
    if (n.has(ir::kSource) || n.has(ir::kSink)) return;
    const ir::Shape& out = n.result()->type.shape;
    Tensor y(size_t(numel(out)));
    switch (n.op) {
      case Op::Reshape:
        y = at(n.operand(0));
        break;
      case Op::GetRows: {
        const Tensor& t = at(n.operand(0));
        const Tensor& idx = at(n.operand(1));
        int64_t c = n.operand(0)->type.dim(1);
        for (size_t i = 0; i < idx.size(); ++i)
          for (int64_t k = 0; k < c; ++k)
            y[i * size_t(c) + size_t(k)] = t[size_t(int64_t(idx[i]) * c + k)];
        break;
      }
      case Op::Permute: {
        const auto& perm = n.attrs.ints("perm");
        const ir::Shape& in = n.operand(0)->type.shape;
        for (int64_t i = 0; i < numel(out); ++i) {
          auto o = unravel(i, out);
          std::vector<int64_t> src(in.size());
          for (size_t d = 0; d < perm.size(); ++d) src[size_t(perm[d])] = o[d];
          y[size_t(i)] = at(n.operand(0))[size_t(ravel(src, in))];
        }
        break;
      }
      case Op::MulMat: {
        const ir::Shape& xs = n.operand(0)->type.shape;
        const ir::Shape& ws = n.operand(1)->type.shape;
        int64_t k = xs.back();
        for (int64_t i = 0; i < numel(out); ++i) {
          auto o = unravel(i, out);
          std::vector<int64_t> xi(o.begin(), o.end()), wi(ws.size());
          for (size_t d = 0; d + 2 < ws.size(); ++d) wi[d] = o[d] / (xs[d] / ws[d]);
          wi[ws.size() - 2] = o.back();
          double acc = 0;
          for (int64_t kk = 0; kk < k; ++kk) {
            xi.back() = kk;
            wi.back() = kk;
            acc += double(at(n.operand(0))[size_t(ravel(xi, xs))]) *
                   at(n.operand(1))[size_t(ravel(wi, ws))];
          }
          y[size_t(i)] = float(acc);
        }
        break;
      }
      case Op::AttnMask: {
        const Tensor& pos = at(n.operand(0));
        int64_t ctx = n.attrs.i("ctx"), window = n.attrs.i("window");
        for (size_t r = 0; r < pos.size(); ++r)
          for (int64_t j = 0; j < ctx; ++j)
            y[r * size_t(ctx) + size_t(j)] = visible(j, int32_t(pos[r]), window) ? 0.0f : kNegInf;
        break;
      }
      case Op::Softmax: {
        const Tensor& x = at(n.operand(0));
        const ir::Shape& ms = n.operand(1)->type.shape;
        double scale = n.attrs.f("scale"), cap = n.attrs.f("softcap");
        int64_t row = out.back();
        for (int64_t r = 0; r < numel(out) / row; ++r) {
          std::vector<double> z(static_cast<size_t>(row));
          double mx = -INFINITY;
          for (int64_t j = 0; j < row; ++j) {
            int64_t i = r * row + j;
            auto o = unravel(i, out);
            std::vector<int64_t> mi(ms.size());
            for (size_t d = 0; d < ms.size(); ++d)
              mi[d] = ms[d] == 1 ? 0 : o[d + out.size() - ms.size()];
            double s = x[size_t(i)];
            if (cap > 0) s = cap * std::tanh(s / cap);
            z[size_t(j)] = s * scale + at(n.operand(1))[size_t(ravel(mi, ms))];
            mx = std::max(mx, z[size_t(j)]);
          }
          double sum = 0;
          for (double& e : z) sum += (e = mx == -INFINITY ? 0 : std::exp(e - mx));
          for (int64_t j = 0; j < row; ++j)
            y[size_t(r * row + j)] = sum > 0 ? float(z[size_t(j)] / sum) : 0.0f;
        }
        break;
      }
      case Op::Attention:
        y = attention(n);
        break;
      default:
        FAIL() << "evaluator has no " << ir::print_node(n);
    }
    vals[n.result()] = std::move(y);
  }

  Tensor attention(const Node& n) {
    const ir::Shape& qs = n.operand(0)->type.shape;
    const ir::Shape& ks = n.operand(1)->type.shape;
    int64_t B = qs[0], T = qs[1], Hq = qs[2], D = qs[3], C = ks[1], Hkv = ks[2];
    int64_t Dv = n.operand(2)->type.dim(3);
    double scale = n.attrs.f("scale"), cap = n.attrs.f("softcap");
    int64_t window = n.attrs.i("window");
    const Tensor &q = at(n.operand(0)), &kc = at(n.operand(1)), &vc = at(n.operand(2));
    const Tensor &pos = at(n.operand(3)), &seq = at(n.operand(4));
    Tensor y(size_t(B * T * Hq * Dv));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < Hq; ++h) {
          int64_t kvh = h / (Hq / Hkv), s = int64_t(seq[size_t(b)]);
          int32_t p = int32_t(pos[size_t(b * T + t)]);
          std::vector<double> z(size_t(C), -INFINITY);
          double mx = -INFINITY;
          for (int64_t j = 0; j < C; ++j) {
            if (!visible(j, p, window)) continue;
            double dot = 0;
            for (int64_t d = 0; d < D; ++d)
              dot += double(q[size_t(((b * T + t) * Hq + h) * D + d)]) *
                     kc[size_t(((s * C + j) * Hkv + kvh) * D + d)];
            if (cap > 0) dot = cap * std::tanh(dot / cap);
            z[size_t(j)] = dot * scale;
            mx = std::max(mx, z[size_t(j)]);
          }
          double sum = 0;
          for (double& e : z) sum += (e = e == -INFINITY ? 0 : std::exp(e - mx));
          for (int64_t d = 0; d < Dv; ++d) {
            double acc = 0;
            for (int64_t j = 0; j < C; ++j)
              acc += z[size_t(j)] / sum * vc[size_t(((s * C + j) * Hkv + kvh) * Dv + d)];
            y[size_t(((b * T + t) * Hq + h) * Dv + d)] = float(acc);
          }
        }
    return y;
  }
};

struct Case {
  int64_t B, T, Hq, Hkv, D, S, C, window;
  double softcap;
};

TEST(DecomposeAttention, EqualsTheDefinitionOnRandomData) {
  const Case cases[] = {
      {1, 1, 4, 2, 8, 1, 16, 0, 0.0},   // decode, grouped-query
      {2, 3, 4, 4, 8, 3, 12, 0, 0.0},   // prefill, batch, slots
      {1, 4, 6, 2, 16, 2, 20, 5, 0.0},  // sliding window
      {2, 2, 2, 1, 8, 2, 9, 0, 30.0},   // soft-capping, multi-query
  };
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Case& c : cases) {
    Graph g("attn");
    ir::Builder b(g);
    Value* q = b.input("q", {DType::F32, {c.B, c.T, c.Hq, c.D}});
    Value* pos = b.input("pos", {DType::I32, {c.B, c.T}});
    Value* seq = b.input("seq", {DType::I32, {c.B}});
    Value* kc = b.state("cache_k.0", {DType::F16, {c.S, c.C, c.Hkv, c.D}});
    Value* vc = b.state("cache_v.0", {DType::F16, {c.S, c.C, c.Hkv, c.D}});
    Value* a = b.attention(q, kc, vc, pos, seq, 1.0 / std::sqrt(double(c.D)), c.window, c.softcap);
    b.output(a, "a");
    ASSERT_TRUE(b.ok()) << b.status().message();

    Eval ref;
    auto fill = [&](Value* v) {
      Tensor t(size_t(v->type.numel()));
      for (float& x : t) x = u(rng);
      ref.vals[v] = t;
    };
    fill(q);
    fill(kc);
    fill(vc);
    Tensor p(size_t(c.B * c.T)), s(size_t(c.B));
    for (int64_t bb = 0; bb < c.B; ++bb) {
      s[size_t(bb)] = float((bb + 1) % c.S);
      for (int64_t t = 0; t < c.T; ++t)
        p[size_t(bb * c.T + t)] =
            float(bb == 1 && t == 0 ? -1 : (c.C - c.T - 1 - bb) + t);  // one padding row
    }
    ref.vals[pos] = p;
    ref.vals[seq] = s;
    ref.run(g);
    Tensor want = ref.at(a);

    Eval dec;
    dec.vals = ref.vals;
    PassContext ctx;
    ctx.options.verify_each = true;
    Status st = run_pipeline("decompose-attention", g, ctx);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_TRUE(g.nodes_of(Op::Attention).empty());
    dec.run(g);
    const Tensor& got = dec.at(g.nodes_of(Op::Output)[0]->operand(0));
    ASSERT_EQ(got.size(), want.size());
    double max_err = 0;
    for (size_t i = 0; i < got.size(); ++i)
      max_err = std::max(max_err, double(std::fabs(got[i] - want[i])));
    EXPECT_LT(max_err, 1e-5) << "B=" << c.B << " T=" << c.T << " window=" << c.window
                             << " softcap=" << c.softcap;
  }
}

}  // namespace
}  // namespace kiln::passes
