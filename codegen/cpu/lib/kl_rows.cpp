// Row operations along the last axis: rms_norm, norm, softmax, argmax, and rope over one head row.
// rms_norm, softmax (without softcap) and rope round exactly as ggml-cpu, i.e. as the reference
// interpreter (runtime/interp_norm.cpp, interp_rope.cpp); norm as the interpreter.
#include "kl.h"

// ggml's arithmetic (and the interpreter's): f32 squares summed in double one after the other (GCC
// does not reorder ggml's loop, and any other order can differ in the last bit), the mean and the
// scale in f32, y = x * scale in f32.
KL_API void kl_rms_norm_row(const float* x, float* y, int64_t n, double eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i] * x[i]);
  const float mean = float(ss / double(n));
  const float s = 1.0f / __builtin_sqrtf(mean + float(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

// The interpreter's arithmetic (not ggml's, which no model we test needs): sums in double, in
// order.
KL_API void kl_norm_row(const float* x, float* y, int64_t n, double eps) {
  double sum = 0.0, var = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]);
  const double mean = sum / double(n);
  for (int64_t i = 0; i < n; ++i) var += (double(x[i]) - mean) * (double(x[i]) - mean);
  const double s = 1.0 / __builtin_sqrt(var / double(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = float((double(x[i]) - mean) * s);
}

// z = (softcap > 0 ? softcap tanh(x / softcap) : x) * scale + mask; y = softmax(z). A row whose z
// are all -inf gives zeros. `mask` may be null. y may be x.
//
// Without softcap, ggml_soft_max_ext as ggml-cpu computes it: z in f32, exp by ggml_v_expf per 16
// elements, each 16 summed by reduce16 and added in double, the tail by the C library's expf
// added in double, then y = e * float(1 / sum).
KL_API void kl_softmax_row(const float* x, const float* mask, float* y, int64_t n, float scale,
                           float softcap) {
  float mx = -__builtin_inff();
  for (int64_t i = 0; i < n; ++i) {
    float z = x[i];
    if (softcap > 0.0f) z = softcap * kl_tanhf(z / softcap);
    z = z * scale;
    if (mask) z += mask[i];
    y[i] = z;
    mx = kl::max(mx, z);
  }
  if (mx == -__builtin_inff()) {
    for (int64_t i = 0; i < n; ++i) y[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  if (softcap > 0.0f) {
#pragma clang fp reassociate(on)
    for (int64_t i = 0; i < n; ++i) {
      const float e = kl_expf(y[i] - mx);
      y[i] = e;
      sum += double(e);
    }
  } else {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      float e[16];
      for (int l = 0; l < 16; ++l) y[i + l] = e[l] = kl_expf(y[i + l] - mx);
      sum += double(kl::reduce16(e));
    }
    for (; i < n; ++i) sum += double(y[i] = expf(y[i] - mx));
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

// Index of the first maximum; NaN never wins.
KL_API int32_t kl_argmax_row(const float* x, int64_t n) {
  float best = -__builtin_inff();
  int32_t at = 0;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > best) {
      best = x[i];
      at = int32_t(i);
    }
  return at;
}

// The rope angles of one position, as ggml-cpu (and the interpreter) computes them: theta_i the
// running f32 product pos * theta_scale^i (theta_scale = freq_base^(-2/nd) in f32, computed by
// the code generator with the same powf), t = freq_scale * theta_i, cs = {cosf(t), sinf(t)} per
// pair i < nd/2 from the C library, as llama.cpp calls them (its cos and sin are not ours).
KL_API void kl_rope_angles(float* cs, int64_t nd, int64_t pos, float freq_scale,
                           float theta_scale) {
  float theta = float(pos);
  for (int64_t i = 0; i < nd / 2; ++i) {
    const float t = freq_scale * theta;
    cs[2 * i] = cosf(t);
    cs[2 * i + 1] = sinf(t);
    theta *= theta_scale;
  }
}

// One head row of D elements with the angles cs of its position (kl_rope_angles): pairs (2i, 2i+1)
// (normal) or (i, i + nd/2) (neox) for i < nd/2 rotate as GCC compiles ggml's rotation, with fused
// multiply-adds y0 = fma(x0, c, -(x1 s)), y1 = fma(x0, s, x1 c); elements past nd pass through.
// x and y must not overlap.
KL_API void kl_rope_row(const float* x, float* y, int64_t D, int64_t nd, int32_t neox,
                        const float* cs) {
  const int64_t half = nd / 2;
  for (int64_t i = nd; i < D; ++i) y[i] = x[i];
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
    const float x0 = x[i0], x1 = x[i1];
    y[i0] = __builtin_fmaf(x0, c, -(x1 * s));
    y[i1] = __builtin_fmaf(x0, s, x1 * c);
  }
}
