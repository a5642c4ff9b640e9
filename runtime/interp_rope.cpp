// Rotary position embedding. The angles are computed in double from the definition
// (theta_i = pos * freq_scale * freq_base^(-2i/n_dims)), not by ggml's running f32 product, so
// the oracle stays exact at large positions; backends compare against it with a tolerance.
#include <cmath>

#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {

// x [..., T, H, D], pos [..., T]: every head row of position p rotates its first n_dims elements
// in pairs, (2i, 2i+1) for "normal" and (i, i + n_dims/2) for "neox".
Status run_Rope(KernelArgs& a) {
  const Tensor& xt = a.in[0];
  const Tensor& pos = a.in[1];
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(xt, a.scratch, 0));
  float* y = a.out[0].as<float>();
  const bool neox = a.node.attrs.s("mode") == "neox";
  const int64_t nd = a.node.attrs.i("n_dims");
  const double base = a.node.attrs.f("freq_base"), fs = a.node.attrs.f("freq_scale");
  const int64_t H = xt.dim(-2), D = xt.dim(-1), half = nd / 2;
  for (int64_t l = 0; l < pos.numel(); ++l) {
    const double p = double(index_at(pos, l));
    const float* xl = x + l * H * D;
    float* yl = y + l * H * D;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = nd; i < D; ++i) yl[h * D + i] = xl[h * D + i];
    for (int64_t i = 0; i < half; ++i) {
      const double theta = p * fs * std::pow(base, -2.0 * double(i) / double(nd));
      const double c = std::cos(theta), s = std::sin(theta);
      const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
      for (int64_t h = 0; h < H; ++h) {
        const double x0 = xl[h * D + i0], x1 = xl[h * D + i1];
        yl[h * D + i0] = float(x0 * c - x1 * s);
        yl[h * D + i1] = float(x0 * s + x1 * c);
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
