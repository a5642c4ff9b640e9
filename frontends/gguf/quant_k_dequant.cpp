// Dequantizers of the K-quants (256-element super-blocks): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
// Bit-exact with ggml's dequantize_row_*: each value is (d * sub-block scale) * q - (dmin *
// sub-block min), rounded after every operation. Written element by element from the layouts in
// quant_blocks.h rather than in ggml's unrolled order; the arithmetic per element is the same.
#include "frontends/gguf/quant_exact_fp.h"

#include "frontends/gguf/quant_blocks.h"
#include "frontends/gguf/quant_k_scales.h"
#include "ir/half.h"

namespace kiln::quant {

// The 2-bit field of element e in Q2_K/Q3_K: four 32-element groups share each byte of a 32-byte
// half of qs.
static int low2(const uint8_t qs[64], int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
}

void dequantize_block(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(b.scales[s] & 0xF);
    const float ml = dmin * float(b.scales[s] >> 4);
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * float(low2(b.qs, e)) - ml;
  }
}

void dequantize_block(const BlockQ3_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(q3k_scale(b.scales, s));
    for (int e = 16 * s; e < 16 * s + 16; ++e) {
      const bool high = (b.hmask[e % 32] >> (e / 32)) & 1;
      y[e] = dl * float(low2(b.qs, e) - (high ? 0 : 4));
    }
  }
}

void dequantize_block(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 8; ++s) {
    const ScaleMin sm = k4_scale_min(b.scales, s);
    const float dl = d * float(sm.scale);
    const float ml = dmin * float(sm.min);
    const uint8_t* q = b.qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) y[32 * s + l] = dl * float((q[l] >> shift) & 0xF) - ml;
  }
}

void dequantize_block(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 8; ++s) {
    const ScaleMin sm = k4_scale_min(b.scales, s);
    const float dl = d * float(sm.scale);
    const float ml = dmin * float(sm.min);
    const uint8_t* q = b.qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) {
      const int q5 = ((q[l] >> shift) & 0xF) | (((b.qh[l] >> s) & 1) << 4);
      y[32 * s + l] = dl * float(q5) - ml;
    }
  }
}

void dequantize_block(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  // Each 128-element half uses 64 bytes of ql and 32 of qh. Element l of its four 32-element
  // groups is: the low nibble of ql[l] / ql[l+32] (groups 0, 1), the high nibble of ql[l] /
  // ql[l+32] (groups 2, 3), with the top two bits from successive 2-bit fields of qh[l].
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    const int8_t* sc = b.scales + 8 * half;  // group g, element l: sc[2*g + l/16]
    float* out = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int q0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      const int s = l / 16;
      out[l] = d * float(sc[s]) * float(q0);
      out[l + 32] = d * float(sc[s + 2]) * float(q1);
      out[l + 64] = d * float(sc[s + 4]) * float(q2);
      out[l + 96] = d * float(sc[s + 6]) * float(q3);
    }
  }
}

void dequantize_block(const BlockQ8_K& b, float* y) {
  for (int e = 0; e < kQK_K; ++e) y[e] = b.d * float(b.qs[e]);
}

}  // namespace kiln::quant
