// Conversions and scalar math for the kernel library. Each function is branch-free (selects, not
// jumps) so that loops calling it vectorize after inlining. exp and silu are ggml-cpu's (bit for
// bit); tanh within a few f32 ulp; erf within 2e-7 absolute.
#include "kl.h"

using kl::bits_f32;
using kl::f32_bits;

KL_API float kl_f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  const uint32_t normal = (em << 13) + 0x38000000u;  // rebias 15 -> 127
  const uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13);
  const float sub = float(em) * 5.9604644775390625e-8f;  // mantissa * 2^-24, exact
  uint32_t bits = em >= 0x7c00u ? special : normal;
  bits = em < 0x400u ? f32_bits(sub) : bits;
  return bits_f32(bits | sign);
}

// Round to nearest even, as ir/half.h and F16C's vcvtps2ph with imm 0.
KL_API uint16_t kl_f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u)
    return uint16_t(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);
  if (a < 0x38800000u) {
    const float s = bits_f32(a) * 16777216.0f;
    uint32_t m = uint32_t(s);
    const float rem = s - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return uint16_t(sign | m);
  }
  uint32_t h = (((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13);
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

// 16 halves at src to floats at dst. Where the target converts halves natively, the code generator
// replaces the body with one vector conversion: the vectorizer does not form a 16-wide one from
// kl_f16_to_f32 (its cost model picks 4 lanes).
KL_API void kl_f16x16_to_f32(const uint8_t* src, float* dst) {
  for (int l = 0; l < 16; ++l) dst[l] = kl_f16_to_f32(kl::load_u16(src + 2 * l));
}

KL_API float kl_bf16_to_f32(uint16_t h) {
  return bits_f32(uint32_t(h) << 16);
}

KL_API uint16_t kl_f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 64u);
  return uint16_t((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

// ggml_v_expf (ggml-cpu's AVX-512 exp, runtime/interp_ggml_math.h): n = rint(x / ln 2) by the
// 1.5 * 2^23 trick, the reduced argument b = x - n ln 2 (ln 2 in two parts), a degree-5
// polynomial j(b), then j * 2^n as _mm512_scalef_ps does: one correctly rounded multiply,
// applied here as two power-of-two factors (n in [-192, 192] splits into halves that are normal
// floats, and j * 2^(n/2) is exact), so subnormal results round as scalef and ldexp do.
// |n| > 192 gives 0 or inf. Branch-free: it vectorizes.
KL_API float kl_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = __builtin_fmaf(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = __builtin_fmaf(-n, 0x1.7f7d1cp-20f, __builtin_fmaf(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j =
      __builtin_fmaf(__builtin_fmaf(__builtin_fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    __builtin_fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                     u, __builtin_fmaf(0x1.ffffecp-1f, b, 1.0f));
  const int32_t ni = int32_t(kl::max(kl::min(n, 192.0f), -192.0f));  // NaN: any, j is NaN
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float y = j * bits_f32(uint32_t(n1 + 127) << 23) * bits_f32(uint32_t(n2 + 127) << 23);
  const float out = n <= 0.0f ? 0.0f : __builtin_inff();
  return __builtin_fabsf(n) > 192.0f ? out : y;
}

KL_API float kl_tanhf(float x) {
  const float a = __builtin_fabsf(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = 1.0f - 2.0f / (kl_expf(2.0f * a) + 1.0f);
  return a < 0.625f ? small : __builtin_copysignf(big, x);
}

// Abramowitz & Stegun 7.1.26 for |x| >= 0.5, the Maclaurin series below (no cancellation).
KL_API float kl_erff(float x) {
  const float a = __builtin_fabsf(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float big = 1.0f - p * t * kl_expf(-a * a);
  const float z = x * x;
  float s = -1.0f / 1320.0f;
  s = s * z + 1.0f / 216.0f;
  s = s * z - 1.0f / 42.0f;
  s = s * z + 1.0f / 10.0f;
  s = s * z - 1.0f / 3.0f;
  s = s * z + 1.0f;
  const float small = 1.1283791670955126f * x * s;
  return a < 0.5f ? small : __builtin_copysignf(big, x);
}

// ggml_v_silu.
KL_API float kl_silu(float x) {
  return x / (1.0f + kl_expf(0.0f - x));
}

KL_API float kl_gelu_tanh(float x) {
  const float c = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + kl_tanhf(c * (x + 0.044715f * x * x * x)));
}

// tanh in double from a double exp (|error| ~1e-16), then rounded: the correctly rounded f32 in
// all but vanishingly rare cases, as libm's tanhf.
static double exp_f64(double x) {
  const double xc = kl::max(kl::min(x, 709.0), -745.0);
  const double n = __builtin_rint(xc * 1.4426950408889634);
  const double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r * r + r + 1.0;
  const int64_t ni = int64_t(n);
  const int64_t n1 = ni / 2, n2 = ni - n1;
  uint64_t b1 = uint64_t(n1 + 1023) << 52, b2 = uint64_t(n2 + 1023) << 52;
  double s1, s2;
  __builtin_memcpy(&s1, &b1, 8);
  __builtin_memcpy(&s2, &b2, 8);
  return p * s1 * s2;
}

KL_API float kl_tanhf_exact(float x) {
  const double a = __builtin_fabs(double(x));
  const double t = 1.0 - 2.0 / (exp_f64(2.0 * a) + 1.0);
  // Small |x|: the series, where 1 - 2/(e+1) would cancel.
  const double z = a * a;
  const double s =
      a *
      (1.0 + z * (-1.0 / 3 +
                  z * (2.0 / 15 + z * (-17.0 / 315 + z * (62.0 / 2835 + z * (-1382.0 / 155925))))));
  const double r = a < 0.125 ? s : t;
  return float(x < 0 ? -r : r);
}

// ggml-cpu's GELU (the interpreter's "tanh_f16"): the tanh formula in f32 on the input rounded to
// f16, the result rounded to f16; exact outside [-10, 10]. `1 + a*h*h` is one fused multiply-add,
// as GCC compiles ggml's table.
KL_API float kl_gelu_tanh_f16(float x) {
  const float h = kl_f16_to_f32(kl_f32_to_f16(x));
  const float c = 0.79788456080286535587989211986876f;
  const float inner = c * h * __builtin_fmaf(0.044715f * h, h, 1.0f);
  const float y = kl_f16_to_f32(kl_f32_to_f16(0.5f * h * (1.0f + kl_tanhf_exact(inner))));
  return x <= -10.0f ? 0.0f : x >= 10.0f ? x : y;
}

KL_API float kl_gelu_erf(float x) {
  return 0.5f * x * (1.0f + kl_erff(x * 0.7071067811865476f));
}

KL_API float kl_vdot(const float* a, const float* b, int64_t n) {
#pragma clang fp reassociate(on) contract(fast)
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
