// xbyak tiles for the packed layout of Q4_0, Q4_1, Q5_0 and Q8_0 (mk_pack.cpp): one group of 16
// weight rows against mr activation rows, the rows in the lanes of a 512-bit register (two
// 256-bit halves, one after the other, on AVX2).
//
// Per 32-block: the 16 f16 scales convert in one instruction; each 64-byte chunk of quants gives
// one (Q8_0) or two (nibbles) registers of unsigned levels, 4 consecutive elements per row; each
// is multiplied into every activation row with one vpdpbusd whose activation operand is 4 bytes
// broadcast from memory. The integer accumulator starts at -offset * sum(activation quants of the
// block), which takes the levels' offset (8, 16, 128) out exactly. Per block and activation row
// that is 8 vpdpbusd + 3 float operations for 16 x 32 products, against 4 instructions per 2 x 32
// in the file layout.
#if defined(KILN_WITH_XBYAK)

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {
namespace {

class PackedLegacyGen final : public PackedGen {
 public:
  PackedLegacyGen(Isa isa, DType t)
      : PackedGen(isa_cfg(isa), size_t(1) << 20), t_(t), p_(packed_legacy(t)) {
    shift_ = t == DType::Q4_0 ? 3 : t == DType::Q5_0 ? 4 : (t == DType::Q8_0 && isa_.vnni) ? 7 : 0;
  }

  void build(PackedSet& ps) override {
    emit_constants();
    ps.mr_max = isa_.avx512 ? kMaxPackMr : 4;
    for (int mr = 1; mr <= ps.mr_max; ++mr) {
      align(16);
      ps.fn[mr] = reinterpret_cast<TileFn>(const_cast<uint8_t*>(getCurr()));
      gen(mr);
    }
  }

 private:
  // Registers: scratch, broadcast activations (AVX2), two decoded chunks, scales, Q4_1 mins or
  // Q5_0 fifth bits, 0x0F bytes, int16 ones (AVX2 without VNNI); then per activation row an int32
  // and a float accumulator.
  static constexpr int kT = 0, kXb = 1, kDlo = 2, kDhi = 3, kDW = 4, kMW = 5, kQH = 5, kC0F = 6,
                       kOnes = 7;
  const Xbyak::Reg64 rX4 = r9, rXA4 = rcx;  // activation rows 4..7
  static constexpr int kPrefetchGroups = 4;

  bool signed_q80() const { return t_ == DType::Q8_0 && !isa_.vnni; }
  int ri(int m) const { return 8 + m; }
  int racc(int m) const { return 8 + mr_ + m; }
  RegExp xr(int m) const {
    return m < 4 ? rowexp(rX, rX, rXS, rXS3, m) : rowexp(rX4, rX4, rXS, rXS3, m - 4);
  }
  RegExp ar(int m) const {
    return m < 4 ? rowexp(rXA, rXA, rXS, rXS3, m) : rowexp(rXA4, rXA4, rXS, rXS3, m - 4);
  }

  void emit_constants() {
    align(64);
    bytes64(c0F_, 0x0F);
    bytes64(c10_, 0x10);
    bytes64(c80_, 0x80);
    L(ones_);
    for (int i = 0; i < 32; ++i) dw(1);
  }

  void gen(int mr) {
    mr_ = mr;
    const int bs = p_.block_bytes * kPackRows;
    prologue(0);
    if (isa_.avx512) {
      vmovdqu8(Zmm(kC0F), ptr[rip + c0F_]);
    } else {
      vmovdqu(Ymm(kC0F), ptr[rip + c0F_]);
      vmovdqu(Ymm(kOnes), ptr[rip + ones_]);
    }
    Xbyak::Label tile_loop;
    L(tile_loop);
    tile_begin(1, kPrefetchGroups);
    for (int half = 0; half < (isa_.avx512 ? 1 : 2); ++half) {
      if (half > 0) {  // AVX2: the same group again for rows 8..15
        mov(rdi, ptr[rsp + kArgs]);
        mov(rW0, ptr[rsp + kWTile]);
        mov(rX, ptr[rdi + offsetof(TileArgs, x)]);
        mov(rXA, rX);
        add(rXA, ptr[rsp + kAuxOff]);
        mov(rK, ptr[rsp + kNsteps]);
      }
      if (mr > 4) {
        lea(rX4, ptr[rX + rXS * 4]);
        lea(rXA4, ptr[rXA + rXS * 4]);
      }
      for (int m = 0; m < mr; ++m) vzero(racc(m));
      Xbyak::Label kloop;
      L(kloop);
      if (half == 0) prefetch_next(bs, /*to_l1=*/false);
      block(half);
      add(rW0, bs);
      add(rX, 32);
      add(rXA, 16);
      if (mr > 4) {
        add(rX4, 32);
        add(rXA4, 16);
      }
      dec(rK);
      jnz(kloop, T_NEAR);
      store(half);
    }
    tile_end(1, kPackRows, tile_loop);
    epilogue();
  }

  void block(int half) {
    const int hb = 32 * half, hs = 16 * half;  // AVX2 half: rows 8..15
    const RegExp w = RegExp(rW0);
    if (isa_.avx512) {
      vcvtph2ps(Zmm(kDW), ptr[w]);
      if (t_ == DType::Q4_1) vcvtph2ps(Zmm(kMW), ptr[w + p_.m_off]);
      if (t_ == DType::Q5_0) vmovdqu8(Zmm(kQH), ptr[w + p_.qh_off]);
    } else {
      vcvtph2ps(Ymm(kDW), ptr[w + hs]);
      if (t_ == DType::Q4_1) vcvtph2ps(Ymm(kMW), ptr[w + p_.m_off + hs]);
      if (t_ == DType::Q5_0) vmovdqu(Ymm(kQH), ptr[w + p_.qh_off + hb]);
    }
    for (int m = 0; m < mr_; ++m) {
      if (shift_) {  // -offset * sum(x) = (-sum(x)) << log2(offset)
        vpbroadcastd(vr(ri(m)), ptr[ar(m) + 8]);
        vpslld(vr(ri(m)), vr(ri(m)), shift_);
      } else {
        vzero(ri(m));
      }
    }
    if (t_ == DType::Q8_0) {
      for (int j = 0; j < p_.chunks; ++j) {
        const RegExp q = w + p_.q_off + 64 * j + hb;
        if (signed_q80()) {  // back to signed levels; |w| times x with w's sign
          vmovdqu(Ymm(kDlo), ptr[q]);
          vpxor(Ymm(kDlo), Ymm(kDlo), ptr[rip + c80_]);
          vpabsb(Ymm(kDhi), Ymm(kDlo));
          for (int m = 0; m < mr_; ++m) {
            vpbroadcastd(Ymm(kXb), ptr[xr(m) + 4 * j]);
            vpsignb(Ymm(kT), Ymm(kXb), Ymm(kDlo));
            vpmaddubsw(Ymm(kT), Ymm(kDhi), Ymm(kT));
            vpmaddwd(Ymm(kT), Ymm(kT), Ymm(kOnes));
            vpaddd(Ymm(ri(m)), Ymm(ri(m)), Ymm(kT));
          }
          continue;
        }
        if (isa_.avx512)
          vmovdqu8(Zmm(kDlo), ptr[q]);
        else
          vmovdqu(Ymm(kDlo), ptr[q]);
        for (int m = 0; m < mr_; ++m) dp(m, kDlo, xr(m) + 4 * j);
      }
    } else {
      for (int j = 0; j < 4; ++j) {
        const RegExp q = w + p_.q_off + 64 * j + hb;
        if (isa_.avx512) {
          vmovdqu8(Zmm(kDhi), ptr[q]);
          vpandd(Zmm(kDlo), Zmm(kC0F), Zmm(kDhi));
          vpsrlw(Zmm(kDhi), Zmm(kDhi), 4);
          vpandd(Zmm(kDhi), Zmm(kDhi), Zmm(kC0F));
        } else {
          vpand(Ymm(kDlo), Ymm(kC0F), ptr[q]);
          vmovdqu(Ymm(kDhi), ptr[q]);
          vpsrlw(Ymm(kDhi), Ymm(kDhi), 4);
          vpand(Ymm(kDhi), Ymm(kDhi), Ymm(kC0F));
        }
        if (t_ == DType::Q5_0) {
          merge_bit(kDlo, j);
          merge_bit(kDhi, 4 + j);
        }
        for (int m = 0; m < mr_; ++m) {
          dp(m, kDlo, xr(m) + 4 * j);
          dp(m, kDhi, xr(m) + 16 + 4 * j);
        }
      }
    }
    for (int m = 0; m < mr_; ++m) {
      const Xmm i = vr(ri(m)), acc = vr(racc(m));
      vcvtdq2ps(i, i);
      if (isa_.avx512) {
        vmulps(Zmm(kT), Zmm(kDW), ptr_b[ar(m)]);
        vfmadd231ps(acc, i, Zmm(kT));
        if (t_ == DType::Q4_1) vfmadd231ps(acc, Zmm(kMW), ptr_b[ar(m) + 12]);
      } else {
        vbroadcastss(Ymm(kT), ptr[ar(m)]);
        vmulps(Ymm(kT), Ymm(kT), Ymm(kDW));
        vfmadd231ps(acc, i, Ymm(kT));
        if (t_ == DType::Q4_1) {
          vbroadcastss(Ymm(kT), ptr[ar(m) + 12]);
          vfmadd231ps(acc, Ymm(kMW), Ymm(kT));
        }
      }
    }
  }

  // Q5_0: d |= 0x10 where bit `bit` of the fifth-bit byte is set.
  void merge_bit(int d, int bit) {
    const int shift = 4 - bit;
    int src = kQH;
    if (shift != 0) {
      if (shift > 0)
        vpsllw(vr(kT), vr(kQH), shift);
      else
        vpsrlw(vr(kT), vr(kQH), -shift);
      src = kT;
    }
    if (isa_.avx512) {
      vpternlogd(Zmm(d), Zmm(src), ptr_b[rip + c10_], 0xF8);  // d | (src & 0x10)
    } else {
      vpand(Ymm(kT), Ymm(src), ptr[rip + c10_]);
      vpor(Ymm(d), Ymm(d), Ymm(kT));
    }
  }

  // Accumulator of row m += dot products of 4 unsigned levels with 4 activation bytes at `x`.
  void dp(int m, int d, const RegExp& x) {
    if (isa_.avx512) {
      vpdpbusd(Zmm(ri(m)), Zmm(d), ptr_b[x]);
      return;
    }
    vpbroadcastd(Ymm(kXb), ptr[x]);
    if (isa_.vnni) {
      vpdpbusd(Ymm(ri(m)), Ymm(d), Ymm(kXb), Xbyak::VexEncoding);
    } else {
      vpmaddubsw(Ymm(kT), Ymm(d), Ymm(kXb));
      vpmaddwd(Ymm(kT), Ymm(kT), Ymm(kOnes));
      vpaddd(Ymm(ri(m)), Ymm(ri(m)), Ymm(kT));
    }
  }

  void store(int half) {
    mov(rax, ptr[rsp + kYStride]);
    lea(rdx, ptr[rax + rax * 2]);
    if (mr_ > 4) lea(rdi, ptr[rY + rax * 4]);
    for (int m = 0; m < mr_; ++m) {
      const RegExp y =
          (m < 4 ? rowexp(rY, rY, rax, rdx, m) : rowexp(rdi, rdi, rax, rdx, m - 4)) + 32 * half;
      vmovups(ptr[y], vr(racc(m)));
    }
  }

  const DType t_;
  const PackedLegacy p_;
  int shift_ = 0;
  int mr_ = 0;
  Xbyak::Label c0F_, c10_, c80_, ones_;
};

}  // namespace

std::unique_ptr<PackedGen> make_packed_gen(Isa isa, DType weight_type) {
  return std::make_unique<PackedLegacyGen>(isa, weight_type);
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
