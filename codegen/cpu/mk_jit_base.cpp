// JitBase: the frame, the tile loop and the horizontal sums shared by the tile generators.
#if defined(KILN_WITH_XBYAK)

#include "codegen/cpu/mk_jit_base.h"

#include <cstddef>
#include <cstdint>
#include <utility>

namespace kiln::mk::detail {

IsaCfg isa_cfg(Isa isa) {
  IsaCfg c;
  c.avx512 = isa == Isa::kAvx512Vnni;
  c.vnni = isa == Isa::kAvx512Vnni || isa == Isa::kAvx2Vnni;
  return c;
}

void JitBase::prologue(int frame_bytes) {
  push(rbx);
  push(rbp);
  push(r12);
  push(r13);
  push(r14);
  push(r15);
  mov(rax, rsp);
  sub(rsp, frame_bytes + 64);
  and_(rsp, -64);
  mov(ptr[rsp + kSavedRsp], rax);
  mov(ptr[rsp + kArgs], rdi);
  mov(rWS, ptr[rdi + offsetof(TileArgs, w_stride)]);
  lea(rWS3, ptr[rWS + rWS * 2]);
  mov(rXS, ptr[rdi + offsetof(TileArgs, x_stride)]);
  lea(rXS3, ptr[rXS + rXS * 2]);
  mov(rY, ptr[rdi + offsetof(TileArgs, y)]);
  const std::pair<size_t, int> copies[] = {
      {offsetof(TileArgs, ntiles), kNtiles},    {offsetof(TileArgs, w), kWTile},
      {offsetof(TileArgs, y_stride), kYStride}, {offsetof(TileArgs, nsteps), kNsteps},
      {offsetof(TileArgs, tail), kTail},        {offsetof(TileArgs, aux_off), kAuxOff}};
  for (const auto& [from, to] : copies) {
    mov(rax, ptr[rdi + from]);
    mov(ptr[rsp + to], rax);
  }
  if (isa_.avx512) set_masks();
}

void JitBase::epilogue() {
  mov(rsp, ptr[rsp + kSavedRsp]);
  pop(r15);
  pop(r14);
  pop(r13);
  pop(r12);
  pop(rbp);
  pop(rbx);
  vzeroupper();
  ret();
}

void JitBase::set_masks() {
  // k1: upper half of 16 dwords (zmm) or of 16 words (ymm); k2: the odd 128-bit lanes of 32
  // words; k3: upper half of 32 words; k6: upper half of 8 dwords (ymm).
  const std::pair<int, uint32_t> masks[] = {
      {1, 0xFF00u}, {2, 0xFF00FF00u}, {3, 0xFFFF0000u}, {6, 0xF0u}};
  for (const auto& [k, bits] : masks) {
    mov(eax, bits);
    kmovd(Xbyak::Opmask(k), eax);
  }
}

void JitBase::tile_begin(int nr, int pf_tiles) {
  mov(rdi, ptr[rsp + kArgs]);
  mov(rW0, ptr[rsp + kWTile]);
  if (nr > 4) lea(rW4, ptr[rW0 + rWS * 4]);
  mov(rX, ptr[rdi + offsetof(TileArgs, x)]);
  mov(rXA, rX);
  add(rXA, ptr[rsp + kAuxOff]);
  mov(rK, ptr[rsp + kNsteps]);
  imul(rPF, rWS, nr * pf_tiles);
  add(rPF, rW0);
}

void JitBase::prefetch_next(int bytes, bool to_l1) {
  for (int off = 0; off < bytes; off += 64) {
    if (to_l1)
      prefetcht0(ptr[rPF + off]);
    else
      prefetcht2(ptr[rPF + off]);
  }
  add(rPF, bytes);
}

void JitBase::tile_end(int w_rows, int y_elems, const Xbyak::Label& loop) {
  imul(rax, rWS, w_rows);
  add(ptr[rsp + kWTile], rax);
  add(rY, 4 * y_elems);
  dec(qword[rsp + kNtiles]);
  jnz(loop, T_NEAR);
}

void JitBase::store_sum_mem(int slot, int t0, int t1, int m, int n) {
  if (isa_.avx512)
    vmovups(Zmm(t0), ptr[rsp + slot]);
  else
    vmovups(Ymm(t0), ptr[rsp + slot]);
  store_sum(t0, t0, t1, m, n);
}

void JitBase::store_sum(int acc, int t0, int t1, int m, int n) {
  const Xmm x0 = Xmm(t0), x1 = Xmm(t1);
  if (isa_.avx512) {
    vextractf64x4(Ymm(t1), Zmm(acc), 1);
    vaddps(Ymm(t0), Ymm(t1), Ymm(acc));
    vextractf32x4(x1, Ymm(t0), 1);
    vaddps(x0, x0, x1);
  } else {
    vextractf128(x1, Ymm(acc), 1);
    vaddps(x0, x1, Xmm(acc));
  }
  vmovhlps(x1, x0, x0);
  vaddps(x0, x0, x1);
  vmovshdup(x1, x0);
  vaddss(x0, x0, x1);
  mov(rax, ptr[rsp + kYStride]);
  switch (m) {
    case 0:
      vmovss(ptr[rY + 4 * n], x0);
      break;
    case 1:
      vmovss(ptr[rY + rax + 4 * n], x0);
      break;
    case 2:
      vmovss(ptr[rY + rax * 2 + 4 * n], x0);
      break;
    default:
      lea(rdx, ptr[rax + rax * 2]);
      vmovss(ptr[rY + rdx + 4 * n], x0);
      break;
  }
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
