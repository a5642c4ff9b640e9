// Elementwise ops. Binary ops broadcast numpy-style. Arithmetic of two floats is correctly
// rounded in f32 already; the transcendental ops are evaluated in double and rounded once, so the
// oracle is as close to the math as a float result can be.
#include <cmath>
#include <numbers>

#include "ir/half.h"
#include "runtime/interp_ggml_math.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {
namespace {

template <class F>
Status binary(KernelArgs& a, F f) {
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  KILN_ASSIGN_OR_RETURN(const float* y, f32_data(a.in[1], a.scratch, 1));
  const ir::Shape& shape = a.out[0].shape();
  float* z = a.out[0].as<float>();
  BroadcastWalk walk(shape, broadcast_strides(a.in[0].shape(), shape),
                     broadcast_strides(a.in[1].shape(), shape));
  const int64_t n = a.out[0].numel();
  for (int64_t i = 0; i < n; ++i, walk.next()) z[i] = f(x[walk.a()], y[walk.b()]);
  return Status::Ok();
}

template <class F>
Status unary(KernelArgs& a, F f) {
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  float* y = a.out[0].as<float>();
  const int64_t n = a.out[0].numel();
  for (int64_t i = 0; i < n; ++i) y[i] = float(f(double(x[i])));
  return Status::Ok();
}

}  // namespace

Status run_Add(KernelArgs& a) {
  return binary(a, [](float x, float y) { return x + y; });
}
Status run_Sub(KernelArgs& a) {
  return binary(a, [](float x, float y) { return x - y; });
}
Status run_Mul(KernelArgs& a) {
  return binary(a, [](float x, float y) { return x * y; });
}
Status run_Div(KernelArgs& a) {
  return binary(a, [](float x, float y) { return x / y; });
}

Status run_Scale(KernelArgs& a) {
  // ggml scales in f32 by the f32 value of the attribute; so do we (x * s is exact-rounded).
  const float s = float(a.node.attrs.f("scale"));
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[0], a.scratch, 0));
  float* y = a.out[0].as<float>();
  for (int64_t i = 0; i < a.out[0].numel(); ++i) y[i] = x[i] * s;
  return Status::Ok();
}

// ggml's vectorized SiLU (interp_ggml_math.h), as llama.cpp computes it.
Status run_Silu(KernelArgs& a) {
  return unary(a, [](double x) { return double(ggml_silu(float(x))); });
}

Status run_Gelu(KernelArgs& a) {
  if (a.node.attrs.s("approx") == "tanh_f16")
    return unary(a, [](double x) { return double(ggml_gelu_tanh_f16(float(x))); });
  if (a.node.attrs.s("approx") == "erf")
    return unary(a, [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); });
  const double c = std::sqrt(2.0 / std::numbers::pi);
  return unary(
      a, [c](double x) { return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x))); });
}

Status run_Tanh(KernelArgs& a) {
  return unary(a, [](double x) { return std::tanh(x); });
}
Status run_Exp(KernelArgs& a) {
  return unary(a, [](double x) { return std::exp(x); });
}

// Row by row (last axis) through f32: to a quant type, the reference quantizer per row.
Status run_Cast(KernelArgs& a) {
  const Tensor& x = a.in[0];
  Tensor& y = a.out[0];
  const int64_t n = x.rank() ? x.dim(-1) : 1;
  const int64_t rows = n ? x.numel() / n : 0;
  const size_t xr = last_row_bytes(*x.type), yr = last_row_bytes(*y.type);
  float* row = a.scratch.get(0, size_t(n));
  for (int64_t r = 0; r < rows; ++r) {
    KILN_RETURN_IF_ERROR(to_f32(x.dtype(), x.data + size_t(r) * xr, row, size_t(n)));
    KILN_RETURN_IF_ERROR(from_f32(y.dtype(), row, y.data + size_t(r) * yr, size_t(n)));
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
