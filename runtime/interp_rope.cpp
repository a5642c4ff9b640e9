// Rotary position embedding, computed as ggml-cpu computes it so the interpreter's results are
// bit-identical to llama.cpp's (docs/parity.md): the angle of pair i is the running f32 product
// pos * theta_scale^i with theta_scale = freq_base^(-2/n_dims) in f32, cos and sin in f32, and
// the rotation with the fused multiply-adds GCC contracts ggml's expressions to. Backends compare
// against it with a tolerance.
#include <cmath>

#include <vector>

#include "runtime/interp_kernels.h"
#include "runtime/rope_angles.h"

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
  std::vector<float> cs(static_cast<size_t>(nd));
  for (int64_t l = 0; l < pos.numel(); ++l) {
    const float* xl = x + l * H * D;
    float* yl = y + l * H * D;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = nd; i < D; ++i) yl[h * D + i] = xl[h * D + i];
    rope_cos_sin(index_at(pos, l), nd, base, fs, cs.data());
    for (int64_t i = 0; i < half; ++i) {
      const float c = cs[size_t(2 * i)], s = cs[size_t(2 * i + 1)];
      const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
      for (int64_t h = 0; h < H; ++h) {
        const float x0 = xl[h * D + i0], x1 = xl[h * D + i1];
        yl[h * D + i0] = std::fma(x0, c, -(x1 * s));
        yl[h * D + i1] = std::fma(x0, s, x1 * c);
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
