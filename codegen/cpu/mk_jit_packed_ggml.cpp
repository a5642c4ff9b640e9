// xbyak tiles for the packed layout of Q4_0, Q4_1, Q5_0 and Q8_0 (mk_pack.cpp) that sum in
// ggml-cpu's order, so their results are bit-identical to llama.cpp's (docs/parity.md): AVX-512
// with VNNI only.
//
// ggml's x86 block product (ggml_vec_dot_*_q8_{0,1}; llamafile's tinyBLAS_Q0_AVX agrees) keeps
// eight f32 lanes per output: lane g holds the integer sum of the four products of elements
// 4g..4g+3 of a 32-block, and gets acc_g = fma(d_w * d_x, float(isum_g), acc_g) block after
// block; the lanes are then reduced pairwise (hsum_float_8) and, for Q4_1, the terms m_w * s_x,
// summed separately by fma, are added last.
//
// The packed layout has the 16 rows of a group in the lanes of a register, so the eight ggml lanes
// become eight accumulator registers per activation row, lane for lane the same operations: per
// 32-block and activation row, one vpdpbusd per element group into a fresh integer register, its
// conversion, and one FMA. That is 8 FMAs per 16 x 32 products where the fast tiles
// (mk_jit_packed.cpp) do 1, and 2 activation rows per tile instead of 8 (registers), which the
// decode GEMV, bound by memory, hardly notices (docs/microkernels.md has the figures).
//
// Level offsets (Q4_0 8, Q5_0 16, Q8_0's 128 from its unsigned storage) must come out of each
// group's integer sum, not only the block's: per block and activation row the eight group sums
// offset * sum(x) are computed once with a 256-bit vpdpbusd, negated and kept in the frame, and
// each group's integer register starts from its broadcast.
#if defined(KILN_WITH_XBYAK)

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {
namespace {

class PackedGgmlGen final : public PackedGen {
 public:
  PackedGgmlGen(Isa isa, DType t)
      : PackedGen(isa_cfg(isa), size_t(1) << 18), t_(t), p_(packed_legacy(t)) {
    offset_ = t == DType::Q4_0 ? 8 : t == DType::Q5_0 ? 16 : t == DType::Q8_0 ? 128 : 0;
  }

  void build(PackedSet& ps) override {
    emit_constants();
    ps.mr_max = kMr;
    for (int mr = 1; mr <= kMr; ++mr) {
      align(16);
      ps.fn[mr] = reinterpret_cast<TileFn>(const_cast<uint8_t*>(getCurr()));
      gen(mr);
    }
  }

 private:
  static constexpr int kMr = 2;  // 8 lane accumulators per row: registers decide
  // Registers: 0x0F bytes, the 16 d_w, Q4_1 mins or Q5_0 fifth bits, two decoded chunks, a
  // scratch, the offset bytes; per activation row d_w * d_x, an integer scratch, the Q4_1 min
  // sum and eight lane accumulators.
  static constexpr int kC0F = 0, kDW = 1, kMW = 2, kQH = 2, kLo = 3, kHi = 4, kT = 5, kOff = 6;
  int rdd(int m) const { return 7 + m; }
  int rint(int m) const { return 9 + m; }
  int rsum(int m) const { return 11 + m; }
  int racc(int m, int g) const { return 13 + 8 * m + g; }
  static constexpr int kNegOff = kFrameData;  // per row: 8 int32, -offset * group sums
  static constexpr int kPrefetchGroups = 4;

  void emit_constants() {
    align(64);
    bytes64(c0F_, 0x0F);
    bytes64(c10_, 0x10);
    bytes64(cOff_, uint8_t(offset_));
  }

  void gen(int mr) {
    mr_ = mr;
    const int bs = p_.block_bytes * kPackRows;
    prologue(64);
    vmovdqu8(Zmm(kC0F), ptr[rip + c0F_]);
    if (offset_) vmovdqu8(Zmm(kOff), ptr[rip + cOff_]);
    Xbyak::Label tile_loop;
    L(tile_loop);
    tile_begin(1, kPrefetchGroups);
    for (int m = 0; m < mr; ++m) {
      for (int g = 0; g < 8; ++g) vzero(racc(m, g));
      vzero(rsum(m));
    }
    Xbyak::Label kloop;
    L(kloop);
    prefetch_next(bs, /*to_l1=*/false);
    block();
    add(rW0, bs);
    add(rX, 32);
    add(rXA, 16);
    dec(rK);
    jnz(kloop, T_NEAR);
    store();
    tile_end(1, kPackRows, tile_loop);
    epilogue();
  }

  void block() {
    const RegExp w = RegExp(rW0);
    vcvtph2ps(Zmm(kDW), ptr[w]);
    if (t_ == DType::Q4_1) vcvtph2ps(Zmm(kMW), ptr[w + p_.m_off]);
    if (t_ == DType::Q5_0) vmovdqu8(Zmm(kQH), ptr[w + p_.qh_off]);
    for (int m = 0; m < mr_; ++m) {
      vmulps(Zmm(rdd(m)), Zmm(kDW), ptr_b[arow(m)]);  // d_w * d_x, as ggml rounds it
      if (t_ == DType::Q4_1) vfmadd231ps(Zmm(rsum(m)), Zmm(kMW), ptr_b[arow(m) + 12]);
      if (offset_) {  // -offset * (sum of each group of 4 activations)
        const Ymm s = Ymm(rint(m));
        vpxor(s, s, s);
        vpdpbusd(s, Ymm(kOff), ptr[xrow(m)], Xbyak::EvexEncoding);
        vpxor(Ymm(kT), Ymm(kT), Ymm(kT));
        vpsubd(s, Ymm(kT), s);
        vmovdqa(ptr[rsp + kNegOff + 32 * m], s);
      }
    }
    const int nchunks = t_ == DType::Q8_0 ? 8 : 4;
    for (int j = 0; j < nchunks; ++j) {
      const RegExp q = w + p_.q_off + 64 * j;
      if (t_ == DType::Q8_0) {
        vmovdqu8(Zmm(kLo), ptr[q]);
        group(kLo, j);
        continue;
      }
      vmovdqu8(Zmm(kHi), ptr[q]);
      vpandd(Zmm(kLo), Zmm(kC0F), Zmm(kHi));
      vpsrlw(Zmm(kHi), Zmm(kHi), 4);
      vpandd(Zmm(kHi), Zmm(kHi), Zmm(kC0F));
      if (t_ == DType::Q5_0) {
        merge_bit(kLo, j);
        merge_bit(kHi, 4 + j);
      }
      group(kLo, j);
      group(kHi, 4 + j);
    }
  }

  // Lane g of every activation row: the integer sum of elements 4g..4g+3 (levels in `levels`),
  // then acc_g = fma(d_w * d_x, float(isum), acc_g).
  void group(int levels, int g) {
    for (int m = 0; m < mr_; ++m) {
      const Zmm i = Zmm(rint(m));
      if (offset_)
        vpbroadcastd(i, ptr[rsp + kNegOff + 32 * m + 4 * g]);
      else
        vpxord(i, i, i);
      vpdpbusd(i, Zmm(levels), ptr_b[xrow(m) + 4 * g], Xbyak::EvexEncoding);
    }
    for (int m = 0; m < mr_; ++m) {
      const Zmm i = Zmm(rint(m));
      vcvtdq2ps(i, i);
      vfmadd231ps(Zmm(racc(m, g)), i, Zmm(rdd(m)));
    }
  }

  // Q5_0: d |= 0x10 where bit `bit` of the fifth-bit byte is set.
  void merge_bit(int d, int bit) {
    const int shift = 4 - bit;
    int src = kQH;
    if (shift > 0) {
      vpsllw(Zmm(kT), Zmm(kQH), shift);
      src = kT;
    } else if (shift < 0) {
      vpsrlw(Zmm(kT), Zmm(kQH), -shift);
      src = kT;
    }
    vpternlogd(Zmm(d), Zmm(src), ptr_b[rip + c10_], 0xF8);  // d | (src & 0x10)
  }

  // hsum_float_8 across the lane registers: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)),
  // then the Q4_1 min sum.
  void store() {
    mov(rax, ptr[rsp + kYStride]);
    for (int m = 0; m < mr_; ++m) {
      for (int g = 0; g < 4; ++g) vaddps(Zmm(racc(m, g)), Zmm(racc(m, g + 4)), Zmm(racc(m, g)));
      vaddps(Zmm(racc(m, 0)), Zmm(racc(m, 0)), Zmm(racc(m, 2)));
      vaddps(Zmm(racc(m, 1)), Zmm(racc(m, 1)), Zmm(racc(m, 3)));
      vaddps(Zmm(racc(m, 0)), Zmm(racc(m, 0)), Zmm(racc(m, 1)));
      if (t_ == DType::Q4_1) vaddps(Zmm(racc(m, 0)), Zmm(racc(m, 0)), Zmm(rsum(m)));
      vmovups(ptr[m == 0 ? RegExp(rY) : rY + rax], Zmm(racc(m, 0)));
    }
  }

  const DType t_;
  const PackedLegacy p_;
  int offset_ = 0;
  int mr_ = 0;
  Xbyak::Label c0F_, c10_, cOff_;
};

}  // namespace

std::unique_ptr<PackedGen> make_packed_ggml_gen(Isa isa, DType weight_type) {
  return std::make_unique<PackedGgmlGen>(isa, weight_type);
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
