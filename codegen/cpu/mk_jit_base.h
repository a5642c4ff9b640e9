// The skeleton shared by the xbyak tile generators: register conventions, the stack frame, the
// loop over weight-row tiles, and the few instructions whose AVX2 and AVX-512 spellings differ.
//
// A tile function computes mr activation rows times nr weight rows for `ntiles` consecutive
// groups of nr weight rows (mk_internal.h, TileArgs). Weight row n of the current tile is at
// wrow(n), activation row m's quants at xrow(m) and its aux records at arow(m); the generators
// advance the base registers as they walk along K.
#pragma once

#if defined(KILN_WITH_XBYAK)

#include <xbyak/xbyak.h>

#include <cstddef>
#include <memory>

#include "codegen/cpu/mk_internal.h"

namespace kiln::mk::detail {

struct IsaCfg {
  bool avx512 = false;  // 512-bit vectors, 32 registers, mask registers, EVEX
  bool vnni = false;    // vpdpbusd / vpdpwssd (EVEX with avx512, VEX otherwise)
  int vbytes() const { return avx512 ? 64 : 32; }
  int nregs() const { return avx512 ? 32 : 16; }
};
IsaCfg isa_cfg(Isa isa);

class JitBase : public Xbyak::CodeGenerator {
 public:
  JitBase(IsaCfg isa, size_t code_bytes)
      : Xbyak::CodeGenerator(code_bytes, Xbyak::DontSetProtectRWE), isa_(isa) {}

 protected:
  using Xmm = Xbyak::Xmm;
  using Ymm = Xbyak::Ymm;
  using Zmm = Xbyak::Zmm;
  using RegExp = Xbyak::RegExp;

  // Full-width vector register i.
  Xmm vr(int i) const { return isa_.avx512 ? Xmm(Zmm(i)) : Xmm(Ymm(i)); }

  // General registers.
  const Xbyak::Reg64 rW0 = r8, rW4 = r9, rWS = r10, rWS3 = r11;   // weight rows 0 and 4, stride
  const Xbyak::Reg64 rX = r12, rXA = r13, rXS = r14, rXS3 = r15;  // activation quants, aux, stride
  const Xbyak::Reg64 rK = rbx, rY = rsi;                          // K-step counter, output
  const Xbyak::Reg64 rPF = rbp;  // prefetch cursor: the next tile's weights
  // rax, rcx, rdx, rdi are scratch inside a tile.

  // Stack frame (rsp is 64-byte aligned inside a tile function).
  static constexpr int kSavedRsp = 0, kArgs = 8, kNtiles = 16, kWTile = 24, kYStride = 32,
                       kNsteps = 40, kTail = 48, kAuxOff = 56;
  static constexpr int kFrameData = 64;  // generators' own slots start here

  RegExp rowexp(const Xbyak::Reg64& base0, const Xbyak::Reg64& base4, const Xbyak::Reg64& s,
                const Xbyak::Reg64& s3, int i) const {
    const Xbyak::Reg64& b = i < 4 ? base0 : base4;
    switch (i & 3) {
      case 0:
        return RegExp(b);
      case 1:
        return b + s;
      case 2:
        return b + s * 2;
      default:
        return b + s3;
    }
  }
  RegExp wrow(int n) const { return rowexp(rW0, rW4, rWS, rWS3, n); }
  RegExp xrow(int m) const { return rowexp(rX, rX, rXS, rXS3, m); }
  RegExp arow(int m) const { return rowexp(rXA, rXA, rXS, rXS3, m); }

