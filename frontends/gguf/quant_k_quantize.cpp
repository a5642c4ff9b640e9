// Quantizers of the K-quants, bit-exact with ggml's quantize_row_{q2,q3,q4,q5,q6,q8}_K_ref (no
// importance matrix). Each picks per-sub-block scales (and mins) with the searches in
// quant_k_search.cpp, quantizes those scales to 4, 6 or 8 bits against one f16 super-block
// scale, then re-quantizes the elements with the scales as stored. As there, keep every float
// expression as it is: the order of operations is part of the format's reference.
#include "frontends/gguf/quant_exact_fp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "frontends/gguf/quant_blocks.h"
#include "frontends/gguf/quant_k_scales.h"
#include "frontends/gguf/quant_k_search.h"
#include "ir/half.h"

namespace kiln::quant {
namespace {

using detail::clamp;
using detail::kGroupMaxEps;
using detail::make_q3_quants;
using detail::make_qkx2_quants;
using detail::make_qx_quants;

// Packs 2-bit levels the way Q2_K and Q3_K store them (see low2 in quant_k_dequant.cpp).
void pack2(const uint8_t L[256], uint8_t qs[64]) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* l = L + 128 * half;
    for (int i = 0; i < 32; ++i) {
      qs[32 * half + i] = uint8_t(l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6));
    }
  }
}

// Shared by Q4_K and Q5_K: the first-pass fit of the 8 sub-blocks, the 6-bit scales and mins
// against the f16 super-block scales, then the final levels L[256] in [0, nmax].
void quantize_k4_scales_and_levels(const float* x, int nmax, float rmin, float rdelta, int nstep,
                                   uint16_t* d_out, uint16_t* dmin_out, uint8_t scale_bytes[12],
                                   uint8_t L[256]) {
  float scales[8], mins[8], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;  // the scales and mins are never negative
  for (int s = 0; s < 8; ++s) {
    const float* xs = x + 32 * s;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[s] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * s, &mins[s], Laux, rmin, rdelta,
                                 nstep, false);
    if (scales[s] > max_scale) max_scale = scales[s];
    if (mins[s] > max_min) max_min = mins[s];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int s = 0; s < 8; ++s) {
    // Truncation to uint8 before the clamp, as in ggml.
    ls[s] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[s])));
    lm[s] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[s])));
  }
  k4_pack_scale_mins(ls, lm, scale_bytes);
  *d_out = f32_to_f16(max_scale / 63.f);
  *dmin_out = f32_to_f16(max_min / 63.f);

  const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
  for (int s = 0; s < 8; ++s) {
    const ScaleMin sm = k4_scale_min(scale_bytes, s);
    const float dl = d * float(sm.scale);
    if (dl == 0.0f) continue;  // keep the first-pass levels
    const float ml = dmin * float(sm.min);
    for (int l = 0; l < 32; ++l) {
      L[32 * s + l] = uint8_t(clamp(nearest_int((x[32 * s + l] + ml) / dl), 0, nmax));
    }
  }
}

}  // namespace

void quantize_block(const float* x, BlockQ2_K* b) {
  uint8_t L[256], Laux[16];
  float weights[16], scales[16], mins[16];
  float max_scale = 0, max_min = 0;
  for (int s = 0; s < 16; ++s) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * s + l]);
    scales[s] = make_qkx2_quants(16, 3, x + 16 * s, weights, L + 16 * s, &mins[s], Laux, -0.5f,
                                 0.1f, 15, true);
    if (scales[s] > max_scale) max_scale = scales[s];
    if (mins[s] > max_min) max_min = mins[s];
  }
  // 4-bit scales in the low nibbles, 4-bit mins in the high ones.
  if (max_scale > 0) {
    const float iscale = 15.f / max_scale;
    for (int s = 0; s < 16; ++s) b->scales[s] = uint8_t(nearest_int(iscale * scales[s]));
    b->d = f32_to_f16(max_scale / 15.f);
  } else {
    for (int s = 0; s < 16; ++s) b->scales[s] = 0;
    b->d = f32_to_f16(0.f);
  }
  if (max_min > 0) {
    const float iscale = 15.f / max_min;
    for (int s = 0; s < 16; ++s) b->scales[s] |= uint8_t(nearest_int(iscale * mins[s]) << 4);
    b->dmin = f32_to_f16(max_min / 15.f);
  } else {
    b->dmin = f32_to_f16(0.f);
  }
  const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(b->scales[s] & 0xF);
    if (dl == 0.0f) continue;
    const float ml = dmin * float(b->scales[s] >> 4);
    for (int l = 0; l < 16; ++l) {
      L[16 * s + l] = uint8_t(clamp(nearest_int((x[16 * s + l] + ml) / dl), 0, 3));
    }
  }
  pack2(L, b->qs);
}

