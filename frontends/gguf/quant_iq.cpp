// The non-linear 4-bit types IQ4_NL and IQ4_XS: a 4-bit index into kIQ4NLValues times a scale.
// Bit-exact with ggml's dequantize_row_iq4_{nl,xs} and quantize_row_iq4_{nl,xs}_ref (no
// importance matrix).
#include "frontends/gguf/quant_exact_fp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"

namespace kiln::quant {

// 32 elements from 16 bytes: element j in the low nibble of qs[j], element j+16 in the high one.
static void decode_nl32(const uint8_t qs[16], float d, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(kIQ4NLValues[qs[j] & 0xF]);
    y[j + 16] = d * float(kIQ4NLValues[qs[j] >> 4]);
  }
}

void dequantize_block(const BlockIQ4_NL& b, float* y) {
  decode_nl32(b.qs, f16_to_f32(b.d), y);
}

void dequantize_block(const BlockIQ4_XS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < 8; ++s) {
    // 6-bit scale with a +32 bias: low nibble from scales_l, top two bits from scales_h.
    const int low = (b.scales_l[s / 2] >> (4 * (s % 2))) & 0xF;
    const int high = (b.scales_h >> (2 * s)) & 3;
    const float dl = d * float((low | (high << 4)) - 32);
    decode_nl32(b.qs + 16 * s, dl, y + 32 * s);
  }
}

namespace {

// The index of the table value nearest to v (the lower one on ties), as ggml's best_index_int8.
int nearest_nl_index(float v) {
  if (v <= float(kIQ4NLValues[0])) return 0;
  if (v >= float(kIQ4NLValues[15])) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < float(kIQ4NLValues[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return v - float(kIQ4NLValues[hi - 1]) < float(kIQ4NLValues[hi]) - v ? hi - 1 : hi;
}

// ggml's per-32 scale fit for IQ4 (quantize_row_iq4_nl_impl's inner part, weights x^2): picks
// the levels for the scale that maps the largest-magnitude element to the table's end, takes the
// least-squares scale for them, then (ntry > 0) tries 2*ntry+1 nearby grids for a better scale.
// Returns the scale; writes the first-pass levels to L. All-zero groups get scale 0, levels 0.
float fit_nl32(const float* x, int ntry, uint8_t L[32]) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax < 1e-15f) {  // ggml's GROUP_MAX_EPS; ggml leaves L as it was, any value decodes to 0
    std::memset(L, 0, 32);
    return 0.0f;
  }
  const float v0 = float(kIQ4NLValues[0]);
  float d = ntry > 0 ? -max / v0 : max / v0;
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    L[j] = uint8_t(nearest_nl_index(id * x[j]));
    const float q = float(kIQ4NLValues[L[j]]);
    const float w = x[j] * x[j];
    sumqx += w * q * x[j];
    sumq2 += w * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -ntry; itry <= ntry; ++itry) {
    id = float(itry + kIQ4NLValues[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = float(kIQ4NLValues[nearest_nl_index(id * x[j])]);
      const float w = x[j] * x[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

void pack_nl32(const uint8_t L[32], uint8_t qs[16]) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
}

}  // namespace

// quantize_row_iq4_nl_ref runs ggml's search with ntry = -1: one least-squares scale, no grid
// search, no re-quantization. (llama-quantize goes through quantize_iq4_nl with ntry = 7, so its
// IQ4_NL files can differ from this in the last bits of d and in some levels.)
void quantize_block(const float* x, BlockIQ4_NL* b) {
  uint8_t L[32];
  const float d = fit_nl32(x, -1, L);
  b->d = f32_to_f16(d);
  pack_nl32(L, b->qs);
}

// quantize_row_iq4_xs_ref: ntry = 7 per sub-block, then 6-bit sub-block scales against
// d = -max_scale / 32 and the levels re-picked with the scales as stored.
void quantize_block(const float* x, BlockIQ4_XS* b) {
  float scales[8];
  uint8_t L[256];
  float max_scale = 0, amax_scale = 0;
  for (int s = 0; s < 8; ++s) {
    scales[s] = fit_nl32(x + 32 * s, 7, L + 32 * s);
    if (std::fabs(scales[s]) > amax_scale) {
      amax_scale = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  const float d = -max_scale / 32;
  b->d = f32_to_f16(d);
  const float id = d != 0.0f ? 1 / d : 0.f;  // from the f32 d, not the stored f16, as in ggml
  b->scales_h = 0;
  for (int s = 0; s < 8; ++s) {
    int l = nearest_int(id * scales[s]);
    l = std::max(-32, std::min(31, l));
    const float dl = d * float(l);
    const float idl = dl != 0.0f ? 1 / dl : 0.f;
    for (int j = 0; j < 32; ++j) L[32 * s + j] = uint8_t(nearest_nl_index(idl * x[32 * s + j]));
    l += 32;
    if (s % 2 == 0) {
      b->scales_l[s / 2] = uint8_t(l & 0xF);
    } else {
      b->scales_l[s / 2] |= uint8_t((l & 0xF) << 4);
    }
    b->scales_h |= uint16_t((l >> 4) << (2 * s));
  }
  for (int s = 0; s < 8; ++s) pack_nl32(L + 32 * s, b->qs + 16 * s);
}

}  // namespace kiln::quant
