// How the CUDA kernels want quantized weights in device memory: each row of a matrix repacked,
// losslessly, from GGUF's array of blocks into planes (all quants of the row, then all scales,
// ...), every plane starting 16-byte aligned where the block sizes allow it, so a lane reads one
// block's quants with one 16-byte load. No value changes: a plane holds the bytes of the same
// fields of the same blocks, in block order, and unpack_weight() gives the GGUF bytes back.
//
//   type    planes of one row of K elements (nb = K/32 blocks, ns = K/256 super-blocks)
//   q8_0    qs[K] · d[nb] (f16)
//   q4_0    qs[K/2] (16 bytes per block, GGUF's nibble order) · d[nb]
//   q4_1    qs[K/2] · d[nb] · m[nb]
//   q5_0    qs[K/2] · qh[nb] (u32) · d[nb]
//   q5_1    qs[K/2] · qh[nb] · d[nb] · m[nb]
//   q6_k    ql[K/2] · qh[K/4] · scales[K/16] (i8) · d[ns]
//   q4_k    unchanged: 144-byte super-blocks are already 16-byte multiples
//   f32, f16, bf16: unchanged
//
// The row stride (packed_row_bytes) is the planes' size rounded up to 16 bytes. Other block types
// are not supported by the CUDA kernels (supported_weight_type).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::cuda {

// Types the CUDA kernels read as weights (mul_mat, get_rows, elementwise reads of constants).
bool supported_weight_type(DType t);
// True when the device layout differs from the GGUF layout (the runtime must repack).
bool is_repacked(DType t);

// Byte offsets of the planes of one packed row of K elements (unused planes are 0).
struct PackedRow {
  uint64_t qs = 0;     // quants (q6_k: ql)
  uint64_t qh = 0;     // q5_*: high bits; q6_k: high bits
  uint64_t d = 0;      // scales (f16)
  uint64_t m = 0;      // q4_1 / q5_1: mins (f16); q6_k: i8 sub-block scales
  uint64_t bytes = 0;  // the row stride
};
// Fails for an unsupported type or a K that is not a whole number of blocks.
Result<PackedRow> packed_row(DType t, int64_t K);
inline uint64_t packed_row_bytes(DType t, int64_t K) {
  auto r = packed_row(t, K);
  return r.ok() ? r->bytes : 0;
}

// GGUF bytes of `rows` rows of K elements -> the device layout (rows * packed_row_bytes bytes).
Result<std::vector<uint8_t>> pack_weight(DType t, int64_t rows, int64_t K,
                                         std::span<const uint8_t> gguf);
// The inverse (for tests and for `kiln compile` artifacts that must give the GGUF bytes back).
Result<std::vector<uint8_t>> unpack_weight(DType t, int64_t rows, int64_t K,
                                           std::span<const uint8_t> packed);

}  // namespace kiln::cuda
