// Attention kernels (decode and prefill).
//
// Two kernels, chosen at compile time:
//  - ggml order (act=f16, no softcap, head dim a multiple of 16: what the reference interpreter
//    computes exactly as llama.cpp's CPU attention, runtime/interp_attention.cpp): a block per
//    (query token, query head) reproduces ggml_attention_row operation for operation, so the
//    results are bit-identical to the interpreter's. Scores: a thread per key, holding ggml's
//    lanes (ggml_vec_dot_f16's 4 x 16 for one token in the batch, tinyBLAS's 16 otherwise) as
//    fused multiply-add chains in registers, reduced in ggml's pairwise order. Softmax: ggml's
//    expf, sums per aligned group of 16 cache cells by the 16-lane butterfly, the group sums added
//    in f64 in cell order by one thread, probabilities rounded to f16. P·V: a dot product over
//    the padded cache per output element: R threads per element, each owning L / R of its lanes
//    (L = 64 or 16) and running their chains in cell order; the lanes are then combined as ggml
//    does. Scores live in shared memory (or in the kernel's scratch when the context is too long).
//    Decode (few units) adds split blocks per unit past 256 visible keys: score blocks over slices
//    of the keys, one softmax block, P·V blocks over slices of the outputs, ordered by tickets in
//    the same kernel (see build_ggml). No FMA chain is ever split, so the order stays ggml's.
//  - flash-decoding (everything else: softcap, act=f32, head dims not a multiple of 16): see
//    build_flash.
#include <algorithm>
#include <functional>

#include "codegen/cuda/emit.h"
#include "ir/printer.h"

