// xbyak tiles for the packed Q4_K and Q6_K layouts (mk_pack.cpp) in ggml-cpu's summation orders,
// so that their results are bit-identical to llama.cpp's (docs/parity.md): AVX-512 with VNNI.
//
// The 16 rows of a group sit in the lanes of a zmm, so ggml's per-row arithmetic runs lane for
// lane. Per 256-element super-block (interp_matmul.cpp has the reference):
//  - Q4_K (llama.cpp repacks it and runs ggml_gemv/gemm_q4_K_8x8_q8_K): the integer sums
//    S = sum_s scale_s * dot_s and Smin = sum_s min_s * xsum_s, then acc = fma(float(S), d_w*d_x,
//    acc) and acc_min = fma(float(Smin), dmin_w*d_x, acc_min); the result acc - acc_min. The
//    gemv ("few") folds once per super-block, the gemm ("many", rows in groups of four) once per
//    pair of sub-blocks.
//  - Q6_K, fewer than 8 tokens (ggml_vec_dot_q6_K_q8_K): eight integer lanes, lane l the scaled
//    products of elements 4l..4l+3 of every 32-element run minus 32 * (scale_{2l} * bsum_{2l} +
//    scale_{2l+1} * bsum_{2l+1}), each folded by fma with d_x*d_w, then hsum_float_8. Eight
//    accumulator registers per activation row, so one row per tile.
//  - Q6_K, 8 tokens or more (ggml's tiled kernels): the whole integer sum S of the super-block,
//    acc = fma(float(S) * d_w, d_x, acc).
// Integer sums are exact whatever their order; only the float steps are ggml's.
#if defined(KILN_WITH_XBYAK)

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {
namespace {

class PackedKquantGen final : public PackedGen {
 public:
  PackedKquantGen(Isa isa, DType t) : PackedGen(isa_cfg(isa), size_t(1) << 20), t_(t) {
    p_ = packed_kquant(t);
  }

  void build(PackedSet& ps) override {
    emit_constants();
    const bool q4 = t_ == DType::Q4_K;
    ps.mr_max = q4 ? 3 : 1;
    ps.mr_many = q4 ? 3 : 4;
    for (int many = 0; many < 2; ++many)
      for (int mr = 1; mr <= (many ? ps.mr_many : ps.mr_max); ++mr) {
        align(16);
        (many ? ps.fn_many : ps.fn)[mr] = reinterpret_cast<TileFn>(const_cast<uint8_t*>(getCurr()));
        gen(mr, many != 0);
      }
  }

 private:
  static constexpr int kPrefetchGroups = 2;
  // Shared registers: 0x0F bytes, two decoded chunks, scratch.
  static constexpr int kC0F = 0, kLo = 1, kHi = 2, kT = 3, kT2 = 4, kXb = 5;
  // Q4_K: the three scale chunks, the current scale and min; per row two sub-block dots, the
  // scale and min sums, two float accumulators.
  static constexpr int kC0 = 6, kC1 = 7, kC2 = 8, kSc = 9, kMn = 10;
  int q4_dot(int m, int i) const { return 11 + 6 * m + i; }
  int q4_isum(int m) const { return 13 + 6 * m; }
  int q4_imin(int m) const { return 14 + 6 * m; }
  int q4_acc(int m) const { return 15 + 6 * m; }
  int q4_accm(int m) const { return 16 + 6 * m; }
  // Q6_K: the top-bit chunk, the scale pairs of the two groups in flight; vec: eight integer and
  // eight float lanes; tiled: per row one integer and one float accumulator.
  static constexpr int kHB = 6, kScA = 7, kScB = 8;
  int q6_lane(int l) const { return 9 + l; }
  int q6_flane(int l) const { return 17 + l; }
  int q6_isum(int m) const { return 9 + m; }
  int q6_acc(int m) const { return 13 + m; }

  void emit_constants() {
    align(64);
    bytes64(c0F_, 0x0F);
    auto dword = [this](Xbyak::Label& l, uint32_t v) {
      L(l);
      dd(v);
    };
    dword(c3Fd_, 0x3F);
    dword(c0Fd_, 0x0F);
    dword(c30d_, 0x30);
    dword(c30b_, 0x30303030);
    dword(cFFFF_, 0xFFFF);
  }

  void gen(int mr, bool many) {
    mr_ = mr;
    many_ = many;
    const int bs = p_.block_bytes * kPackRows;
    prologue(0);
    vmovdqu8(Zmm(kC0F), ptr[rip + c0F_]);
    Xbyak::Label tile_loop;
    L(tile_loop);
    tile_begin(1, kPrefetchGroups);
    if (t_ == DType::Q4_K) {
      for (int m = 0; m < mr; ++m) {
        vzero(q4_acc(m));
        vzero(q4_accm(m));
      }
    } else {
      for (int m = 0; m < (many ? mr : 8); ++m) vzero(many ? q6_acc(m) : q6_flane(m));
    }
    Xbyak::Label kloop;
    L(kloop);
    prefetch_next(bs, /*to_l1=*/false);
    if (t_ == DType::Q4_K)
      q4k_block();
    else
      q6k_block();
    add(rW0, bs);
    add(rX, 256);
    add(rXA, 64);
    dec(rK);
    jnz(kloop, T_NEAR);
    store();
    tile_end(1, kPackRows, tile_loop);
    epilogue();
  }

  // ---- Q4_K

  // Sub-block s's 6-bit scale (or, with `min`, its min) of every row, as int32 lanes in `dst`.
  void q4k_scale(int dst, int s, bool min) {
    const Zmm d = Zmm(dst);
    const int lo = min ? kC1 : kC0;
    if (s < 4) {
      vpsrld(d, Zmm(lo), 8 * s);
      vpandd(d, d, ptr_b[rip + c3Fd_]);
      return;
    }
    const int u = s - 4;
    vpsrld(d, Zmm(kC2), 8 * u + (min ? 4 : 0));
    vpsrld(Zmm(kT), Zmm(lo), 8 * u + 2);
    vpandd(Zmm(kT), Zmm(kT), ptr_b[rip + c30d_]);
    vpternlogd(d, Zmm(kT), ptr_b[rip + c0Fd_], 0xEC);  // (d & 0x0F) | t
  }

  void q4k_block() {
    const RegExp w = RegExp(rW0);
    vmovdqu32(Zmm(kC0), ptr[w + p_.sc_off]);
    vmovdqu32(Zmm(kC1), ptr[w + p_.sc_off + 64]);
    vmovdqu32(Zmm(kC2), ptr[w + p_.sc_off + 128]);
    if (!many_) q4k_zero_sums();
    for (int j = 0; j < 4; ++j) {  // sub-blocks 2j and 2j + 1
      if (many_) q4k_zero_sums();
      for (int m = 0; m < mr_; ++m) {
        vzero(q4_dot(m, 0));
        vzero(q4_dot(m, 1));
      }
      for (int k = 0; k < 8; ++k) {
        vmovdqu8(Zmm(kHi), ptr[w + p_.q_off + 64 * (8 * j + k)]);
        vpandd(Zmm(kLo), Zmm(kC0F), Zmm(kHi));
        vpsrlw(Zmm(kHi), Zmm(kHi), 4);
        vpandd(Zmm(kHi), Zmm(kHi), Zmm(kC0F));
        for (int m = 0; m < mr_; ++m) {
          vpdpbusd(Zmm(q4_dot(m, 0)), Zmm(kLo), ptr_b[xrow(m) + 64 * j + 4 * k],
                   Xbyak::EvexEncoding);
          vpdpbusd(Zmm(q4_dot(m, 1)), Zmm(kHi), ptr_b[xrow(m) + 64 * j + 32 + 4 * k],
                   Xbyak::EvexEncoding);
        }
      }
      for (int i = 0; i < 2; ++i) {
        const int s = 2 * j + i;
        q4k_scale(kSc, s, false);
        q4k_scale(kMn, s, true);
        vpslld(Zmm(kT), Zmm(kMn), 16);  // (min, min) as int16 pairs
        vpord(Zmm(kMn), Zmm(kMn), Zmm(kT));
        for (int m = 0; m < mr_; ++m) {
          vpmulld(Zmm(q4_dot(m, i)), Zmm(q4_dot(m, i)), Zmm(kSc));
          vpaddd(Zmm(q4_isum(m)), Zmm(q4_isum(m)), Zmm(q4_dot(m, i)));
          // min * (bsums[2s] + bsums[2s + 1]), the sub-block's activation sum
          vpbroadcastd(Zmm(kXb), ptr[arow(m) + 4 * s]);  // word ops take no embedded broadcast
          vpmaddwd(Zmm(kT), Zmm(kMn), Zmm(kXb));
          vpaddd(Zmm(q4_imin(m)), Zmm(q4_imin(m)), Zmm(kT));
        }
      }
      if (many_) q4k_fold();
    }
    if (!many_) q4k_fold();
  }

  void q4k_zero_sums() {
    for (int m = 0; m < mr_; ++m) {
      vzero(q4_isum(m));
      vzero(q4_imin(m));
    }
  }

  // acc = fma(float(S), d_w * d_x, acc); acc_min = fma(float(Smin), dmin_w * d_x, acc_min).
  void q4k_fold() {
    const RegExp w = RegExp(rW0);
    for (int m = 0; m < mr_; ++m) {
      vcvtph2ps(Zmm(kLo), ptr[w]);
      vmulps(Zmm(kLo), Zmm(kLo), ptr_b[arow(m) + 32]);
      vcvtdq2ps(Zmm(kT), Zmm(q4_isum(m)));
      vfmadd231ps(Zmm(q4_acc(m)), Zmm(kT), Zmm(kLo));
      vcvtph2ps(Zmm(kLo), ptr[w + p_.dmin_off]);
      vmulps(Zmm(kLo), Zmm(kLo), ptr_b[arow(m) + 32]);
      vcvtdq2ps(Zmm(kT), Zmm(q4_imin(m)));
      vfmadd231ps(Zmm(q4_accm(m)), Zmm(kT), Zmm(kLo));
    }
  }

  // ---- Q6_K

  // The int8 scale i of every row, sign-extended to int32 lanes.
  void q6k_scale(int dst, int i) {
    vpslld(Zmm(dst), ptr[rW0 + p_.sc_off + 64 * (i / 4)], 24 - 8 * (i % 4));
    vpsrad(Zmm(dst), Zmm(dst), 24);
  }
  // int16 pairs (scale a, scale b) in every row's dword.
  void q6k_scale_pair(int dst, int a, int b) {
    q6k_scale(dst, a);
    q6k_scale(kT2, b);
    vpslld(Zmm(kT2), Zmm(kT2), 16);
    vpternlogd(Zmm(dst), Zmm(kT2), ptr_b[rip + cFFFF_], 0xEC);  // (dst & 0xFFFF) | t2
  }

  // Adds the levels (0..63) times 4 activations of one group, scaled, to the accumulator.
  void q6k_group(int levels, int scale_pair, int x_off, int m, int acc) {
    vpbroadcastd(Zmm(kXb), ptr[xrow(m) + x_off]);
    vpmaddubsw(Zmm(kT), Zmm(levels), Zmm(kXb));
    vpdpwssd(Zmm(acc), Zmm(kT), Zmm(scale_pair), Xbyak::EvexEncoding);
  }

  void q6k_block() {
    const RegExp w = RegExp(rW0);
    const int rows = many_ ? mr_ : 1;
    for (int i = 0; i < (many_ ? mr_ : 8); ++i) vzero(many_ ? q6_isum(i) : q6_lane(i));
    for (int c = 0; c < 32; ++c) {
      if (c % 4 == 0) {  // the scales of sub-blocks c/4 (elements 4c..) and 8 + c/4 (128 + 4c..)
        q6k_scale_pair(kScA, c / 4, c / 4);
        q6k_scale_pair(kScB, 8 + c / 4, 8 + c / 4);
      }
      vmovdqu8(Zmm(kHi), ptr[w + p_.q_off + 64 * c]);
      vpandd(Zmm(kLo), Zmm(kC0F), Zmm(kHi));
      vpsrlw(Zmm(kHi), Zmm(kHi), 4);
      vpandd(Zmm(kHi), Zmm(kHi), Zmm(kC0F));
      vmovdqu8(Zmm(kHB), ptr[w + p_.hb_off + 64 * (c % 16)]);
      // Top bits of element 4c + t at 2(c/16), of 128 + 4c + t at 4 + 2(c/16): to bits 4..5.
      vpsllw(Zmm(kT), Zmm(kHB), 4 - 2 * (c / 16));
      vpternlogd(Zmm(kLo), Zmm(kT), ptr_b[rip + c30b_], 0xF8);  // lo | (t & 0x30)
      if (c < 16) {
        vpternlogd(Zmm(kHi), Zmm(kHB), ptr_b[rip + c30b_], 0xF8);
      } else {
        vpsrlw(Zmm(kT), Zmm(kHB), 2);
        vpternlogd(Zmm(kHi), Zmm(kT), ptr_b[rip + c30b_], 0xF8);
      }
      for (int m = 0; m < rows; ++m) {
        const int acc = many_ ? q6_isum(m) : q6_lane(c % 8);
        q6k_group(kLo, kScA, 4 * c, m, acc);
        q6k_group(kHi, kScB, 128 + 4 * c, m, acc);
      }
    }
    // The +32 offset: lane l -= 32 * (scale_{2l} * bsum_{2l} + scale_{2l+1} * bsum_{2l+1}).
    for (int l = 0; l < 8; ++l) {
      q6k_scale_pair(kScA, 2 * l, 2 * l + 1);
      for (int m = 0; m < rows; ++m) {
        const int acc = many_ ? q6_isum(m) : q6_lane(l);
        vpbroadcastd(Zmm(kXb), ptr[arow(m) + 4 * l]);
        vpmaddwd(Zmm(kT), Zmm(kScA), Zmm(kXb));
        vpslld(Zmm(kT), Zmm(kT), 5);
        vpsubd(Zmm(acc), Zmm(acc), Zmm(kT));
      }
    }
    if (many_) {  // acc = fma(float(S) * d_w, d_x, acc)
      vcvtph2ps(Zmm(kLo), ptr[w]);
      for (int m = 0; m < rows; ++m) {
        vcvtdq2ps(Zmm(kT), Zmm(q6_isum(m)));
        vmulps(Zmm(kT), Zmm(kT), Zmm(kLo));
        vfmadd231ps(Zmm(q6_acc(m)), Zmm(kT), ptr_b[arow(m) + 32]);
      }
      return;
    }
    vcvtph2ps(Zmm(kLo), ptr[w]);  // d = d_x * d_w, then one fma per lane
    vmulps(Zmm(kLo), Zmm(kLo), ptr_b[arow(0) + 32]);
    for (int l = 0; l < 8; ++l) {
      vcvtdq2ps(Zmm(kT), Zmm(q6_lane(l)));
      vfmadd231ps(Zmm(q6_flane(l)), Zmm(kT), Zmm(kLo));
    }
  }

  void store() {
    mov(rax, ptr[rsp + kYStride]);
    lea(rdx, ptr[rax + rax * 2]);
    if (t_ == DType::Q6_K && !many_) {  // hsum_float_8 across the lane registers
      for (int l = 0; l < 4; ++l) vaddps(Zmm(q6_flane(l)), Zmm(q6_flane(l + 4)), Zmm(q6_flane(l)));
      vaddps(Zmm(q6_flane(0)), Zmm(q6_flane(0)), Zmm(q6_flane(2)));
      vaddps(Zmm(q6_flane(1)), Zmm(q6_flane(1)), Zmm(q6_flane(3)));
      vaddps(Zmm(q6_flane(0)), Zmm(q6_flane(0)), Zmm(q6_flane(1)));
      vmovups(ptr[rY], Zmm(q6_flane(0)));
      return;
    }
    for (int m = 0; m < mr_; ++m) {
      int r = t_ == DType::Q6_K ? q6_acc(m) : q4_acc(m);
      if (t_ == DType::Q4_K) vsubps(Zmm(r), Zmm(r), Zmm(q4_accm(m)));
      vmovups(ptr[rowexp(rY, rY, rax, rdx, m)], Zmm(r));
    }
  }

  const DType t_;
  PackedK p_{};
  int mr_ = 0;
  bool many_ = false;
  Xbyak::Label c0F_, c3Fd_, c0Fd_, c30d_, c30b_, cFFFF_;
};

}  // namespace

std::unique_ptr<PackedGen> make_packed_kquant_gen(Isa isa, DType weight_type) {
  return std::make_unique<PackedKquantGen>(isa, weight_type);
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