  // Saves registers, aligns the frame, copies the arguments (rdi) into it.
  void prologue(int frame_bytes);
  void epilogue();
  // Per tile: reloads the weight, activation and aux bases and the K counter, and points rPF at
  // the weights `pf_tiles` tiles ahead.
  void tile_begin(int nr, int pf_tiles = 1);
  // Prefetches the next `bytes` of the weights ahead (see tile_begin) and advances rPF. Called
  // once per K step with the bytes the current tile reads in that step. Measured on the
  // streaming GEMV (docs/microkernels.md): the file-layout tiles, which read nr rows side by
  // side, gain ~20% from prefetching the next tile into L1; the packed tiles, which read one
  // sequential stream, ~8% from prefetcht2 four groups ahead.
  void prefetch_next(int bytes, bool to_l1 = true);
  // Advances the weights by w_rows strides and y by y_elems floats; jumps to `loop` while tiles
  // are left.
  void tile_end(int w_rows, int y_elems, const Xbyak::Label& loop);
  // Sums the lanes of full-width register `acc` into float y[m][n] (t0, t1: scratch, < 16).
  void store_sum(int acc, int t0, int t1, int m, int n);
  // Same for a full-width vector in the frame.
  void store_sum_mem(int slot, int t0, int t1, int m, int n);

  // 64 bytes of v at label l (a constant for full-width loads and byte masks).
  void bytes64(Xbyak::Label& l, uint8_t v) {
    L(l);
    for (int i = 0; i < 64; ++i) db(v);
  }

  void vzero(int r) {
    if (isa_.avx512)
      vpxord(Zmm(r), Zmm(r), Zmm(r));
    else
      vpxor(Ymm(r), Ymm(r), Ymm(r));
  }
  void vmov_i(int d, int s) {
    if (isa_.avx512)
      vmovdqa32(Zmm(d), Zmm(s));
    else
      vmovdqa(Ymm(d), Ymm(s));
  }
  // acc += sum of 4 u8 * s8 products per int32 lane.
  void dpbusd(const Xmm& acc, const Xmm& u8, const Xbyak::Operand& s8) {
    vpdpbusd(acc, u8, s8, isa_.avx512 ? Xbyak::EvexEncoding : Xbyak::VexEncoding);
  }
  // acc += sum of 2 s16 * s16 products per int32 lane.
  void dpwssd(const Xmm& acc, const Xmm& a, const Xbyak::Operand& b) {
    vpdpwssd(acc, a, b, isa_.avx512 ? Xbyak::EvexEncoding : Xbyak::VexEncoding);
  }
  // The mask registers of the AVX-512 variant, set once in the prologue.
  void set_masks();

  const IsaCfg isa_;
};

// Registers handed out in order; running out is a generator bug (the plans count first).
class RegPool {
 public:
  explicit RegPool(int n) : n_(n) {}
  int get() { return next_ < n_ ? next_++ : -1; }
  int used() const { return next_; }

 private:
  int n_, next_ = 0;
};

// A generator of all tiles of one (type, ISA); it owns their code.
class TileGen : public JitBase {
 public:
  using JitBase::JitBase;
  virtual ~TileGen() = default;
  // Emits every tile shape into ts (xbyak throws on failure; jit_tiles catches).
  virtual void build(TileSet& ts) = 0;
};

// The generator of one (type, ISA)'s packed-layout tiles.
class PackedGen : public JitBase {
 public:
  using JitBase::JitBase;
  virtual ~PackedGen() = default;
  virtual void build(PackedSet& ps) = 0;
};

std::unique_ptr<TileGen> make_legacy_gen(Isa isa, DType weight_type);    // Q4_0 Q4_1 Q5_0 Q8_0
std::unique_ptr<PackedGen> make_packed_gen(Isa isa, DType weight_type);  // the same, packed
// The packed tiles in ggml-cpu's summation order (AVX-512 VNNI only).
std::unique_ptr<PackedGen> make_packed_ggml_gen(Isa isa, DType weight_type);
// Q4_K and Q6_K packed, in ggml-cpu's orders (AVX-512 VNNI only).
std::unique_ptr<PackedGen> make_packed_kquant_gen(Isa isa, DType weight_type);
std::unique_ptr<TileGen> make_kquant_gen(Isa isa, DType weight_type);  // Q4_K Q6_K

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
