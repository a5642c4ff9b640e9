// Reference (scalar) conversion between f32 and every ggml tensor type. These are the oracle for
// every optimized kernel: bit-exact with ggml's reference code (verified against the `gguf`
// Python package on random blocks, tests/quant_test.cpp). The block layouts and per-block
// functions (for kernels that quantize activations on the fly) are in quant_blocks.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::quant {

// True when dequantize_row supports the type.
bool can_dequantize(DType t);
// True when quantize_row supports the type.
bool can_quantize(DType t);

// Converts n elements (a whole number of blocks) from `src` in type t to f32.
Status dequantize_row(DType t, const void* src, float* dst, size_t n);
// Converts n f32 values (a whole number of blocks) to type t, bit-exact with ggml's
// quantize_row_*_ref (no importance matrix).
Status quantize_row(DType t, const float* src, void* dst, size_t n);

}  // namespace kiln::quant
