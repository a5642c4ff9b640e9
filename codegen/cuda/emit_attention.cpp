// Attention kernels (decode and prefill): flash-decoding over the KV length.
//
// A block is one (query token, KV head) pair and one split of the visible keys; it holds the
// G = Hq / Hkv query heads that share the KV head. The visible keys [lo, hi] come from the
// position read at run time (and the sliding window); they are cut into NS splits of whole
// 32-key chunks (up to 16 splits), so short contexts use few blocks. Each block runs an online
// softmax over its keys in chunks of KC: a thread per key for the scores, a warp per head for the
// chunk's max and sum, a thread per output element for P·V (act=f16: two passes, see below). With
// one active split the block writes the output; otherwise it writes (max, sum, acc) to scratch and
// the last block to finish (an atomic counter per unit, reset by that block) combines them, so
// attention stays one kernel.
#include <algorithm>

#include "codegen/cuda/emit.h"
#include "ir/printer.h"

namespace kiln::cuda::detail {

Status build_attention(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out) {
  const ir::Node* at = find_op(*k.body, ir::Op::Attention);
  const ir::Node* yn = find_op(*k.body, ir::Op::Yield);
  int result = -1;
  for (int i = 0; i < yn->num_operands(); ++i) {
    uint64_t off = 0;
    const ir::Value* v = yn->operand(i);
    while (v->def && (v->def->op == ir::Op::Reshape)) v = v->def->operand(0);
    if (v == at->result())
      result = i;
    else if (!yield_is_alias(yn->operand(i)))
      return make_error("an attention region may yield only the attention (", ir::print_node(*at),
                        ")");
    (void)off;
  }
  if (result < 0) return make_error("the attention result is not yielded");
  const ir::Value* q = at->operand(0);
  uint64_t koff = 0, voff = 0;
  const int kc = arg_root(at->operand(1), &koff), vc = arg_root(at->operand(2), &voff);
  if (kc < 0 || vc < 0 || koff || voff)
    return make_error("attention caches must be kernel operands (", ir::print_node(*at), ")");
  const ir::TensorType& kt = at->operand(1)->type;
  const ir::TensorType& vt = at->operand(2)->type;
  for (DType t : {kt.dtype, vt.dtype})
    if (t != DType::F16 && t != DType::F32 && t != DType::BF16)
      return make_error("a ", dtype_name(t), " KV cache is not supported on CUDA (f16, bf16, f32)");
  const int64_t B = q->type.dim(0), T = q->type.dim(1), HQ = q->type.dim(2), D = q->type.dim(3);
  const int64_t S = kt.dim(0), C = kt.dim(1), HKV = kt.dim(2), DV = vt.dim(3);
  if (kt.dim(3) != D || HQ % HKV) return make_error("attention shapes do not agree");
  const int64_t G = HQ / HKV, units = B * T * HKV;
  const double scale = at->attrs.f("scale"), softcap = at->attrs.f("softcap");
  const int64_t window = at->attrs.i("window");
  const bool f16 = at->attrs.dtype("act") == DType::F16;
  constexpr int NT = 128, NW = NT / 32, KC = 128;
  int64_t NS = 1;
  // Up to 16 splits of 32-key chunks. Measured on the H200: 32 splits of 8-key chunks made decode
  // attention slower (14.5 against 13.0 us, SmolLM2 at short contexts): the combine and each
  // block's fixed cost outweigh the shorter walk over keys.
  while (NS < 16 && units * NS * 2 <= 264) NS *= 2;
  const int64_t OPT = (G * DV + NT - 1) / NT;
  const int64_t part_floats = units * NS * G * (2 + DV);

  k.space = Space{false, 1, 1, 0};
  k.stats.clear();
  out.open("extern \"C\" __global__ void __launch_bounds__(" + num(NT) + ") " + entry +
           "(const KilnArgs args)");
  const ir::Node& r = *k.region;
  for (int i = 0; i < r.num_operands(); ++i) {
    const DType t = r.operand(i)->type.dtype;
    out.line("const " + c_type(t) + "* __restrict__ a" + num(i) + " = (const " + c_type(t) +
             "*)args.p[" + num(i) + "];");
  }
  out.line("float* __restrict__ out = (float*)args.p[" + num(r.num_operands() + result) + "];");
  const int scratch_arg = r.num_operands() + int(r.results.size());
  out.line("float* __restrict__ part = (float*)args.p[" + num(scratch_arg) + "];");
  out.line("u32* __restrict__ cnt = (u32*)(part + " + num(part_floats) + ");");
  out.line("const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;");
  out.line("const int unit = blockIdx.x, kvh = unit % " + num(HKV) + ", bt = unit / " + num(HKV) +
           ", b = bt / " + num(T) + ", split = blockIdx.y;");
  out.line("(void)b;");
  out.line("kl_pdl_launch();");
  out.line("kl_pdl_wait();");
  out.line("__shared__ float qs[" + num(G * D) + "];");
  out.line("__shared__ float sc[" + num(G * KC) + "];");
  out.line("__shared__ float mrun[" + num(G) + "], lrun[" + num(G) + "], alpha[" + num(G) + "];");
  out.line("__shared__ int last;");
  {
    ElemEmitter em(k, out);
    KILN_ASSIGN_OR_RETURN(std::string p, em.value(at->operand(3), Idx::plain("bt")));
    KILN_ASSIGN_OR_RETURN(std::string s, em.value(at->operand(4), Idx::plain("b")));
    out.line("const int p = " + p + ", s = " + s + ";");
  }
  out.line("int lo = 0, hi = 0;");
  out.line("if (p >= 0) { lo = " +
           (window > 0 ? "max(0, p - " + num(window - 1) + ")" : std::string("0")) +
           "; hi = min(p, " + num(C - 1) + "); }");
  out.line("const int n = (s >= 0 && s < " + num(S) + ") ? hi - lo + 1 : 0;");
  out.line("int chunk = (max(n, 1) + " + num(NS - 1) + ") / " + num(NS) + ";");
  out.line("chunk = (chunk + 31) / 32 * 32;");
  out.line("const int nact = n > 0 ? (n + chunk - 1) / chunk : 0;");
  out.line("if (split >= max(nact, 1)) return;");
  out.open("for (int i = tid; i < " + num(G * D) + "; i += " + num(NT) + ")");
  out.line("const int g = i / " + num(D) + ", d = i % " + num(D) + ";");
  {
    ElemEmitter em(k, out);
    KILN_ASSIGN_OR_RETURN(std::string v,
                          em.value(q, Idx::plain("((bt * " + num(HQ) + " + kvh * " + num(G) +
                                                 " + g) * " + num(D) + " + d)")));
    out.line(std::string("qs[i] = ") + (f16 ? "kl_round_f16(" + v + ")" : v) + ";");
  }
  out.close();
  if (!k.stats.empty())
    return make_error("reductions feeding the attention query are not supported on CUDA");
  out.line("if (tid < " + num(G) + ") { mrun[tid] = -kl_inf(); lrun[tid] = 0.0f; }");
  out.line("float acc[" + num(OPT) + "];");
  out.line("#pragma unroll");
  out.line("for (int t = 0; t < " + num(OPT) + "; ++t) acc[t] = 0.0f;");
  out.line("KL_SYNC();");
  const std::string kty = c_type(kt.dtype), vty = c_type(vt.dtype);
  auto load = [](DType t, const std::string& e) {
    return t == DType::F16 ? "kl_h2f(" + e + ")" : t == DType::BF16 ? "kl_bf2f(" + e + ")" : e;
  };
  out.line("const " + kty + "* kb = a" + num(kc) + " + ((u64)max(s, 0) * " + num(C * HKV) +
           " + kvh) * " + num(D) + ";");
  out.line("const " + vty + "* vb = a" + num(vc) + " + ((u64)max(s, 0) * " + num(C * HKV) +
           " + kvh) * " + num(DV) + ";");
  out.line("const int j0 = lo + split * chunk, j1 = min(lo + n, j0 + chunk);");
  // act=f16 rounds the normalized probabilities (docs/ir.md), so those need the final max and
  // sum: pass 0 finds them, pass 1 recomputes the scores and accumulates P·V. One pass otherwise.
  out.open(std::string("for (int pass = ") + (f16 ? "0" : "1") + "; pass < 2; ++pass)");
  out.open("for (int jc = j0; jc < j1; jc += " + num(KC) + ")");
  out.line("const int nk = min(" + num(KC) + ", j1 - jc);");
  // Scores: a thread per key.
  out.open("for (int t = tid; t < nk; t += " + num(NT) + ")");
  out.line("const " + kty + "* kr = kb + (u64)(jc + t) * " + num(HKV * D) + ";");
  out.line("float sg[" + num(G) + "];");
  out.line("#pragma unroll");
  out.line("for (int g = 0; g < " + num(G) + "; ++g) sg[g] = 0.0f;");
  if (kt.dtype == DType::F16 && D % 8 == 0) {
    out.open("for (int d = 0; d < " + num(D) + "; d += 8)");
    out.line("const uint4 h = kl_ld16(kr + d);");
    out.line("const u32 hw[4] = {h.x, h.y, h.z, h.w};");
    out.line("#pragma unroll");
    out.open("for (int c = 0; c < 8; ++c)");
    out.line("const float kv = kl_h2f((u16)(hw[c >> 1] >> (16 * (c & 1))));");
    out.line("#pragma unroll");
    out.line("for (int g = 0; g < " + num(G) + "; ++g) sg[g] += qs[g * " + num(D) +
             " + d + c] * kv;");
    out.close();
    out.close();
  } else {
    out.open("for (int d = 0; d < " + num(D) + "; ++d)");
    out.line("const float kv = " + load(kt.dtype, "kr[d]") + ";");
    out.line("#pragma unroll");
    out.line("for (int g = 0; g < " + num(G) + "; ++g) sg[g] += qs[g * " + num(D) + " + d] * kv;");
    out.close();
  }
  out.line("#pragma unroll");
  out.open("for (int g = 0; g < " + num(G) + "; ++g)");
  out.line("float z = sg[g];");
  if (softcap > 0) out.line("z = " + flt(softcap) + " * tanhf(z / " + flt(softcap) + ");");
  out.line("sc[g * " + num(KC) + " + t] = z * " + flt(scale) + ";");
  out.close();
  out.close();
  out.line("KL_SYNC();");
  // A warp per head: the chunk's max, the probabilities, the running sum.
  out.open("for (int g = warp; g < " + num(G) + "; g += " + num(NW) + ")");
  if (f16) {
    out.open("if (pass == 1)");
    out.line("const float m = mrun[g], inv = 1.0f / lrun[g];");
    out.line("for (int j = lane; j < nk; j += 32) sc[g * " + num(KC) +
             " + j] = kl_round_f16(expf(sc[g * " + num(KC) + " + j] - m) * inv);");
    out.line("if (lane == 0) alpha[g] = 1.0f;");
    out.line("continue;");
    out.close();
  }
  out.line("float mx = -kl_inf();");
  out.line("for (int j = lane; j < nk; j += 32) mx = fmaxf(mx, sc[g * " + num(KC) + " + j]);");
  out.line("mx = kl_warp_max(mx);");
  out.line("const float mo = mrun[g], mn = fmaxf(mo, mx);");
  out.line("float sum = 0.0f;");
  out.open("for (int j = lane; j < nk; j += 32)");
  out.line("float pj = expf(sc[g * " + num(KC) + " + j] - mn);");
  if (!f16) out.line("sc[g * " + num(KC) + " + j] = pj;");
  out.line("sum += pj;");
  out.close();
  out.line("sum = kl_warp_sum(sum);");
  out.open("if (lane == 0)");
  out.line("const float a = mo == -kl_inf() ? 0.0f : expf(mo - mn);");
  out.line("alpha[g] = a;");
  out.line("lrun[g] = lrun[g] * a + sum;");
  out.line("mrun[g] = mn;");
  out.close();
  out.close();
  out.line("KL_SYNC();");
  // P·V: a thread per output element.
  if (f16) out.open("if (pass == 1)");
  out.line("#pragma unroll");
  out.open("for (int t = 0; t < " + num(OPT) + "; ++t)");
  out.line("const int o = tid + t * " + num(NT) + ";");
  out.open("if (o < " + num(G * DV) + ")");
  out.line("const int g = o / " + num(DV) + ", dv = o % " + num(DV) + ";");
  out.line("float a = acc[t] * alpha[g];");
  // Unrolled so the V loads of several keys are in flight together (same summation order).
  out.line("#pragma unroll 8");
  out.line("for (int j = 0; j < nk; ++j) a += sc[g * " + num(KC) + " + j] * " +
           load(vt.dtype, "vb[(u64)(jc + j) * " + num(HKV * DV) + " + dv]") + ";");
  out.line("acc[t] = a;");
  out.close();
  out.close();
  if (f16) out.close();
  out.line("KL_SYNC();");
  out.close();
  out.close();  // passes
  if (f16) {
    // acc holds normalized sums; the code below divides by the sum (and combines splits
    // weighted by it), so scale back.
    out.line("#pragma unroll");
    out.line("for (int t = 0; t < " + num(OPT) + "; ++t) acc[t] *= lrun[min((tid + t * " + num(NT) +
             ") / " + num(DV) + ", " + num(G - 1) + ")];");
  }
  // One split: normalize and write.
  const std::string dst =
      "out[(bt * " + num(HQ) + " + kvh * " + num(G) + ") * " + num(DV) + " + o]";
  out.open("if (nact <= 1)");
  out.line("#pragma unroll");
  out.open("for (int t = 0; t < " + num(OPT) + "; ++t)");
  out.line("const int o = tid + t * " + num(NT) + ";");
  out.line("if (o < " + num(G * DV) + ") " + dst + " = lrun[o / " + num(DV) +
           "] > 0.0f ? acc[t] / lrun[o / " + num(DV) + "] : 0.0f;");
  out.close();
  out.line("return;");
  out.close();
  // Several: partials, then the last block combines.
  const int64_t stride = G * (2 + DV);
  out.line("float* pp = part + ((u64)unit * " + num(NS) + " + split) * " + num(stride) + ";");
  out.line("#pragma unroll");
  out.open("for (int t = 0; t < " + num(OPT) + "; ++t)");
  out.line("const int o = tid + t * " + num(NT) + ";");
  out.line("if (o < " + num(G * DV) + ") pp[" + num(2 * G) + " + o] = acc[t];");
  out.close();
  out.line("if (tid < " + num(G) + ") { pp[tid] = mrun[tid]; pp[" + num(G) +
           " + tid] = lrun[tid]; }");
  out.line("kl_fence();");
  out.line("KL_SYNC();");
  out.line("if (tid == 0) last = kl_atomic_inc(cnt + unit) == (u32)(nact - 1);");
  out.line("KL_SYNC();");
  out.line("if (!last) return;");
  out.line("kl_fence();");
  out.open("for (int o = tid; o < " + num(G * DV) + "; o += " + num(NT) + ")");
  out.line("const int g = o / " + num(DV) + ";");
  out.line("const float* p0 = part + (u64)unit * " + num(NS * stride) + ";");
  out.line("float mx = -kl_inf();");
  out.line("for (int q = 0; q < nact; ++q) mx = fmaxf(mx, kl_ldcg(p0 + q * " + num(stride) +
           " + g));");
  out.line("float num = 0.0f, den = 0.0f;");
  out.open("for (int q = 0; q < nact; ++q)");
  out.line("const float f = expf(kl_ldcg(p0 + q * " + num(stride) + " + g) - mx);");
  out.line("num += f * kl_ldcg(p0 + q * " + num(stride) + " + " + num(2 * G) + " + o);");
  out.line("den += f * kl_ldcg(p0 + q * " + num(stride) + " + " + num(G) + " + g);");
  out.close();
  out.line(dst + " = den > 0.0f ? num / den : 0.0f;");
  out.close();
  out.line("if (tid == 0) kl_atomic_store0(cnt + unit);");
  out.line("(void)lane;");
  out.close();

  spec.kind = KernelKind::kAttention;
  spec.grid[0] = uint32_t(units);
  spec.grid[1] = uint32_t(NS);
  spec.block = NT;
  spec.scratch_bytes = uint64_t(part_floats) * 4 + uint64_t(units) * 4;
  spec.summary = "attention: " + num(units) + " (token, kv head) units x " + num(NS) + " splits, " +
                 num(G) + " heads of " + num(D) + " per kv head, cache " +
                 std::string(dtype_name(kt.dtype)) + "[" + num(S) + ", " + num(C) + "]" +
                 (window ? ", window " + num(window) : "") + (f16 ? ", act f16" : "");
  return Status::Ok();
}

}  // namespace kiln::cuda::detail
