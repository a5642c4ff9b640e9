// xbyak tiles for the K-quants Q4_K and Q6_K (weights as stored) against Q8_K activations.
//
// A super-block of 256 elements has one f16 scale (plus Q4_K's f16 min scale) and small integer
// sub-block scales, so its whole dot product is an integer: per (row, row) pair the generator
// keeps one int32 accumulator per super-block, fed by vpmaddubsw (levels x activations, pairs in
// int16; at most 2*63*127) and vpdpwssd with the sub-block scales spread over int16 lanes (or
// vpmaddwd + vpaddd without VNNI). The offsets (Q4_K's mins, Q6_K's -32) come from the
// activations' per-16 sums, one vpmaddwd per pair and super-block. Float work happens once per
// super-block; its accumulators live in the stack frame.
#if defined(KILN_WITH_XBYAK)

#include <stdexcept>

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {
namespace {

class KQuantGen final : public TileGen {
 public:
  KQuantGen(Isa isa, DType t)
      : TileGen(isa_cfg(isa), size_t(2) << 20), q6_(t == DType::Q6_K), bs_(q6_ ? 210 : 144) {}

  void build(TileSet& ts) override {
    emit_constants();
    ts.blocks_per_step = 1;
    ts.mr_max = kMaxMr;
    for (int mr = 1; mr <= kMaxMr; ++mr) {
      const int cap = mr == 1 ? kMaxNr : 4;
      int nr = cap;
      while (nr > 1 && 3 + 2 * nr + mr * nr > isa_.nregs()) --nr;
      ts.nr_max[mr] = nr;
      for (int n = 1; n <= nr; ++n) {
        align(16);
        ts.fn[mr][n] = reinterpret_cast<TileFn>(const_cast<uint8_t*>(getCurr()));
        gen_tile(mr, n);
      }
    }
  }

 private:
  static constexpr int kT = 0, kT2 = 1, kC = 2;  // scratch, scratch, index (512) or 0x0F (256)
  int steps() const { return isa_.avx512 ? 4 : 8; }
  int rq(int n) const { return 3 + 2 * n; }
  int rsc(int n) const { return 4 + 2 * n; }
  int ri(int m, int n) const { return 3 + 2 * nr_ + m * nr_ + n; }

  int slot_sc(int n) const { return kFrameData + 64 * n; }        // int16 scales (64 B)
  int slot_mn(int n) const { return kFrameData + 512 + 32 * n; }  // Q4_K mins, each twice
  int slot_dd(int n) const { return kFrameData + 768 + 16 * n; }  // f32 d, dmin
  int slot_acc(int m, int n) const { return kFrameData + 1024 + 64 * (m * kMaxNr + n); }

  void emit_constants() {
    align(64);
    bytes64(c0F_, 0x0F);
    bytes64(c30_, 0x30);
    // vpermw indices, one 32-word row per 64-element step: Q4_K has two 32-element sub-blocks
    // per step (16 words each), Q6_K four 16-element ones (8 words each).
    L(idx_q4k_);
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < 32; ++i) dw(2 * s + i / 16);
    L(idx_q6k_);
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < 32; ++i) dw(4 * s + i / 8);
    // Q6_K high bits to bits 4-5: even steps take qh bits 0-1 (low half) and 2-3 (high half),
    // odd steps bits 4-5 and 6-7.
    L(cnt_even_);
    for (int i = 0; i < 32; ++i) dw(i < 16 ? 4 : 2);
    L(cnt_odd_);
    for (int i = 0; i < 32; ++i) dw(i < 16 ? 0 : 2);
    L(shuf_pair_);  // 256-bit Q6_K: words [s0 x8 | s1 x8] from a broadcast dword {s0, s1}
    for (int i = 0; i < 32; ++i) db(i < 16 ? (i & 1) : 2 + (i & 1));
  }

  void gen_tile(int mr, int nr) {
    mr_ = mr, nr_ = nr;
    if (ri(mr - 1, nr - 1) >= isa_.nregs())
      throw std::logic_error("microkernels: k-quant tile ran out of registers");
    prologue(1024 + 64 * kMaxMr * kMaxNr);
    if (!isa_.avx512) vmovdqu(Ymm(kC), ptr[rip + c0F_]);
    Xbyak::Label tile_loop, kloop, kdone;
    L(tile_loop);
    tile_begin(nr);
    vzero(kT);
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) vmovups(ptr[rsp + slot_acc(m, n)], vr(kT));
    test(rK, rK);
    jz(kdone, T_NEAR);
    L(kloop);
    prefetch_next(nr * bs_);
    for (int n = 0; n < nr; ++n) q6_ ? prep_q6k(n) : prep_q4k(n);
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) vzero(ri(m, n));
    for (int s = 0; s < steps(); ++s) {
      if (isa_.avx512) vmovdqu16(Zmm(kC), ptr[rip + (q6_ ? idx_q6k_ : idx_q4k_) + 64 * s]);
      for (int n = 0; n < nr; ++n) q6_ ? decode_q6k(n, s) : decode_q4k(n, s);
      for (int m = 0; m < mr; ++m)
        for (int n = 0; n < nr; ++n) {
          vpmaddubsw(vr(kT), vr(rq(n)), ptr[xrow(m) + isa_.vbytes() * s]);
          if (isa_.vnni) {
            dpwssd(vr(ri(m, n)), vr(kT), vr(rsc(n)));
          } else {
            vpmaddwd(vr(kT), vr(kT), vr(rsc(n)));
            vpaddd(vr(ri(m, n)), vr(ri(m, n)), vr(kT));
          }
        }
    }
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) finish(m, n);
    add(rW0, bs_);
    if (nr > 4) add(rW4, bs_);
    add(rX, 256);
    add(rXA, 64);
    dec(rK);
    jnz(kloop, T_NEAR);
    L(kdone);
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) store_sum_mem(slot_acc(m, n), kT, kT2, m, n);
    tile_end(nr, nr, tile_loop);
    epilogue();
  }

  // Q4_K's 12 scale bytes hold eight 6-bit scales and mins. With a, b, c the three
  // little-endian words: scales 0-3 = a & 0x3f.., mins 0-3 = b & 0x3f.., scales 4-7 = the low
  // nibbles of c with a's top two bits above them, mins 4-7 = c's high nibbles with b's top bits.
  void prep_q4k(int n) {
    const RegExp w = wrow(n);
    mov(eax, ptr[w + 4]);
    mov(edx, ptr[w + 8]);
    mov(ecx, ptr[w + 12]);
    mov(edi, eax);
    shr(edi, 2);
    and_(edi, 0x30303030);
    shl(rdi, 32);
    and_(eax, 0x3F3F3F3F);
    or_(rax, rdi);
    mov(edi, ecx);
    and_(edi, 0x0F0F0F0F);
    shl(rdi, 32);
    or_(rax, rdi);  // 8 scale bytes
    mov(edi, edx);
    shr(edi, 2);
    and_(edi, 0x30303030);
    shl(rdi, 32);
    and_(edx, 0x3F3F3F3F);
    or_(rdx, rdi);
    shr(ecx, 4);
    and_(ecx, 0x0F0F0F0F);
    shl(rcx, 32);
    or_(rdx, rcx);  // 8 min bytes
    const Xmm t = Xmm(kT);
    vmovq(t, rax);
    vpmovzxbw(t, t);
    vmovdqu(ptr[rsp + slot_sc(n)], t);
    vmovq(t, rdx);
    vpunpcklbw(t, t, t);
    vpmovzxbw(Ymm(kT), t);
    vmovdqu(ptr[rsp + slot_mn(n)], Ymm(kT));
    vmovd(t, ptr[w]);
    vcvtph2ps(t, t);
    vmovq(ptr[rsp + slot_dd(n)], t);
  }

  void prep_q6k(int n) {
    const RegExp w = wrow(n);
    vpmovsxbw(Ymm(kT), ptr[w + 192]);
    vmovdqu(ptr[rsp + slot_sc(n)], Ymm(kT));
    movzx(eax, word[w + 208]);
    vmovd(Xmm(kT), eax);
    vcvtph2ps(Xmm(kT), Xmm(kT));
    vmovss(ptr[rsp + slot_dd(n)], Xmm(kT));
  }

  // Elements 64c .. 64c+63 of a Q4_K super-block are the low, then the high nibbles of
  // qs[32c .. 32c+31]; a 256-bit step j is one of those halves.
  void decode_q4k(int n, int s) {
    const RegExp qs = wrow(n) + 16;
    const int q = rq(n), sc = rsc(n);
    if (isa_.avx512) {
      vbroadcasti64x4(Zmm(q), ptr[qs + 32 * s]);
      vpsrlw(Zmm(q) | k3, Zmm(q), 4);
      vpandd(Zmm(q), Zmm(q), ptr_b[rip + c0F_]);
      vpermw(Zmm(sc), Zmm(kC), ptr[rsp + slot_sc(n)]);
    } else {
      const int c = s / 2;
      if (s % 2 == 0) {
        vpand(Ymm(q), Ymm(kC), ptr[qs + 32 * c]);
      } else {
        vmovdqu(Ymm(q), ptr[qs + 32 * c]);
        vpsrlw(Ymm(q), Ymm(q), 4);
        vpand(Ymm(q), Ymm(q), Ymm(kC));
      }
      vpbroadcastw(Ymm(sc), ptr[rsp + slot_sc(n) + 2 * s]);
    }
  }

  // Element 128h + 32g + l of a Q6_K super-block: low 4 bits in nibble g/2 of
  // ql[64h + 32(g&1) + l], high 2 bits at qh[32h + l] >> 2g.
  void decode_q6k(int n, int s) {
    const RegExp w = wrow(n);
    const int q = rq(n), sc = rsc(n);
    if (isa_.avx512) {  // step s = elements 64s .. 64s+63: h = s/2, g = 2(s&1) + {0, 1}
      const int h = s / 2;
      const bool odd = s & 1;
      vmovdqu8(Zmm(q), ptr[w + 64 * h]);
      if (odd) vpsrlw(Zmm(q), Zmm(q), 4);
      vpandd(Zmm(q), Zmm(q), ptr_b[rip + c0F_]);
      vbroadcasti64x4(Zmm(kT2), ptr[w + 128 + 32 * h]);
      if (odd)
        vpsrlvw(Zmm(kT2), Zmm(kT2), ptr[rip + cnt_odd_]);
      else
        vpsllvw(Zmm(kT2), Zmm(kT2), ptr[rip + cnt_even_]);
      vpternlogd(Zmm(q), Zmm(kT2), ptr_b[rip + c30_], 0xF8);  // q | (h & 0x30)
      vpermw(Zmm(sc), Zmm(kC), ptr[rsp + slot_sc(n)]);
    } else {
      const int h = s / 4, g = s % 4;
      const RegExp ql = w + 64 * h + 32 * (g & 1);
      if (g < 2) {
        vpand(Ymm(q), Ymm(kC), ptr[ql]);
      } else {
        vmovdqu(Ymm(q), ptr[ql]);
        vpsrlw(Ymm(q), Ymm(q), 4);
        vpand(Ymm(q), Ymm(q), Ymm(kC));
      }
      const Ymm t = Ymm(kT2);
      vmovdqu(t, ptr[w + 128 + 32 * h]);
      if (g == 0) vpsllw(t, t, 4);
      if (g == 1) vpsllw(t, t, 2);
      if (g == 3) vpsrlw(t, t, 2);
      vpand(t, t, ptr[rip + c30_]);
      vpor(Ymm(q), Ymm(q), t);
      vpbroadcastd(Ymm(sc), ptr[rsp + slot_sc(n) + 4 * s]);
      vpshufb(Ymm(sc), Ymm(sc), ptr[rip + shuf_pair_]);
    }
  }

  // End of a super-block for pair (m, n): apply the offsets, convert, scale, accumulate.
  void finish(int m, int n) {
    const int a = rq(0), b = rsc(0);  // free between super-blocks
    const Xmm acc_i = vr(ri(m, n));
    const Ymm t = Ymm(kT);
    vmovdqu(t, ptr[arow(m)]);  // the activation's 16 bsums
    if (q6_) {
      vpmaddwd(t, t, ptr[rsp + slot_sc(n)]);
      vpslld(t, t, 5);
      vpsubd(acc_i, acc_i, vr(kT));  // upper half of kT is zero
      vcvtdq2ps(acc_i, acc_i);
      if (isa_.avx512) {
        vbroadcastss(Zmm(b), ptr[arow(m) + 32]);
        vmulps(Zmm(b), Zmm(b), ptr_b[rsp + slot_dd(n)]);
      } else {
        vbroadcastss(Ymm(b), ptr[arow(m) + 32]);
        vbroadcastss(t, ptr[rsp + slot_dd(n)]);
        vmulps(Ymm(b), Ymm(b), t);
      }
      vmovups(vr(a), ptr[rsp + slot_acc(m, n)]);
      vfmadd231ps(vr(a), acc_i, vr(b));
    } else {
      vpmaddwd(t, t, ptr[rsp + slot_mn(n)]);
      vcvtdq2ps(vr(kT), vr(kT));
      vcvtdq2ps(acc_i, acc_i);
      if (isa_.avx512) {
        vmulps(acc_i, acc_i, ptr_b[rsp + slot_dd(n)]);
        vfnmadd231ps(acc_i, vr(kT), ptr_b[rsp + slot_dd(n) + 4]);
        vmovups(vr(a), ptr[rsp + slot_acc(m, n)]);
        vfmadd231ps(vr(a), acc_i, ptr_b[arow(m) + 32]);
      } else {
        vbroadcastss(Ymm(b), ptr[rsp + slot_dd(n)]);
        vmulps(acc_i, acc_i, Ymm(b));
        vbroadcastss(Ymm(b), ptr[rsp + slot_dd(n) + 4]);
        vfnmadd231ps(acc_i, vr(kT), Ymm(b));
        vbroadcastss(Ymm(b), ptr[arow(m) + 32]);
        vmovups(vr(a), ptr[rsp + slot_acc(m, n)]);
        vfmadd231ps(vr(a), acc_i, Ymm(b));
      }
    }
    vmovups(ptr[rsp + slot_acc(m, n)], vr(a));
  }

  const bool q6_;
  const int bs_;
  int mr_ = 0, nr_ = 0;
  Xbyak::Label c0F_, c30_, idx_q4k_, idx_q6k_, cnt_even_, cnt_odd_, shuf_pair_;
};

}  // namespace

std::unique_ptr<TileGen> make_kquant_gen(Isa isa, DType weight_type) {
  return std::make_unique<KQuantGen>(isa, weight_type);
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