void quantize_block(const float* x, BlockQ3_K* b) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0, amax = 0;  // signed scale of largest magnitude
  for (int s = 0; s < 16; ++s) {
    scales[s] = make_q3_quants(16, 4, x + 16 * s, L + 16 * s);
    if (std::fabs(scales[s]) > amax) {
      amax = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  std::memset(b->scales, 0, sizeof(b->scales));
  if (max_scale != 0.0f) {
    const float iscale = -32.f / max_scale;
    for (int s = 0; s < 16; ++s) {
      // ggml stores nearest_int into an int8 before clamping; it is within [-32, 32] anyway.
      const int l = clamp(int8_t(nearest_int(iscale * scales[s])), -32, 31) + 32;
      q3k_set_scale(b->scales, s, l);
    }
    b->d = f32_to_f16(1 / iscale);
  } else {
    b->d = f32_to_f16(0.f);
  }
  const float d = f16_to_f32(b->d);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(q3k_scale(b->scales, s));
    if (dl == 0.0f) continue;
    for (int l = 0; l < 16; ++l) {
      L[16 * s + l] = int8_t(clamp(nearest_int(x[16 * s + l] / dl), -4, 3) + 4);
    }
  }
  // Bit 2 of element e goes to hmask[e % 32] bit e / 32; the low two bits to qs.
  uint8_t low[256];
  std::memset(b->hmask, 0, sizeof(b->hmask));
  for (int e = 0; e < 256; ++e) {
    int l = L[e];
    if (l > 3) {
      b->hmask[e % 32] |= uint8_t(1 << (e / 32));
      l -= 4;
    }
    low[e] = uint8_t(l);
  }
  pack2(low, b->qs);
}

void quantize_block(const float* x, BlockQ4_K* b) {
  uint8_t L[256];
  quantize_k4_scales_and_levels(x, 15, -1.f, 0.1f, 20, &b->d, &b->dmin, b->scales, L);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      b->qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
  }
}

void quantize_block(const float* x, BlockQ5_K* b) {
  uint8_t L[256];
  quantize_k4_scales_and_levels(x, 31, -0.5f, 0.1f, 15, &b->d, &b->dmin, b->scales, L);
  std::memset(b->qh, 0, sizeof(b->qh));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
      b->qs[32 * c + l] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
      b->qh[l] |= uint8_t(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

void quantize_block(const float* x, BlockQ6_K* b) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int s = 0; s < 16; ++s) {
    scales[s] = make_qx_quants(16, 32, x + 16 * s, L + 16 * s);
    if (std::fabs(scales[s]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(b, 0, sizeof(*b));
    return;
  }
  const float iscale = -128.f / max_scale;
  b->d = f32_to_f16(1 / iscale);
  for (int s = 0; s < 16; ++s)
    b->scales[s] = int8_t(std::min(127, nearest_int(iscale * scales[s])));
  const float d = f16_to_f32(b->d);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(b->scales[s]);
    if (dl == 0.0f) continue;
    for (int l = 0; l < 16; ++l) {
      L[16 * s + l] = int8_t(clamp(nearest_int(x[16 * s + l] / dl), -32, 31) + 32);
    }
  }
  // Layout as read by dequantize_block(BlockQ6_K): per 128-element half, groups 0/1 in the low
  // nibbles of ql[0..31]/ql[32..63], groups 2/3 in the high nibbles; 2 high bits per group in qh.
  for (int half = 0; half < 2; ++half) {
    const int8_t* l = L + 128 * half;
    uint8_t* ql = b->ql + 64 * half;
    uint8_t* qh = b->qh + 32 * half;
    for (int i = 0; i < 32; ++i) {
      ql[i] = uint8_t((l[i] & 0xF) | ((l[i + 64] & 0xF) << 4));
      ql[i + 32] = uint8_t((l[i + 32] & 0xF) | ((l[i + 96] & 0xF) << 4));
      qh[i] = uint8_t((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) |
                      ((l[i + 96] >> 4) << 6));
    }
  }
}

void quantize_block(const float* x, BlockQ8_K* b) {
  float max = 0, amax = 0;
  for (int e = 0; e < kQK_K; ++e) {
    if (std::fabs(x[e]) > amax) {
      amax = std::fabs(x[e]);
      max = x[e];
    }
  }
  if (amax == 0.0f) {
    std::memset(b, 0, sizeof(*b));
    return;
  }
  // -127 rather than -128 so that the largest element maps to ±127 on either side.
  const float iscale = -127.f / max;
  for (int e = 0; e < kQK_K; ++e) b->qs[e] = int8_t(std::min(127, nearest_int(iscale * x[e])));
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += b->qs[16 * g + i];
    b->bsums[g] = int16_t(sum);
  }
  b->d = 1 / iscale;
}

}  // namespace kiln::quant
