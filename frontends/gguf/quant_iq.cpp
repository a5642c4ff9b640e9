// Dequantizers of the non-linear 4-bit types IQ4_NL and IQ4_XS: a 4-bit index into
// kIQ4NLValues times a scale. Bit-exact with ggml's dequantize_row_iq4_nl / _iq4_xs.
#include "frontends/gguf/quant_exact_fp.h"

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

}  // namespace kiln::quant
