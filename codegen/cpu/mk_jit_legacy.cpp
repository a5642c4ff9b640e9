// xbyak tiles for the 32-element block types Q4_0, Q4_1, Q5_0 and Q8_0 (weights as stored).
//
// One K step is two blocks in a 512-bit register (AVX-512) or one block in a 256-bit register
// (AVX2). Per weight row and step the generator unpacks the quants to bytes (unsigned levels
// 0..15 / 0..31, or Q8_0's signed bytes offset by 128) and widens the f16 scales; per
// activation row it loads 32 or 64 int8 quants, the f32 scales, and the offset correction; then
// each (row, row) pair costs one vpdpbusd (or vpmaddubsw + vpmaddwd without VNNI), one convert
// and two float ops. The offset of the unsigned levels (8, 16, 128) is taken out exactly in the
// integer accumulator, which starts at -offset * (sum of the four activations of its lane).
#if defined(KILN_WITH_XBYAK)

#include <stdexcept>

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {
namespace {

class LegacyGen final : public TileGen {
 public:
  LegacyGen(Isa isa, DType t) : TileGen(isa_cfg(isa), size_t(1) << 20), t_(t) {
    switch (t) {
      case DType::Q4_0:
        bs_ = 18, qoff_ = 2, bias_ = 8;
        break;
      case DType::Q4_1:
        bs_ = 20, qoff_ = 4, bias_ = 0;
        break;
      case DType::Q5_0:
        bs_ = 22, qoff_ = 6, bias_ = 16;
        break;
      default:  // Q8_0: with VNNI the bytes are flipped to w + 128; without, signs are moved
        bs_ = 34, qoff_ = 2, bias_ = isa_.vnni ? 128 : 0;
        break;
    }
  }

  void build(TileSet& ts) override {
    emit_constants();
    ts.blocks_per_step = bps();
    ts.mr_max = kMaxMr;
    for (int mr = 1; mr <= kMaxMr; ++mr) {
      const int cap = mr == 1 ? kMaxNr : 4;
      int nr = cap;
      while (nr > 1 && regs_needed(mr, nr, true) > isa_.nregs()) --nr;
      ts.nr_max[mr] = nr;
      for (int n = 1; n <= nr; ++n) {
        align(16);
        ts.fn[mr][n] = reinterpret_cast<TileFn>(const_cast<uint8_t*>(getCurr()));
        gen_tile(mr, n, regs_needed(mr, n, false) > isa_.nregs());
      }
    }
  }

 private:
  bool q41() const { return t_ == DType::Q4_1; }
  bool q50() const { return t_ == DType::Q5_0; }
  bool q80() const { return t_ == DType::Q8_0; }
  bool signed_q80() const { return q80() && !isa_.vnni; }
  int bps() const { return isa_.avx512 ? 2 : 1; }

  int regs_needed(int mr, int nr, bool dw_mem) const {
    const int per_n = 1 + (signed_q80() ? 1 : 0) + (dw_mem ? 0 : q41() ? 2 : 1);
    const int per_m = 2 + (bias_ ? 1 : 0) + (q41() ? 1 : 0);
    const int fixed = 2 + (bias_ ? 1 : 0);
    return nr * per_n + mr * nr + per_m + fixed;
  }

  static int need(int r) {
    if (r < 0) throw std::logic_error("microkernels: legacy tile ran out of registers");
    return r;
  }

  void emit_constants() {
    align(64);
    bytes64(c0F_, 0x0F);
    bytes64(c80_, 0x80);
    bytes64(c10_, 0x10);
    bytes64(offb_, uint8_t(bias_));
    L(ones_);
    for (int i = 0; i < 32; ++i) dw(1);
    L(bitsel_);  // byte j selects bit j % 8 of its source byte
    for (int i = 0; i < 32; ++i) db(1 << (i % 8));
    L(bitshuf_);  // byte j of a lane takes source byte j / 8 (lane 1: + 2)
    for (int i = 0; i < 32; ++i) db(i / 8);
  }

  void gen_tile(int mr, int nr, bool dw_mem) {
    mr_ = mr, nr_ = nr, dw_mem_ = dw_mem;
    RegPool pool(isa_.nregs());
    rI_ = need(pool.get());
    rT2_ = need(pool.get());
    rX_ = need(pool.get());
    rDX_ = need(pool.get());
    rNB_ = bias_ ? need(pool.get()) : -1;
    rOFF_ = bias_ ? need(pool.get()) : -1;
    rS_ = q41() ? need(pool.get()) : -1;
    for (int n = 0; n < nr; ++n) {
      rW_[n] = need(pool.get());
      rWraw_[n] = signed_q80() ? need(pool.get()) : -1;
      rDW_[n] = dw_mem ? -1 : need(pool.get());
      rMW_[n] = !dw_mem && q41() ? need(pool.get()) : -1;
    }
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) rAcc_[m][n] = need(pool.get());

    prologue(2 * 64 * kMaxNr);
    if (bias_) {
      if (isa_.avx512)
        vmovdqu8(Zmm(rOFF_), ptr[rip + offb_]);
      else
        vmovdqu(Ymm(rOFF_), ptr[rip + offb_]);
    }
    Xbyak::Label tile_loop, kloop, kdone, notail;
    L(tile_loop);
    tile_begin(nr);
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) vzero(rAcc_[m][n]);
    test(rK, rK);
    jz(kdone, T_NEAR);
    L(kloop);
    prefetch_next(nr * bps() * bs_);
    step(false);
    add(rW0, bps() * bs_);
    if (nr > 4) add(rW4, bps() * bs_);
    add(rX, 32 * bps());
    add(rXA, aux_stride_ * bps());
    dec(rK);
    jnz(kloop, T_NEAR);
    L(kdone);
    if (isa_.avx512) {
      cmp(qword[rsp + kTail], 0);
      je(notail, T_NEAR);
      step(true);
      L(notail);
    }
    for (int m = 0; m < mr; ++m)
      for (int n = 0; n < nr; ++n) store_sum(rAcc_[m][n], rI_, rT2_, m, n);
    tile_end(nr, nr, tile_loop);
    epilogue();
  }

  int slot_dw(int n) const { return kFrameData + 64 * n; }
  int slot_mw(int n) const { return kFrameData + 64 * (kMaxNr + n); }

  // `half`: one block in the low 256 bits (the AVX-512 tail). The AVX2 variants always work on
  // one block. Everything written by a 256-bit operation has its upper half zeroed, so the
  // 512-bit integer and float operations of a half step add exact zeros.
  void step(bool half) {
    for (int n = 0; n < nr_; ++n) decode(n, half);
    for (int m = 0; m < mr_; ++m) {
      load_act(m, half);
      for (int n = 0; n < nr_; ++n) mac(m, n);
    }
  }

  void decode(int n, bool half) {
    const bool two = isa_.avx512 && !half;
    const RegExp a = wrow(n), b = wrow(n) + bs_;
    const int w = rW_[n];
    if (q80()) {
      if (two) {
        vmovdqu8(Ymm(w), ptr[a + 2]);
        vinserti64x4(Zmm(w), Zmm(w), ptr[b + 2], 1);
        vpxord(Zmm(w), Zmm(w), ptr_b[rip + c80_]);
      } else if (isa_.avx512) {
        vmovdqu8(Ymm(w), ptr[a + 2]);
        vpxord(Ymm(w), Ymm(w), ptr_b[rip + c80_]);
      } else if (isa_.vnni) {
        vmovdqu(Ymm(w), ptr[a + 2]);
        vpxor(Ymm(w), Ymm(w), ptr[rip + c80_]);
      } else {
        vmovdqu(Ymm(rWraw_[n]), ptr[a + 2]);
        vpabsb(Ymm(w), Ymm(rWraw_[n]));
      }
    } else {
      // Nibbles: block bytes [lo | hi] in element order, two blocks side by side.
      if (two) {
        vbroadcasti32x4(Zmm(w), ptr[a + qoff_]);
        vbroadcasti32x4(Zmm(w) | k1, ptr[b + qoff_]);
        vpsrlw(Zmm(w) | k2, Zmm(w), 4);
        vpandd(Zmm(w), Zmm(w), ptr_b[rip + c0F_]);
      } else if (isa_.avx512) {
        vbroadcasti32x4(Ymm(w), ptr[a + qoff_]);
        vpsrlw(Ymm(w) | k1, Ymm(w), 4);
        vpandd(Ymm(w), Ymm(w), ptr_b[rip + c0F_]);
      } else {
        vbroadcasti128(Ymm(w), ptr[a + qoff_]);
        vpsrlw(Ymm(rI_), Ymm(w), 4);
        vpblendd(Ymm(w), Ymm(w), Ymm(rI_), 0xF0);
        vpand(Ymm(w), Ymm(w), ptr[rip + c0F_]);
      }
      if (q50()) {  // bit 4 of element j is bit j of qh
        if (two) {
          kmovd(k4, ptr[a + 2]);
          kmovd(k5, ptr[b + 2]);
          kunpckdq(k4, k5, k4);
          vpaddb(Zmm(w) | k4, Zmm(w), ptr[rip + c10_]);
        } else if (isa_.avx512) {
          kmovd(k4, ptr[a + 2]);
          vpaddb(Ymm(w) | k4, Ymm(w), ptr[rip + c10_]);
        } else {
          const Ymm t = Ymm(rI_);
          vpbroadcastd(t, ptr[a + 2]);
          vpshufb(t, t, ptr[rip + bitshuf_]);
          vpand(t, t, ptr[rip + bitsel_]);
          vpcmpeqb(t, t, ptr[rip + bitsel_]);
          vpand(t, t, ptr[rip + c10_]);
          vpor(Ymm(w), Ymm(w), t);
        }
      }
    }
    // Scales: d (and Q4_1's m) of each block spread over its eight lanes.
    const int t = rI_;
    if (q41()) {
      if (two) {
        vpbroadcastd(Ymm(t), ptr[a]);
        vpbroadcastd(Ymm(t) | k6, ptr[b]);
        vcvtph2ps(Zmm(rT2_), Ymm(t));
      } else {
        vpbroadcastd(Xmm(t), ptr[a]);
        vcvtph2ps(Ymm(rT2_), Xmm(t));
      }
      const int d = dw_mem_ ? rI_ : rDW_[n];
      vshufps(vr(d), vr(rT2_), vr(rT2_), 0x00);
      if (dw_mem_) vmovups(ptr[rsp + slot_dw(n)], vr(d));
      const int mm = dw_mem_ ? rI_ : rMW_[n];
      vshufps(vr(mm), vr(rT2_), vr(rT2_), 0x55);
      if (dw_mem_) vmovups(ptr[rsp + slot_mw(n)], vr(mm));
    } else {
      const int d = dw_mem_ ? rT2_ : rDW_[n];
      if (two) {
        vpbroadcastw(Ymm(t), ptr[a]);
        vpbroadcastw(Ymm(t) | k1, ptr[b]);
        vcvtph2ps(Zmm(d), Ymm(t));
      } else {
        vpbroadcastw(Xmm(t), ptr[a]);
        vcvtph2ps(Ymm(d), Xmm(t));
      }
      if (dw_mem_) vmovups(ptr[rsp + slot_dw(n)], vr(d));
    }
  }

  void load_act(int m, bool half) {
    const bool two = isa_.avx512 && !half;
    if (two)
      vmovdqu8(Zmm(rX_), ptr[xrow(m)]);
    else if (isa_.avx512)
      vmovdqu8(Ymm(rX_), ptr[xrow(m)]);
    else
      vmovdqu(Ymm(rX_), ptr[xrow(m)]);
    auto spread = [&](int r, int field) {
      if (two) {
        vbroadcastss(Zmm(r), ptr[arow(m) + 4 * field]);
        vbroadcastss(Zmm(r) | k1, ptr[arow(m) + aux_stride_ + 4 * field]);
      } else {
        vbroadcastss(Ymm(r), ptr[arow(m) + 4 * field]);
      }
    };
    spread(rDX_, 0);
    if (q41()) spread(rS_, 1);
    if (bias_) {
      if (isa_.vnni) {
        vzero(rI_);
        dpbusd(vr(rI_), vr(rOFF_), vr(rX_));
      } else {
        vpmaddubsw(Ymm(rI_), Ymm(rOFF_), Ymm(rX_));
        vpmaddwd(Ymm(rI_), Ymm(rI_), ptr[rip + ones_]);
      }
      vzero(rNB_);
      vpsubd(vr(rNB_), vr(rNB_), vr(rI_));
    }
  }

  void mac(int m, int n) {
    const Xmm i = vr(rI_), t2 = vr(rT2_), x = vr(rX_), w = vr(rW_[n]), acc = vr(rAcc_[m][n]);
    if (signed_q80()) {
      vpsignb(t2, x, vr(rWraw_[n]));
      vpmaddubsw(i, w, t2);
      vpmaddwd(i, i, ptr[rip + ones_]);
    } else if (isa_.vnni) {
      if (bias_)
        vmov_i(rI_, rNB_);
      else
        vzero(rI_);
      dpbusd(i, w, x);
    } else {
      vpmaddubsw(i, w, x);
      vpmaddwd(i, i, ptr[rip + ones_]);
      if (bias_) vpaddd(i, i, vr(rNB_));
    }
    vcvtdq2ps(i, i);
    if (dw_mem_)
      vmulps(t2, vr(rDX_), ptr[rsp + slot_dw(n)]);
    else
      vmulps(t2, vr(rDX_), vr(rDW_[n]));
    vfmadd231ps(acc, i, t2);
    if (q41()) {
      if (dw_mem_)
        vfmadd231ps(acc, vr(rS_), ptr[rsp + slot_mw(n)]);
      else
        vfmadd231ps(acc, vr(rS_), vr(rMW_[n]));
    }
  }

  DType t_;
  int bs_ = 0, qoff_ = 0, bias_ = 0;
  static constexpr int aux_stride_ = 16;  // ActLayout::aux_bytes
  int mr_ = 0, nr_ = 0;
  bool dw_mem_ = false;
  int rI_ = -1, rT2_ = -1, rX_ = -1, rDX_ = -1, rNB_ = -1, rOFF_ = -1, rS_ = -1;
  int rW_[kMaxNr] = {}, rWraw_[kMaxNr] = {}, rDW_[kMaxNr] = {}, rMW_[kMaxNr] = {};
  int rAcc_[kMaxMr][kMaxNr] = {};
  Xbyak::Label c0F_, c80_, c10_, offb_, ones_, bitsel_, bitshuf_;
};

}  // namespace

std::unique_ptr<TileGen> make_legacy_gen(Isa isa, DType weight_type) {
  return std::make_unique<LegacyGen>(isa, weight_type);
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
