// The legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1. Bit-exact with ggml's
// dequantize_row_* and quantize_row_*_ref (ggml-quants.c): same float operations in the same
// order, the same truncating float->int conversions.
#include "frontends/gguf/quant_exact_fp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"

namespace kiln::quant {
namespace {

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void store_u32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}

// The element of largest magnitude, sign kept (the first one on ties): the symmetric types map
// it to the most negative level, which gives one more level of resolution on that side.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float* min, float* max) {
  *min = x[0];
  *max = x[0];
  for (int j = 1; j < kQK; ++j) {
    *min = std::min(*min, x[j]);
    *max = std::max(*max, x[j]);
  }
}

// Packs 5-bit values: low nibbles as in Q4_0, bit 4 of element j into bit j of qh.
void pack5(const int* q, uint8_t qs[16], uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    h |= uint32_t((q[j] >> 4) & 1) << j;
    h |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  store_u32(qh, h);
}

int unpack5(const uint8_t qs[16], uint32_t qh, int j) {
  int low = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return low | int(((qh >> j) & 1) << 4);
}

// Q8_0 and Q8_1 share the scale and the rounding (roundf: half away from zero).
float quantize_q8(const float* x, int8_t qs[32]) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) qs[j] = int8_t(std::round(x[j] * id));
  return d;
}

}  // namespace

// ---- Q4_0: x = d * (q - 8)

void dequantize_block(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = float((b.qs[j] & 0x0F) - 8) * d;
    y[j + 16] = float((b.qs[j] >> 4) - 8) * d;
  }
}

void quantize_block(const float* x, BlockQ4_0* b) {
  const float max = signed_absmax(x);
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_f16(d);
  for (int j = 0; j < 16; ++j) {
    // x*id lies in [-8, 8]; +8.5 and truncation round to the nearest level.
    const int q0 = std::min(15, int(x[j] * id + 8.5f));
    const int q1 = std::min(15, int(x[j + 16] * id + 8.5f));
    b->qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

// ---- Q4_1: x = d * q + m

void dequantize_block(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float m = f16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b.qs[j] & 0x0F) * d + m;
    y[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}

void quantize_block(const float* x, BlockQ4_1* b) {
  float min, max;
  min_max(x, &min, &max);
  const float d = (max - min) / 15;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_f16(d);
  b->m = f32_to_f16(min);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, int((x[j] - min) * id + 0.5f));
    const int q1 = std::min(15, int((x[j + 16] - min) * id + 0.5f));
    b->qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

// ---- Q5_0: x = d * (q - 16)

void dequantize_block(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < kQK; ++j) y[j] = float(unpack5(b.qs, qh, j) - 16) * d;
}

void quantize_block(const float* x, BlockQ5_0* b) {
  const float max = signed_absmax(x);
  const float d = max / -16;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_f16(d);
  int q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = std::min(31, int(x[j] * id + 16.5f));
  pack5(q, b->qs, b->qh);
}

// ---- Q5_1: x = d * q + m

void dequantize_block(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float m = f16_to_f32(b.m);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < kQK; ++j) y[j] = float(unpack5(b.qs, qh, j)) * d + m;
}

void quantize_block(const float* x, BlockQ5_1* b) {
  float min, max;
  min_max(x, &min, &max);
  const float d = (max - min) / 31;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_f16(d);
  b->m = f32_to_f16(min);
  int q[kQK];
  // No clamp, as in ggml: (x-min)*id never exceeds 31.5.
  for (int j = 0; j < kQK; ++j) q[j] = int((x[j] - min) * id + 0.5f);
  pack5(q, b->qs, b->qh);
}

// ---- Q8_0 / Q8_1: x = d * q

void dequantize_block(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = float(b.qs[j]) * d;
}

void quantize_block(const float* x, BlockQ8_0* b) {
  b->d = f32_to_f16(quantize_q8(x, b->qs));
}

// ggml has no Q8_1 dequantizer (the type only feeds dot products); this is the obvious one.
void dequantize_block(const BlockQ8_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = float(b.qs[j]) * d;
}

void quantize_block(const float* x, BlockQ8_1* b) {
  const float d = quantize_q8(x, b->qs);
  int sum = 0;
  for (int j = 0; j < kQK; ++j) sum += b->qs[j];
  b->d = f32_to_f16(d);
  b->s = f32_to_f16(float(sum) * d);
}

}  // namespace kiln::quant
