// Byte layouts of ggml's block-quantized types, and scalar per-block (de)quantizers that are
// bit-exact with ggml's reference code. Kernels that quantize activations on the fly (Q8_0, Q8_1,
// Q8_K) or repack weights use these directly; whole rows go through quant.h.
//
// A block is `kElems` consecutive elements of a row. Fields named d/dmin/m/s hold IEEE half bits
// (ir/half.h converts), except BlockQ8_K::d which is an f32. All multi-byte fields are
// little-endian, as in GGUF files. Blocks in a file are packed back to back with no padding and
// may sit at any 2-byte-aligned offset, so copy a block out (std::memcpy) rather than cast a
// pointer into file bytes.
#pragma once

#include <cstdint>
#include <cstring>

#include "ir/dtype.h"

namespace kiln::quant {

inline constexpr int kQK = 32;     // elements per block of the legacy types (Q4_0 … Q8_1, IQ4_NL)
inline constexpr int kQK_K = 256;  // elements per super-block of the K-quants and IQ4_XS

struct BlockQ4_0 {
  static constexpr DType kType = DType::Q4_0;
  static constexpr int kElems = kQK;
  uint16_t d;      // x = d * (q - 8)
  uint8_t qs[16];  // element j in the low nibble of qs[j], element j+16 in the high nibble
};

struct BlockQ4_1 {
  static constexpr DType kType = DType::Q4_1;
  static constexpr int kElems = kQK;
  uint16_t d;  // x = d * q + m
  uint16_t m;
  uint8_t qs[16];  // nibbles as in Q4_0
};

struct BlockQ5_0 {
  static constexpr DType kType = DType::Q5_0;
  static constexpr int kElems = kQK;
  uint16_t d;      // x = d * (q - 16)
  uint8_t qh[4];   // bit j of this little-endian u32 is bit 4 of element j
  uint8_t qs[16];  // low 4 bits, nibbles as in Q4_0
};

struct BlockQ5_1 {
  static constexpr DType kType = DType::Q5_1;
  static constexpr int kElems = kQK;
  uint16_t d;  // x = d * q + m
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};

struct BlockQ8_0 {
  static constexpr DType kType = DType::Q8_0;
  static constexpr int kElems = kQK;
  uint16_t d;  // x = d * q
  int8_t qs[32];
};

struct BlockQ8_1 {
  static constexpr DType kType = DType::Q8_1;
  static constexpr int kElems = kQK;
  uint16_t d;  // x = d * q
  uint16_t s;  // d * sum(qs), precomputed for dot products with Q4_1/Q5_1
  int8_t qs[32];
};

// Q2_K: 16 sub-blocks of 16. Element e of the super-block is 2 bits at
// qs[32*(e/128) + e%32] >> 2*((e/32)%4); sub-block s = e/16 has x = d*(scales[s]&15)*q -
// dmin*(scales[s]>>4).
struct BlockQ2_K {
  static constexpr DType kType = DType::Q2_K;
  static constexpr int kElems = kQK_K;
  uint8_t scales[16];  // low nibble: scale, high nibble: min
  uint8_t qs[64];
  uint16_t d;
  uint16_t dmin;
};

// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales (packed, see q3k_scale in quant_k_scales.h).
// The low two bits of element e are laid out as in Q2_K; bit 2 is hmask[e%32] >> (e/32), and q =
// low2 - (bit2 ? 0 : 4).
struct BlockQ3_K {
  static constexpr DType kType = DType::Q3_K;
  static constexpr int kElems = kQK_K;
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};

// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in `scales` (see k4_scale_min in
// quant_k_scales.h).
// Elements 64c … 64c+31 are the low nibbles of qs[32c …], 64c+32 … the high nibbles.
struct BlockQ4_K {
  static constexpr DType kType = DType::Q4_K;
  static constexpr int kElems = kQK_K;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

// Q5_K: Q4_K plus a fifth bit: element 64c+l has it at qh[l] bit 2c, element 64c+32+l at bit 2c+1.
struct BlockQ5_K {
  static constexpr DType kType = DType::Q5_K;
  static constexpr int kElems = kQK_K;
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; x = d * scales[e/16] * (q - 32).
struct BlockQ6_K {
  static constexpr DType kType = DType::Q6_K;
  static constexpr int kElems = kQK_K;
  uint8_t ql[128];  // low 4 bits
  uint8_t qh[64];   // high 2 bits
  int8_t scales[16];
  uint16_t d;
};

// Q8_K: the activation format of the K-quant dot products. Not stored in model files.
struct BlockQ8_K {
  static constexpr DType kType = DType::Q8_K;
  static constexpr int kElems = kQK_K;
  float d;  // f32, not f16
  int8_t qs[256];
  int16_t bsums[16];  // sum of qs over each group of 16
};

// IQ4_NL: like Q4_0 but q indexes the non-linear table kIQ4NLValues.
struct BlockIQ4_NL {
  static constexpr DType kType = DType::IQ4_NL;
  static constexpr int kElems = kQK;
  uint16_t d;
  uint8_t qs[16];
};

// IQ4_XS: 8 sub-blocks of 32 with 6-bit signed scales (low 4 bits in scales_l, high 2 bits in
// scales_h), values from kIQ4NLValues; each sub-block's 16 bytes of qs are laid out as IQ4_NL.
struct BlockIQ4_XS {
  static constexpr DType kType = DType::IQ4_XS;
  static constexpr int kElems = kQK_K;
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[4];
  uint8_t qs[128];
};

inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// Block shapes as ir/dtypes.def declares them, so that the structs are checked against the table.
struct DefBlock {
  uint32_t elems, bytes;
};
constexpr DefBlock dtypes_def_block(DType t) {
  switch (t) {
#define X(E, name, id, be, bb, q) \
  case DType::E:                  \
    return {be, bb};
#include "ir/dtypes.def"
#undef X
  }
  return {0, 0};
}

#define KILN_CHECK_BLOCK(B)                                                               \
  static_assert(sizeof(B) == dtypes_def_block(B::kType).bytes, #B " size vs dtypes.def"); \
  static_assert(B::kElems == dtypes_def_block(B::kType).elems, #B " elems vs dtypes.def")
KILN_CHECK_BLOCK(BlockQ4_0);
KILN_CHECK_BLOCK(BlockQ4_1);
KILN_CHECK_BLOCK(BlockQ5_0);
KILN_CHECK_BLOCK(BlockQ5_1);
KILN_CHECK_BLOCK(BlockQ8_0);
KILN_CHECK_BLOCK(BlockQ8_1);
KILN_CHECK_BLOCK(BlockQ2_K);
KILN_CHECK_BLOCK(BlockQ3_K);
KILN_CHECK_BLOCK(BlockQ4_K);
KILN_CHECK_BLOCK(BlockQ5_K);
KILN_CHECK_BLOCK(BlockQ6_K);
KILN_CHECK_BLOCK(BlockQ8_K);
KILN_CHECK_BLOCK(BlockIQ4_NL);
KILN_CHECK_BLOCK(BlockIQ4_XS);
#undef KILN_CHECK_BLOCK

// ggml's nearest_int: rounds to nearest, ties to even, for |x| < 2^22, by adding 1.5 * 2^23 and
// reading the mantissa. The K-quant searches depend on exactly this rounding. Beware: if the
// compiler fuses a multiply feeding it (nearest_int(a * b) -> fma(a, b, 1.5 * 2^23)) the result
// changes; code that must match ggml includes quant_exact_fp.h first (see there).
inline int nearest_int(float x) {
  float biased = x + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

// Per-block dequantizers: write B::kElems floats to y.
void dequantize_block(const BlockQ4_0& b, float* y);
void dequantize_block(const BlockQ4_1& b, float* y);
void dequantize_block(const BlockQ5_0& b, float* y);
void dequantize_block(const BlockQ5_1& b, float* y);
void dequantize_block(const BlockQ8_0& b, float* y);
void dequantize_block(const BlockQ8_1& b, float* y);
void dequantize_block(const BlockQ2_K& b, float* y);
void dequantize_block(const BlockQ3_K& b, float* y);
void dequantize_block(const BlockQ4_K& b, float* y);
void dequantize_block(const BlockQ5_K& b, float* y);
void dequantize_block(const BlockQ6_K& b, float* y);
void dequantize_block(const BlockQ8_K& b, float* y);
void dequantize_block(const BlockIQ4_NL& b, float* y);
void dequantize_block(const BlockIQ4_XS& b, float* y);

// Per-block quantizers: read B::kElems floats from x. Bit-exact with ggml's quantize_row_*_ref
// (no importance matrix).
void quantize_block(const float* x, BlockQ4_0* b);
void quantize_block(const float* x, BlockQ4_1* b);
void quantize_block(const float* x, BlockQ5_0* b);
void quantize_block(const float* x, BlockQ5_1* b);
void quantize_block(const float* x, BlockQ8_0* b);
void quantize_block(const float* x, BlockQ8_1* b);
void quantize_block(const float* x, BlockQ2_K* b);
void quantize_block(const float* x, BlockQ3_K* b);
void quantize_block(const float* x, BlockQ4_K* b);
void quantize_block(const float* x, BlockQ5_K* b);
void quantize_block(const float* x, BlockQ6_K* b);
void quantize_block(const float* x, BlockQ8_K* b);
void quantize_block(const float* x, BlockIQ4_NL* b);
void quantize_block(const float* x, BlockIQ4_XS* b);

}  // namespace kiln::quant
