// Packing of the 6-bit sub-block scales of Q3_K, Q4_K and Q5_K (shared by the dequantizers, the
// quantizers, and any kernel that unpacks these blocks).
#pragma once

#include <cstdint>

namespace kiln::quant {

// Q3_K: 16 signed scales in 12 bytes. The low nibble of scale s is in bytes[s % 8] (low nibble
// for s < 8, high nibble otherwise); its top two bits are in bytes[8 + s % 4] at bit 2*(s / 4).
// Stored with a +32 bias.
inline int q3k_scale(const uint8_t bytes[12], int s) {
  const int low = s < 8 ? bytes[s] & 0xF : bytes[s - 8] >> 4;
  const int high = (bytes[8 + s % 4] >> (2 * (s / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Adds biased scale l (0..63) of sub-block s to zeroed `bytes`.
inline void q3k_set_scale(uint8_t bytes[12], int s, int l) {
  if (s < 8) {
    bytes[s] |= uint8_t(l & 0xF);
  } else {
    bytes[s - 8] |= uint8_t((l & 0xF) << 4);
  }
  bytes[8 + s % 4] |= uint8_t((l >> 4) << (2 * (s / 4)));
}

// Q4_K/Q5_K: 8 scales and 8 mins, 6 bits each, in 12 bytes (ggml's get_scale_min_k4). For
// s < 4, bytes[s] and bytes[s + 4] hold scale and min whole; for s >= 4 the low nibbles are in
// bytes[s + 4] and the top two bits ride in bits 6-7 of bytes[s - 4] (scale) and bytes[s] (min).
struct ScaleMin {
  uint8_t scale, min;
};

inline ScaleMin k4_scale_min(const uint8_t bytes[12], int s) {
  if (s < 4) return {uint8_t(bytes[s] & 63), uint8_t(bytes[s + 4] & 63)};
  return {uint8_t((bytes[s + 4] & 0xF) | ((bytes[s - 4] >> 6) << 4)),
          uint8_t((bytes[s + 4] >> 4) | ((bytes[s] >> 6) << 4))};
}

// Packs scales[8] and mins[8] (each 0..63) into bytes[12].
inline void k4_pack_scale_mins(const uint8_t scales[8], const uint8_t mins[8], uint8_t bytes[12]) {
  for (int s = 0; s < 4; ++s) {
    bytes[s] = scales[s];
    bytes[s + 4] = mins[s];
  }
  for (int s = 4; s < 8; ++s) {
    bytes[s + 4] = uint8_t((scales[s] & 0xF) | ((mins[s] & 0xF) << 4));
    bytes[s - 4] |= uint8_t((scales[s] >> 4) << 6);
    bytes[s] |= uint8_t((mins[s] >> 4) << 6);
  }
}

}  // namespace kiln::quant
