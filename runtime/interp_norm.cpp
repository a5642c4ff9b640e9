// Reductions along the last axis: rms_norm, norm, softmax, argmax. Sums are taken in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/interp_ggml_math.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {
namespace {

int64_t last_dim(const Tensor& t) {
  return t.rank() ? t.dim(-1) : 1;
}

}  // namespace

Status run_RmsNorm(KernelArgs& a) {
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  float* y = a.out[0].as<float>();
  const double eps = a.node.attrs.f("eps");
  const int64_t n = last_dim(a.in[0]), rows = n ? a.in[0].numel() / n : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    // ggml's arithmetic: f32 squares summed in double, the mean and the scale rounded to f32.
    // Matching it bit for bit keeps kiln's greedy tokens equal to llama.cpp's.
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(xr[i] * xr[i]);
    const float mean = float(ss / double(n));
    const float s = 1.0f / std::sqrt(mean + float(eps));
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = xr[i] * s;
  }
  return Status::Ok();
}

Status run_Norm(KernelArgs& a) {
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  float* y = a.out[0].as<float>();
  const double eps = a.node.attrs.f("eps");
  const int64_t n = last_dim(a.in[0]), rows = n ? a.in[0].numel() / n : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += xr[i];
    const double mean = sum / double(n);
    double var = 0;
    for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double s = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = float((xr[i] - mean) * s);
  }
  return Status::Ok();
}

void softmax_row(const float* x, const float* mask, int64_t mask_stride, int64_t n, double scale,
                 double softcap, float* y) {
  auto z = [&](int64_t j) {
    double v = x[j];
    if (softcap > 0) v = softcap * std::tanh(v / softcap);
    v *= scale;
    if (mask) v += mask[j * mask_stride];
    return v;
  };
  if (softcap == 0) {  // ggml_soft_max_ext as ggml-cpu computes it (docs/parity.md)
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      y[j] = x[j] * float(scale);
      if (mask) y[j] += mask[j * mask_stride];
      mx = std::max(mx, y[j]);
    }
    if (mx == -INFINITY) {
      for (int64_t j = 0; j < n; ++j) y[j] = 0.0f;
      return;
    }
    double sum = 0;
    int64_t j = 0;
    for (float lanes[16]; j + 16 <= n; j += 16) {  // vectorized: f32 sums of 16, added in f64
      for (int l = 0; l < 16; ++l) lanes[l] = y[j + l] = ggml_expf(y[j + l] - mx);
      sum += double(ggml_reduce16(lanes));
    }
    for (; j < n; ++j) sum += double(y[j] = std::exp(y[j] - mx));  // scalar tail: libm expf
    const float inv = float(1.0 / sum);
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
    return;
  }
  double max = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) max = std::fmax(max, z(j));
  if (max == -std::numeric_limits<double>::infinity()) {
    for (int64_t j = 0; j < n; ++j) y[j] = 0.0f;
    return;
  }
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(z(j) - max);
  for (int64_t j = 0; j < n; ++j) y[j] = float(std::exp(z(j) - max) / sum);
}

Status run_Softmax(KernelArgs& a) {
  const Tensor& xt = a.in[0];
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(xt, a.scratch, 0));
  float* y = a.out[0].as<float>();
  const double scale = a.node.attrs.f("scale"), softcap = a.node.attrs.f("softcap");
  const int64_t n = last_dim(xt), rows = n ? xt.numel() / n : 0;
  if (a.in.size() == 1) {
    for (int64_t r = 0; r < rows; ++r)
      softmax_row(x + r * n, nullptr, 0, n, scale, softcap, y + r * n);
    return Status::Ok();
  }
  // The mask broadcasts to x: walk x's rows keeping the mask offset of each row's first element.
  KILN_ASSIGN_OR_RETURN(const float* m, f32_data(a.in[1], a.scratch, 1));
  std::vector<int64_t> ms = broadcast_strides(a.in[1].shape(), xt.shape());
  const int64_t m_last = ms.empty() ? 0 : ms.back();
  ir::Shape row_shape = xt.shape();
  if (!row_shape.empty()) row_shape.pop_back();
  if (!ms.empty()) ms.pop_back();
  BroadcastWalk walk(row_shape, ms, {});
  for (int64_t r = 0; r < rows; ++r, walk.next())
    softmax_row(x + r * n, m + walk.a(), m_last, n, scale, softcap, y + r * n);
  return Status::Ok();
}

// The first maximum; NaN never wins (ggml's loop: strictly greater than the best so far,
// starting from -inf at index 0).
Status run_Argmax(KernelArgs& a) {
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  int32_t* y = a.out[0].as<int32_t>();
  const int64_t n = last_dim(a.in[0]), rows = n ? a.in[0].numel() / n : 0;
  for (int64_t r = 0; r < rows; ++r) {
    float best = -std::numeric_limits<float>::infinity();
    int32_t at = 0;
    for (int64_t i = 0; i < n; ++i)
      if (x[r * n + i] > best) {
        best = x[r * n + i];
        at = int32_t(i);
      }
    y[r] = at;
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
