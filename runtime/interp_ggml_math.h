// Scalar replicas of ggml-cpu's vectorized float routines (its AVX-512 build, which made the
// llama.cpp goldens in tests/data/generation). Each reproduces the vector code's operations
// lane by lane, fused multiply-adds included, so the reference interpreter rounds exactly as
// llama.cpp does; an ulp of difference can otherwise flip an 8-bit activation rounding several
// layers later and move the logits by tenths (docs/parity.md).
#pragma once

#include <cmath>

#include "ir/half.h"

namespace kiln::runtime::interp {

// ggml_v_expf (AVX-512): a degree-5 polynomial on the reduced argument, scaled by 2^n.
inline float ggml_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  if (std::fabs(n) > 192.f) return n <= 0.f ? 0.f : INFINITY;
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  return std::ldexp(j, int(n));
}

// ggml_v_silu: x / (1 + exp(-x)) with the expf above.
inline float ggml_silu(float x) {
  return x / (1.0f + ggml_expf(0.0f - x));
}

// hsum_float_8: the pairwise reduction of eight f32 lanes ggml's x86 dot products end with.
inline float ggml_hsum8(const float* a) {
  const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
  return (r0 + r2) + (r1 + r3);
}

// _mm512_reduce_add_ps as GCC expands it: halves, quarters, then pairs.
inline float ggml_reduce16(const float* a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[i + 4] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// llamafile's tinyBLAS f16 product on AVX-512 (what ggml-cpu runs for an f16 x f16 mul_mat):
// sixteen f32 lanes, lane i accumulating a[16c + i] * b[16c + i] by fused multiply-add over the
// chunks c, then ggml_reduce16. n is a multiple of 16.
inline float ggml_dot16(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  for (int64_t c = 0; c < n; c += 16)
    for (int i = 0; i < 16; ++i) acc[i] = std::fma(a[c + i], b[c + i], acc[i]);
  return ggml_reduce16(acc);
}

// ggml_vec_dot_f16 on AVX-512 (what ggml-cpu runs for an f16 mul_mat with one activation row,
// where llamafile declines): four accumulators of sixteen lanes over steps of 64 elements,
// summed pairwise, reduced to f64, the tail added in f64, the result rounded to f32.
inline float ggml_vec_dot_f16(const float* a, const float* b, int64_t n) {
  float acc[4][16] = {};
  const int64_t np = n & ~int64_t(63);
  for (int64_t i = 0; i < np; i += 64)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 16; ++l)
        acc[j][l] = std::fma(a[i + 16 * j + l], b[i + 16 * j + l], acc[j][l]);
  for (int l = 0; l < 16; ++l) {
    acc[0][l] += acc[2][l];
    acc[1][l] += acc[3][l];
  }
  for (int l = 0; l < 16; ++l) acc[0][l] += acc[1][l];
  double sum = ggml_reduce16(acc[0]);
  for (int64_t i = np; i < n; ++i) sum += double(a[i] * b[i]);
  return float(sum);
}

// ggml-cpu's GELU: the tanh formula in f32 on the input rounded to f16, the result rounded to
// f16 (its 64K-entry table), exact outside [-10, 10]. The CUDA backend tabulates it on the host
// (a GPU's tanhf rounds differently).
inline float ggml_gelu_tanh_f16(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  const float h = f16_to_f32(f32_to_f16(x));
  const float c = 0.79788456080286535587989211986876f;
  // GCC contracts ggml's `1.0f + GELU_COEF_A*x*x` into one fused multiply-add.
  const float inner = c * h * std::fma(0.044715f * h, h, 1.0f);
  const float y = 0.5f * h * (1.0f + std::tanh(inner));
  return f16_to_f32(f32_to_f16(y));
}

}  // namespace kiln::runtime::interp
