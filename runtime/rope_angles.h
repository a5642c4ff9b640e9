// The cos and sin of rotary embedding's angles at one position, as ggml-cpu computes them: the
// angle of pair i is the running f32 product pos * theta_scale^i (theta_scale =
// freq_base^(-2/n_dims) in f32) times freq_scale, and cos/sin are the C library's f32 functions.
// The reference interpreter (interp_rope.cpp) and the CUDA backend's rope tables both use this,
// so a GPU, whose own cosf rounds differently, rotates exactly as the interpreter does.
#pragma once

#include <cmath>
#include <cstdint>

namespace kiln::runtime {

// cs[2i], cs[2i + 1] = cos, sin of pair i's angle, for i < n_dims / 2.
inline void rope_cos_sin(int64_t pos, int64_t n_dims, double freq_base, double freq_scale,
                         float* cs) {
  const float theta_scale = std::pow(float(freq_base), -2.0f / float(n_dims));
  float theta = float(pos);
  for (int64_t i = 0; i < n_dims / 2; ++i) {
    const float t = float(freq_scale) * theta;
    cs[2 * i] = std::cos(t);
    cs[2 * i + 1] = std::sin(t);
    theta *= theta_scale;
  }
}

}  // namespace kiln::runtime