namespace kiln::cuda::detail {
namespace {

// What both kernels need of the attention node.
struct Attn {
  const ir::Node* at = nullptr;
  int result = -1;  // which yielded value is the attention
  const ir::Value* q = nullptr;
  int kc = -1, vc = -1;  // the caches' operand indices
  DType kdt = DType::F16, vdt = DType::F16;
  int64_t B = 0, T = 0, HQ = 0, D = 0, S = 0, C = 0, HKV = 0, DV = 0, G = 0;
  double scale = 0, softcap = 0;
  int64_t window = 0;
  bool f16 = false;
};

std::string load_elem(DType t, const std::string& e) {
  return t == DType::F16 ? "kl_h2f(" + e + ")" : t == DType::BF16 ? "kl_bf2f(" + e + ")" : e;
}

// The kernel's prologue shared by both builders: operand pointers, the output, the visible range
// [lo, hi] of query row bt (from the position read at run time) and the sequence slot s.
Status emit_args(KernelCtx& k, const Attn& a, Code& out) {
  const ir::Node& r = *k.region;
  for (int i = 0; i < r.num_operands(); ++i) {
    const DType t = r.operand(i)->type.dtype;
    out.line("const " + c_type(t) + "* __restrict__ a" + num(i) + " = (const " + c_type(t) +
             "*)args.p[" + num(i) + "];");
  }
  out.line("float* __restrict__ out = (float*)args.p[" + num(r.num_operands() + a.result) + "];");
  return Status::Ok();
}

Status emit_visible(KernelCtx& k, const Attn& a, Code& out) {
  {
    ElemEmitter em(k, out);
    KILN_ASSIGN_OR_RETURN(std::string p, em.value(a.at->operand(3), Idx::plain("bt")));
    KILN_ASSIGN_OR_RETURN(std::string s, em.value(a.at->operand(4), Idx::plain("b")));
    out.line("const int p = " + p + ", s = " + s + ";");
  }
  out.line("int lo = 0, hi = 0;");
  out.line("if (p >= 0) { lo = " +
           (a.window > 0 ? "max(0, p - " + num(a.window - 1) + ")" : std::string("0")) +
           "; hi = min(p, " + num(a.C - 1) + "); }");
  return Status::Ok();
}

// ggml order. Leaves *built false (and emits nothing) where the scores would need more scratch
// than is sensible (very long contexts in a big prefill): the flash kernel runs then.
//
// Few (token, head) units (decode) also get split blocks: grid.y = NA + NC blocks per unit, which
// take a ticket from a per-unit counter when they start. Up to SPLIT_MIN visible keys, block 0
// does everything (shared memory, as with one block per unit). Beyond, tickets 0..NA-1 compute the
// scores of a slice of the keys each into scratch; the last of them to finish runs the softmax
// over all keys there and raises the unit's flag; tickets NA.. wait for the flag, then each
// computes the P·V of a slice of the output elements. A block waits only for blocks with smaller
// tickets, which started before it and are resident, so the wait cannot deadlock (the emulator,
// which runs blocks one after the other, finds the flag raised). The last block to finish zeroes
// the unit's counters for the next launch.
Status build_ggml(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out,
                  const Attn& a, bool* built) {
  *built = false;
  constexpr int64_t NT = 256, NW = NT / 32;
  // ggml's f16 products: ggml_vec_dot_f16 (64 lanes) for one real token in the batch, tinyBLAS
  // (16 lanes) for more. Padding rows (pos < 0) are not in llama.cpp's batch, so a decode step of
  // several sequences (some of which may have stopped) holds both orders and picks by the run's
  // real token count (`ntok`). Prefill kernels (T >= 2) keep tinyBLAS's alone: the context never
  // sends one real token through a prefill bucket (plan_chunks), and the 64-lane scores would cost
  // every prefill launch registers (~160 against ~70) for it.
  const bool dual = a.T == 1 && a.B >= 2;
  bool gemv = a.B * a.T < 2;
  int64_t L = 0, NP = 0;  // lanes; score elements in the lane chains
  std::string lanes;
  auto set_order = [&](bool one_token) {
    gemv = one_token;
    L = gemv ? 64 : 16;
    NP = gemv ? a.D / 64 * 64 : a.D;  // vec_dot_f16 adds the rest (D % 64) in f64 one by one
    lanes = gemv ? "kl_vec_dot_f16_lanes" : "kl_reduce16_arr";
  };
  const int64_t units = a.B * a.T * a.HQ;
  const int64_t NG = a.C / 16 + 2;  // aligned groups of 16 cells a visible range can touch
  // Threads per P·V output element for n outputs per block: each owns L / R lanes.
  auto threads_per_output = [&](int64_t n, int64_t lanes_n) {
    int64_t r = 1;
    while (r * 2 <= lanes_n && r * 2 * n <= NT) r *= 2;
    return r;
  };
  // Split blocks: about 256 blocks in all, a third of them for P·V (slices of >= 16 outputs).
  int64_t NA = 0, NC = 0;
  constexpr int64_t SPLIT_MIN = 256;
  if (units * 3 <= 256 && a.C > SPLIT_MIN) {
    const int64_t nb = std::min<int64_t>(256 / units, 24);
    NC = 1;
    while (NC * 2 <= nb / 3 && a.DV % (NC * 2) == 0 && a.DV / (NC * 2) >= 16) NC *= 2;
    NA = nb - NC;
  }
  const bool split = NA > 0;
  const int64_t DVS = split ? a.DV / NC : a.DV;  // outputs per P·V block in the split path
  constexpr int64_t kSmem = 47 * 1024;           // static shared memory, with room for the rest
  const int64_t fixed = (a.D + NG + NW + 1) * 4 + 8;
  // Scores of the one-block path: in shared memory when they fit (always when split: at most
  // SPLIT_MIN keys take that path), else in scratch.
  const int64_t CS = split ? SPLIT_MIN : a.C;
  const bool sc_smem = fixed + CS * 4 <= kSmem;
  // The split path's softmax block stages all scores in shared memory when they fit.
  const bool stage = split && fixed + a.C * 4 <= kSmem;
  // Per order: threads per output of the one-block path (R) and of the split P·V blocks (RS),
  // and the shared pool it needs; the kernel's pool serves both orders.
  struct Plan {
    int64_t R, RS, pool;
  };
  auto plan_of = [&](int64_t lanes_n) {
    Plan pl{threads_per_output(a.DV, lanes_n), threads_per_output(DVS, lanes_n), 0};
    auto pool_of = [&](int64_t r) {
      return std::max<int64_t>({sc_smem ? CS : 0, stage ? a.C : 0, r > 1 ? lanes_n * a.DV : 0,
                                split && pl.RS > 1 ? lanes_n * DVS : 0, 1});
    };
    while (pl.R > 1 && fixed + pool_of(pl.R) * 4 > kSmem) pl.R /= 2;
    pl.pool = pool_of(pl.R);
    return pl;
  };
  const Plan plan64 = plan_of(64), plan16 = plan_of(16);
  const int64_t POOL = std::max(dual || gemv ? plan64.pool : 0, dual || !gemv ? plan16.pool : 0);
  const uint64_t sc_floats = sc_smem && !split ? 0 : uint64_t(units * a.C);
  const uint64_t scratch = sc_floats * 4 + (split ? uint64_t(units) * 16 : 0);
  if (fixed + POOL * 4 > kSmem || scratch > (uint64_t(256) << 20)) return Status::Ok();
  *built = true;

  const std::string kty = c_type(a.kdt), vty = c_type(a.vdt);
  const int64_t KS = a.HKV * a.D, VS = a.HKV * a.DV;  // cache row strides (elements)
  k.space = Space{false, 1, 1, 0};
  k.stats.clear();

  // q, rounded to f16, into shared memory.
  auto emit_q = [&]() -> Status {
    out.open("for (int i = tid; i < " + num(a.D) + "; i += " + num(NT) + ")");
    ElemEmitter em(k, out);
    KILN_ASSIGN_OR_RETURN(std::string v,
                          em.value(a.q, Idx::plain("(unit * " + num(a.D) + " + i)")));
    out.line("qs[i] = kl_round_f16(" + v + ");");
    out.close();
    if (!k.stats.empty())
      return make_error("reductions feeding the attention query are not supported on CUDA");
    out.line("KL_SYNC();");
    return Status::Ok();
  };
  // Scores of keys [j0, j1) into sc: a thread per key, ggml's lanes in registers.
  auto emit_scores = [&](const std::string& j0, const std::string& j1) {
    out.open("for (int j = " + j0 + " + tid; j < " + j1 + "; j += " + num(NT) + ")");
    out.line("const " + kty + "* kr = kb + (u64)(lo + j) * " + num(KS) + ";");
    if (NP > 0) {
      out.line("float acc[" + num(L) + "];");
      out.line("#pragma unroll");
      out.line("for (int i = 0; i < " + num(L) + "; ++i) acc[i] = 0.0f;");
      out.line("#pragma unroll 1");
      out.open("for (int c = 0; c < " + num(NP) + "; c += " + num(L) + ")");
      if (a.kdt == DType::F16) {
        out.line("#pragma unroll");
        out.open("for (int e = 0; e < " + num(L) + "; e += 8)");
        out.line("const uint4 hv = kl_ld16(kr + c + e);");
        out.line("const u32 hw[4] = {hv.x, hv.y, hv.z, hv.w};");
        out.line("#pragma unroll");
        out.line(
            "for (int i = 0; i < 8; ++i) acc[e + i] = fmaf(kl_h2f((u16)(hw[i >> 1] >> (16 * (i "
            "& 1)))), qs[c + e + i], acc[e + i]);");
        out.close();
      } else {
        out.line("#pragma unroll");
        out.line("for (int i = 0; i < " + num(L) + "; ++i) acc[i] = fmaf(" +
                 load_elem(a.kdt, "kr[c + i]") + ", qs[c + i], acc[i]);");
      }
      out.close();
    }
    if (gemv) {
      out.line(std::string("double sum = ") +
               (NP > 0 ? "(double)kl_vec_dot_f16_lanes(acc)" : "0.0") + ";");
      if (NP < a.D)
        out.line("for (int d = " + num(NP) + "; d < " + num(a.D) + "; ++d) sum += (double)(" +
                 load_elem(a.kdt, "kr[d]") + " * qs[d]);");
      out.line("sc[j] = (float)sum * " + flt(a.scale) + ";");
    } else {
      out.line("sc[j] = kl_reduce16_arr(acc) * " + flt(a.scale) + ";");
    }
    out.close();
  };
  // The softmax over sc[0, m), in place: probabilities rounded to f16. LD reads sc.
  auto emit_softmax = [&](const std::string& sc,
                          const std::function<std::string(const std::string&)>& LD) {
    out.line("float mx = -kl_inf();");
    out.line("#pragma unroll 4");
    out.line("for (int j = tid; j < m; j += " + num(NT) + ") mx = fmaxf(mx, " + LD(sc + " + j") +
             ");");
    out.line("mx = kl_warp_max(mx);");
    out.line("if (lane == 0) red[warp] = mx;");
    out.line("KL_SYNC();");
    out.line("mx = red[0];");
    out.line("for (int w = 1; w < " + num(NW) + "; ++w) mx = fmaxf(mx, red[w]);");
    // A thread per cell of the aligned groups of 16 that hold [lo, hi].
    out.line("const int lo16 = lo & ~15, ng = ((hi - lo16) >> 4) + 1;");
    out.open("for (int i0 = 0; i0 < ng * 16; i0 += " + num(NT) + ")");
    out.line("const int i = i0 + tid, cell = lo16 + i;");
    out.line("float e = 0.0f;");
    out.line("if (cell >= lo && cell <= hi) { e = kl_ggml_expf(" + LD(sc + " + (cell - lo)") +
             " - mx); " + sc + "[cell - lo] = e; }");
    out.line("const float gs = kl_reduce16(e);");
    out.line("if ((tid & 15) == 0 && i < ng * 16) gsum[i >> 4] = gs;");
    out.close();
    out.line("KL_SYNC();");
    out.open("if (tid == 0)");  // f64, in cell order
    out.line("double sum = 0.0;");
    out.line("for (int g = 0; g < ng; ++g) sum += (double)gsum[g];");
    out.line("inv_s = (float)(1.0 / sum);");
    out.close();
    out.line("KL_SYNC();");
    out.line("const float inv = inv_s;");
    out.line("#pragma unroll 4");
    out.line("for (int j = tid; j < m; j += " + num(NT) + ") " + sc + "[j] = kl_round_f16(" +
             LD(sc + " + j") + " * inv);");
  };
  // P·V of outputs [d0, d0 + n) with r threads each, over the padded cache: cell c is lane
  // c % L of the chunk c - c % L; each thread's chains run over its lanes in cell order. Ends
  // with the block synchronized.
  auto emit_pv = [&](const std::function<std::string(const std::string&)>& LD,
                     const std::string& d0, int64_t n, int64_t r) {
    const int64_t lr = L / r, U = std::max<int64_t>(1, std::min<int64_t>(16, 64 / lr));
    if (r == 1) {  // a thread per output (or several, one after the other)
      out.open("for (int d = " + d0 + " + tid; d < " + d0 + " + " + num(n) + "; d += " + num(NT) +
               ")");
      out.line("const int r = 0;");
    } else {
      out.open("");
      out.line("const int r = tid / " + num(n) + ", d = " + d0 + " + tid % " + num(n) + ";");
    }
    out.line("float acc[" + num(lr) + "];");
    out.line("#pragma unroll");
    out.line("for (int i = 0; i < " + num(lr) + "; ++i) acc[i] = 0.0f;");
    auto chunk = [&](bool full) {
      out.line("const int c0 = base + r * " + num(lr) + ";");
      out.line("const " + vty + "* vr = vb + (u64)c0 * " + num(VS) + " + d;");
      out.line("#pragma unroll");
      if (full) {
        out.line("for (int i = 0; i < " + num(lr) + "; ++i) acc[i] = fmaf(" +
                 load_elem(a.vdt, "vr[i * " + num(VS) + "]") + ", " + LD("sc + (c0 - lo + i)") +
                 ", acc[i]);");
      } else {
        out.line("for (int i = 0; i < " + num(lr) + "; ++i) if (c0 + i >= lo && c0 + i <= hi) " +
                 "acc[i] = fmaf(" + load_elem(a.vdt, "vr[i * " + num(VS) + "]") + ", " +
                 LD("sc + (c0 + i - lo)") + ", acc[i]);");
      }
    };
    out.open(r == 1 ? std::string("") : "if (tid < " + num(r * n) + ")");
    out.line("int base = lo & ~" + num(L - 1) + ";");
    out.open("if (base < lo || base + " + num(L - 1) + " > hi)");  // a partial first chunk
    chunk(false);
    out.line("base += " + num(L) + ";");
    out.close();
    out.line("#pragma unroll " + num(U));
    out.open("for (; base + " + num(L - 1) + " <= hi; base += " + num(L) + ")");
    chunk(true);
    out.close();
    out.open("if (base <= hi)");  // a partial last chunk
    chunk(false);
    out.close();
    out.close();
    if (r == 1) {
      out.line("y[d] = " + lanes + "(acc);");
      out.close();
      out.line("KL_SYNC();");
      return;
    } else {
      out.line("KL_SYNC();");  // the lanes' buffer may overlay the probabilities
      out.line("float* buf = pool;");
      out.line("if (tid < " + num(r * n) + ") for (int i = 0; i < " + num(lr) + "; ++i) buf[(r * " +
               num(lr) + " + i) * " + num(n) + " + d - (" + d0 + ")] = acc[i];");
      out.line("KL_SYNC();");
      out.open("if (tid < " + num(n) + ")");
      out.line("float l[" + num(L) + "];");
      out.line("#pragma unroll");
      out.line("for (int i = 0; i < " + num(L) + "; ++i) l[i] = buf[i * " + num(n) + " + tid];");
      out.line("y[" + d0 + " + tid] = " + lanes + "(l);");
      out.close();
    }
    out.close();
  };
  auto plain = [](const std::string& p) { return "*(" + p + ")"; };
  auto ldcg = [](const std::string& p) { return "kl_ldcg(" + p + ")"; };

  out.open("extern \"C\" __global__ void __launch_bounds__(" + num(NT) + ") " + entry +
           "(const KilnArgs args)");
  KILN_RETURN_IF_ERROR(emit_args(k, a, out));
  const ir::Node& rg = *k.region;
  if (scratch) {
    out.line("float* __restrict__ part = (float*)args.p[" +
             num(rg.num_operands() + int(rg.results.size())) + "];");
  }
  out.line("const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;");
  out.line("const int unit = blockIdx.x, h = unit % " + num(a.HQ) + ", bt = unit / " + num(a.HQ) +
           ", b = bt / " + num(a.T) + ", kvh = h / " + num(a.G) + ";");
  out.line("(void)b;");
  out.line("kl_pdl_launch();");
  out.line("kl_pdl_wait();");
  if (dual) {  // the real token count (KernelSpec::token_count); 0: every row
    spec.token_count = true;
    out.line("const int ntok_run = *(const int*)args.p[" +
             num(rg.num_operands() + int(rg.results.size()) + (scratch ? 1 : 0)) + "];");
    out.line("const int ntok = ntok_run > 0 ? ntok_run : " + num(a.B * a.T) + ";");
  }
  out.line("__shared__ float qs[" + num(a.D) + "];");
  out.line("__shared__ float pool[" + num(POOL) + "];");
  out.line("__shared__ float gsum[" + num(NG) + "];");
  out.line("__shared__ float red[" + num(NW) + "];");
  out.line("__shared__ float inv_s;");
  KILN_RETURN_IF_ERROR(emit_visible(k, a, out));
  out.line("float* __restrict__ y = out + (u64)unit * " + num(a.DV) + ";");
  // An invalid slot or an empty range: zeros (the interpreter's product over no cell).
  out.open("if (s < 0 || s >= " + num(a.S) + " || hi < lo)");
  out.line(std::string(split ? "if (blockIdx.y == 0) " : "") + "for (int d = tid; d < " +
           num(a.DV) + "; d += " + num(NT) + ") y[d] = 0.0f;");
  out.line("return;");
  out.close();
  out.line("const int m = hi - lo + 1;");
  out.line("const " + kty + "* kb = a" + num(a.kc) + " + ((u64)s * " + num(a.C * a.HKV) +
           " + kvh) * " + num(a.D) + ";");
  out.line("const " + vty + "* vb = a" + num(a.vc) + " + ((u64)s * " + num(a.C * a.HKV) +
           " + kvh) * " + num(a.DV) + ";");

  // The rest in one order, or in both, chosen by the run's real token count.
  auto emit_order = [&](bool one_token) -> Status {
    set_order(one_token);
    const Plan& pl = one_token ? plan64 : plan16;
    // One block per unit.
    if (split) {
      out.open("if (m <= " + num(SPLIT_MIN) + ")");
      out.line("if (blockIdx.y != 0) return;");
    } else {
      out.open("");
    }
    out.line(std::string("float* __restrict__ sc = ") +
             (sc_smem ? "pool" : "part + (u64)unit * " + num(a.C)) + ";");
    KILN_RETURN_IF_ERROR(emit_q());
    emit_scores("0", "m");
    out.line("KL_SYNC();");
    emit_softmax("sc", plain);
    out.line("KL_SYNC();");
    emit_pv(plain, "0", a.DV, pl.R);
    if (split) out.line("return;");
    out.close();

    if (split) {
      out.line("__shared__ u32 role;");
      out.line("__shared__ int last;");
      out.line("float* __restrict__ sc = part + (u64)unit * " + num(a.C) + ";");
      out.line("u32* uc = (u32*)(part + " + num(units * a.C) + ") + unit * 4;");
      out.line("if (tid == 0) role = kl_atomic_inc(uc);");
      out.line("KL_SYNC();");
      out.line("const int t = (int)role;");
      out.open("if (t < " + num(NA) + ")");
      out.line("const int na = min(" + num(NA) + ", (m + 31) / 32), chunk = (m + na - 1) / na;");
      out.open("if (t < na)");
      KILN_RETURN_IF_ERROR(emit_q());
      emit_scores("t * chunk", "min(m, t * chunk + chunk)");
      out.close();
      out.line("kl_fence();");
      out.line("KL_SYNC();");
      out.line("if (tid == 0) last = kl_atomic_inc(uc + 1) == " + num(NA - 1) + "u;");
      out.line("KL_SYNC();");
      out.open("if (last)");
      out.line("kl_fence();");
      if (stage) {  // through shared memory
        out.line("#pragma unroll 4");
        out.line("for (int j = tid; j < m; j += " + num(NT) + ") pool[j] = kl_ldcg(sc + j);");
        out.line("KL_SYNC();");
        emit_softmax("pool", plain);
        out.line("for (int j = tid; j < m; j += " + num(NT) + ") sc[j] = pool[j];");
      } else {
        emit_softmax("sc", ldcg);
      }
      out.line("kl_fence();");
      out.line("KL_SYNC();");
      out.line("if (tid == 0) kl_atomic_inc(uc + 2);");  // the flag
      out.close();
      out.close();
      out.open("else");
      out.line("if (tid == 0) while (kl_ld_volatile(uc + 2) == 0u) {}");
      out.line("kl_fence();");
      out.line("KL_SYNC();");
      emit_pv(ldcg, "(t - " + num(NA) + ") * " + num(DVS), DVS, pl.RS);
      out.close();
      out.line("KL_SYNC();");
      out.open("if (tid == 0 && kl_atomic_inc(uc + 3) == " + num(NA + NC - 1) + "u)");
      out.line("for (int i = 0; i < 4; ++i) kl_atomic_store0(uc + i);");
      out.close();
    }
    return Status::Ok();
  };
  if (dual) {
    out.open("if (ntok < 2)");
    KILN_RETURN_IF_ERROR(emit_order(true));
    out.close();
    out.open("else");
    KILN_RETURN_IF_ERROR(emit_order(false));
    out.close();
  } else {
    KILN_RETURN_IF_ERROR(emit_order(a.B * a.T < 2));
  }
  out.line("(void)lane;");
  out.close();

  spec.kind = KernelKind::kAttention;
  spec.grid[0] = uint32_t(units);
  spec.grid[1] = uint32_t(split ? NA + NC : 1);
  spec.block = NT;
  spec.scratch_bytes = scratch;
  spec.summary = "attention (ggml order, " +
                 std::string(dual   ? "vec_dot_f16 or tinyBLAS by real tokens"
                             : gemv ? "vec_dot_f16"
                                    : "tinyBLAS") +
                 "): " + num(units) + " (token, head) units" +
                 (split ? " x " + num(NA) + " score + " + num(NC) + " P·V blocks beyond " +
                              num(SPLIT_MIN) + " keys"
                        : std::string()) +
                 ", heads of " + num(a.D) + ", P·V " + num((gemv ? plan64 : plan16).R) +
                 " threads per output, cache " + std::string(dtype_name(a.kdt)) + "[" + num(a.S) +
                 ", " + num(a.C) + "]" + (a.window ? ", window " + num(a.window) : "") +
                 (sc_smem ? "" : ", scores in scratch");
  return Status::Ok();
}

// Flash-decoding: a block is one (query token, KV head) pair and one split of the visible keys;
// it holds the G = Hq / Hkv query heads that share the KV head. The visible keys [lo, hi] come
// from the position read at run time (and the sliding window); they are cut into NS splits of
// whole 32-key chunks (up to 16 splits), so short contexts use few blocks. Each block runs an
// online softmax over its keys in chunks of KC: a thread per key for the scores, a warp per head
// for the chunk's max and sum, a thread per output element for P·V (act=f16: two passes, see
// below). With one active split the block writes the output; otherwise it writes (max, sum, acc)
// to scratch and the last block to finish (an atomic counter per unit, reset by that block)
// combines them, so attention stays one kernel.
Status build_flash(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out,
                   const Attn& a) {
  const ir::Node* at = a.at;
  const ir::Value* q = a.q;
  const int result = a.result, kc = a.kc, vc = a.vc;
  const int64_t B = a.B, T = a.T, HQ = a.HQ, D = a.D, S = a.S, C = a.C, HKV = a.HKV, DV = a.DV;
  const int64_t G = a.G, units = B * T * HKV;
  const double scale = a.scale, softcap = a.softcap;
  const int64_t window = a.window;
  const bool f16 = a.f16;
  const DType kdt = a.kdt, vdt = a.vdt;
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
  const std::string kty = c_type(kdt), vty = c_type(vdt);
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
  if (kdt == DType::F16 && D % 8 == 0) {
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
    out.line("const float kv = " + load(kdt, "kr[d]") + ";");
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
           load(vdt, "vb[(u64)(jc + j) * " + num(HKV * DV) + " + dv]") + ";");
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
                 std::string(dtype_name(kdt)) + "[" + num(S) + ", " + num(C) + "]" +
                 (window ? ", window " + num(window) : "") + (f16 ? ", act f16" : "");
  return Status::Ok();
}

}  // namespace

Status build_attention(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out) {
  Attn a;
  a.at = find_op(*k.body, ir::Op::Attention);
  const ir::Node* at = a.at;
  const ir::Node* yn = find_op(*k.body, ir::Op::Yield);
  for (int i = 0; i < yn->num_operands(); ++i) {
    const ir::Value* v = yn->operand(i);
    while (v->def && (v->def->op == ir::Op::Reshape)) v = v->def->operand(0);
    if (v == at->result())
      a.result = i;
    else if (!yield_is_alias(yn->operand(i)))
      return make_error("an attention region may yield only the attention (", ir::print_node(*at),
                        ")");
  }
  if (a.result < 0) return make_error("the attention result is not yielded");
  a.q = at->operand(0);
  uint64_t koff = 0, voff = 0;
  a.kc = arg_root(at->operand(1), &koff);
  a.vc = arg_root(at->operand(2), &voff);
  if (a.kc < 0 || a.vc < 0 || koff || voff)
    return make_error("attention caches must be kernel operands (", ir::print_node(*at), ")");
  const ir::TensorType& kt = at->operand(1)->type;
  const ir::TensorType& vt = at->operand(2)->type;
  for (DType t : {kt.dtype, vt.dtype})
    if (t != DType::F16 && t != DType::F32 && t != DType::BF16)
      return make_error("a ", dtype_name(t), " KV cache is not supported on CUDA (f16, bf16, f32)");
  a.kdt = kt.dtype;
  a.vdt = vt.dtype;
  a.B = a.q->type.dim(0), a.T = a.q->type.dim(1), a.HQ = a.q->type.dim(2), a.D = a.q->type.dim(3);
  a.S = kt.dim(0), a.C = kt.dim(1), a.HKV = kt.dim(2), a.DV = vt.dim(3);
  if (kt.dim(3) != a.D || a.HQ % a.HKV) return make_error("attention shapes do not agree");
  a.G = a.HQ / a.HKV;
  a.scale = at->attrs.f("scale");
  a.softcap = at->attrs.f("softcap");
  a.window = at->attrs.i("window");
  a.f16 = at->attrs.dtype("act") == DType::F16;
  // Where the interpreter reproduces llama.cpp exactly (runtime/interp_attention.cpp), so do we.
  if (a.f16 && a.softcap == 0 && a.D % 16 == 0) {
    bool built = false;
    KILN_RETURN_IF_ERROR(build_ggml(k, entry, spec, out, a, &built));
    if (built) return Status::Ok();
  }
  return build_flash(k, entry, spec, out, a);
}

}  // namespace kiln::cuda::detail
