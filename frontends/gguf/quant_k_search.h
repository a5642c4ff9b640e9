// The scale searches of ggml's K-quant reference quantizers (ggml-quants.c), shared by
// quant_k_quantize.cpp. Internal: the names follow ggml's so the two can be read side by side.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::quant::detail {

// Below this a group counts as all zeros (ggml's GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

inline int clamp(int v, int lo, int hi) {
  return std::max(lo, std::min(hi, v));
}

// Asymmetric fit x ~= scale * L - *min_out with L in [0, nmax], minimizing a weighted error.
// Returns the scale; *min_out >= 0. Laux is n bytes of scratch.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* min_out, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);

// Symmetric fit x ~= scale * (L - nmax) with L in [0, 2*nmax), elements weighted by x^2
// (ggml's make_qx_quants with rmse_type 1 and no importance weights). Returns the scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L);

// Symmetric fit like make_qx_quants, refined element by element (ggml's make_q3_quants with
// do_rmse). Returns the scale.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

}  // namespace kiln::quant::detail
