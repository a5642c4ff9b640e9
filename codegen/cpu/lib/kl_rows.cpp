// Row operations along the last axis: rms_norm, norm, softmax, argmax, and rope over one head row.
// Sums of squares and means are taken in double (vectorized: the pragma lets the vectorizer keep
// several partial sums), so results match the reference interpreter to the last bit or nearly.
#include "kl.h"

// ggml's arithmetic (and the interpreter's): f32 squares summed in double, the mean and the scale
// in f32, y = x * scale in f32.
KL_API void kl_rms_norm_row(const float* x, float* y, int64_t n, double eps) {
  double ss = 0.0;
  {
#pragma clang fp reassociate(on)
    for (int64_t i = 0; i < n; ++i) ss += double(x[i] * x[i]);
  }
  const float mean = float(ss / double(n));
  const float s = 1.0f / __builtin_sqrtf(mean + float(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

KL_API void kl_norm_row(const float* x, float* y, int64_t n, double eps) {
  double sum = 0.0, var = 0.0;
  {
#pragma clang fp reassociate(on)
    for (int64_t i = 0; i < n; ++i) sum += double(x[i]);
  }
  const double mean = sum / double(n);
  {
#pragma clang fp reassociate(on)
    for (int64_t i = 0; i < n; ++i) var += (double(x[i]) - mean) * (double(x[i]) - mean);
  }
  const double s = 1.0 / __builtin_sqrt(var / double(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = float((double(x[i]) - mean) * s);
}

// z = (softcap > 0 ? softcap tanh(x / softcap) : x) * scale + mask; y = softmax(z). A row whose z
// are all -inf gives zeros. `mask` may be null. y may be x.
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
  {
#pragma clang fp reassociate(on)
    for (int64_t i = 0; i < n; ++i) {
      const float e = kl_expf(y[i] - mx);
      y[i] = e;
      sum += double(e);
    }
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

// One head row of D elements at position `pos`: pairs (2i, 2i+1) (normal) or (i, i + nd/2)
// (neox) for i < nd/2 rotate by theta_i = pos * freq_scale * inv_freq[i] (inv_freq[i] =
// freq_base^(-2i/nd), a table the code generator computes); elements past nd pass through.
// Computed in double, as the reference does. x and y must not overlap.
KL_API void kl_rope_row(const float* x, float* y, int64_t D, int64_t nd, int32_t neox, int64_t pos,
                        double freq_scale, const double* inv_freq) {
  const double p = double(pos) * freq_scale;
  const int64_t half = nd / 2;
  for (int64_t i = nd; i < D; ++i) y[i] = x[i];
  for (int64_t i = 0; i < half; ++i) {
    const double theta = p * inv_freq[i];
    const double c = kl_cos(theta), s = kl_sin(theta);
    const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
    const double x0 = x[i0], x1 = x[i1];
    y[i0] = float(x0 * c - x1 * s);
    y[i1] = float(x0 * s + x1 * c);
  }
}
