// The kernel library: building blocks that generated kernels call (docs/codegen-cpu.md). These
// sources are compiled by clang to LLVM bitcode at build time, once per target triple, with no CPU
// features; at kernel compile time the bitcode is linked into each kernel module, retargeted to the
// target CPU and inlined, so every loop gets the kernel's static shapes and the target's vectors.
//
// Freestanding C++: no exceptions, no libstdc++, no libm (our own exp/tanh/erf), nothing
// that needs a runtime. Every entry point is extern "C" with a kl_ prefix; the code generator
// names them by string (codegen/cpu/library.h lists the ones it calls).
//
// One exception to "no libm": where llama.cpp calls the C library's cosf, sinf (rope angles) or
// expf (the scalar tail of its softmax), exactness needs the very same function, so the library
// calls them as external symbols; the JIT resolves them from the process (glibc's libm), an
// ahead-of-time object from whatever links it (docs/codegen-cpu.md).
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KL_API extern "C"
#define KL_INLINE static inline __attribute__((always_inline))

namespace kl {

KL_INLINE float bits_f32(uint32_t b) {
  float f;
  __builtin_memcpy(&f, &b, 4);
  return f;
}
KL_INLINE uint32_t f32_bits(float f) {
  uint32_t b;
  __builtin_memcpy(&b, &f, 4);
  return b;
}
KL_INLINE uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  __builtin_memcpy(&v, p, 2);
  return v;
}
KL_INLINE uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}
KL_INLINE float load_f32(const uint8_t* p) {
  float v;
  __builtin_memcpy(&v, p, 4);
  return v;
}
KL_INLINE void store_u16(uint8_t* p, uint16_t v) {
  __builtin_memcpy(p, &v, 2);
}
KL_INLINE void store_u32(uint8_t* p, uint32_t v) {
  __builtin_memcpy(p, &v, 4);
}

template <class T>
KL_INLINE T min(T a, T b) {
  return a < b ? a : b;
}
template <class T>
KL_INLINE T max(T a, T b) {
  return a > b ? a : b;
}

// _mm512_reduce_add_ps as GCC expands it (halves, quarters, then pairs), as ggml-cpu's AVX-512
// build sums 16 lanes and the reference interpreter (runtime/interp_ggml_math.h) reproduces it.
KL_INLINE float reduce16(const float* a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[i + 4] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

}  // namespace kl

// The C library functions the kernel library calls (see above).
extern "C" float expf(float);
extern "C" float cosf(float);
extern "C" float sinf(float);

// Conversions (kl_math.cpp). The code generator replaces the bodies of the f16 ones with the
// target's native conversion where it has one (F16C, AArch64): same results, one instruction.
KL_API float kl_f16_to_f32(uint16_t h);
KL_API uint16_t kl_f32_to_f16(float f);
KL_API void kl_f16x16_to_f32(const uint8_t* src, float* dst);
KL_API float kl_bf16_to_f32(uint16_t h);
KL_API uint16_t kl_f32_to_bf16(float f);

// Scalar math in f32 (kl_math.cpp), accurate to a few ulp, written to vectorize. kl_expf is
// ggml_v_expf and kl_silu ggml_v_silu, lane for lane (bit-identical to llama.cpp).
KL_API float kl_expf(float x);
KL_API float kl_tanhf(float x);
KL_API float kl_erff(float x);
KL_API float kl_silu(float x);
KL_API float kl_gelu_tanh(float x);
KL_API float kl_gelu_erf(float x);
KL_API float kl_tanhf_exact(float x);
KL_API float kl_gelu_tanh_f16(float x);

// Dot product of two f32 rows.
KL_API float kl_vdot(const float* a, const float* b, int64_t n);
