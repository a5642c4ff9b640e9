// Quantized matrix products for the CPU backend: y[m, n] = sum_k x[m, k] * W[n, k], with W's rows
// in a GGUF block format exactly as stored in the file, and x quantized to 8 bits on the fly the
// way llama.cpp's CPU backend does (its vec_dot_type): Q4_0/Q5_0/Q8_0 weights take Q8_0
// activations, Q4_1 takes Q8_1, Q4_K/Q6_K take Q8_K. The integer part of every block's dot product
// is exact; only the order in which the per-block float scales are applied and summed differs
// from ggml (docs/microkernels.md).
//
// Variants: plain C++ (always there, also the cross-check), and xbyak JIT code for AVX2,
// AVX2 + AVX-VNNI, and AVX-512 (F/BW/VL/DQ + VNNI), chosen at run time from cpuid. The ABI is plain
// C function pointers so that LLVM-generated code can call a kernel without a switch.
//
// Threading: the functions hold no state; split the output rows [n0, n1) between threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::mk {

enum class Isa : int {
  kScalar = 0,      // portable C++
  kAvx2 = 1,        // AVX2 + FMA + F16C
  kAvx2Vnni = 2,    // the above + AVX-VNNI (VEX-encoded vpdpbusd / vpdpwssd)
  kAvx512Vnni = 3,  // AVX-512 F/BW/DQ/VL + AVX512-VNNI, 512-bit vectors
};
inline constexpr int kNumIsas = 4;
const char* isa_name(Isa isa);

// Bytes of one quantized activation row of K elements (a multiple of 64, so rows packed back to
// back stay 64-byte aligned when the first one is). The layout is private to these kernels
// (int8 quants first, then per-block scales; see act_to_blocks).
using ActBytesFn = size_t (*)(int K);
// Quantizes K floats (a whole number of weight blocks) into one activation row.
using QuantizeActFn = void (*)(const float* x, void* xq, int K);
// y[m * y_row_stride + n] = sum_k x[m, k] * W[n, k] for n in [n0, n1), m in [0, M). W points at
// row 0 of the weight matrix, rows w_row_bytes apart; xq at activation row 0, rows xq_row_bytes
// apart (>= act_bytes). K is a whole number of weight blocks.
using GemmFn = void (*)(const void* W, size_t w_row_bytes, int n0, int n1, const void* xq,
                        size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K);

// The same product with the weights in the packed layout (pack_weights). n0 is a multiple of
// kPackRows; n1 is a multiple of kPackRows or N. `tokens`: how many of the M rows are real tokens
// (the rest a bucket's padding; <= 0: all), which decides ggml's summation order for the
// K-quants (llama.cpp picks their kernels by the batch's token count).
using GemmPackedFn = void (*)(const void* Wp, int N, int n0, int n1, const void* xq,
                              size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K,
                              int tokens);

// The kernels of one weight type for one ISA.
struct Kernels {
  DType weight_type;
  DType act_type;  // Q8_0, Q8_1 or Q8_K
  Isa isa;
  ActBytesFn act_bytes;
  // Bit-exact with ggml's quantize_row_q8_0_ref / q8_1_ref / q8_K_ref (quant_blocks.h).
  QuantizeActFn quantize_act;
  // Bit-exact with ggml-cpu's x86 quantize_row_q8_0 / q8_1 (AVX path: scale 127/amax, rounding
  // to nearest even), which llama.cpp uses on any AVX machine; the same as quantize_act for Q8_K.
  QuantizeActFn quantize_act_ggml_x86;
  GemmFn gemm;
  GemmPackedFn gemm_packed;  // nullptr when the type has no packed layout
};

// Weight types with kernels: Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K.
bool supported(DType weight_type);
// The activation type that pairs with a weight type (Q8_0, Q8_1 or Q8_K); F32 when unsupported.
DType act_type(DType weight_type);

// True when this build and this CPU can run the variant (xbyak built in, cpuid and the OS agree).
bool isa_available(Isa isa);
// The fastest available variant, or the one named by $KILN_MK_ISA (scalar, avx2, avx2_vnni,
// avx512_vnni) when that is set and available. Decided once per process.
Isa best_isa();
// True when $KILN_MK_ORDER=fast asks for the fast packed tiles instead of ggml's summation order.
bool fast_order_requested();
// True when the best variant's products sum in ggml-cpu's order, so that they are bit-identical
// to llama.cpp's (AVX-512 VNNI, unless fast_order_requested(); docs/microkernels.md).
bool ggml_order();

// JITs the best variant's code once (thread-safe; later calls return the first result).
Status init();
// The kernels of a weight type for a variant, JIT-compiling that variant on first use
// (thread-safe). Errors name the type or say why the variant is unavailable.
Result<const Kernels*> kernels(DType weight_type, Isa isa);
// The kernels of the best variant (init() first); nullptr for an unsupported type. Falls back to
// the scalar kernels when the JIT failed.
const Kernels* kernels(DType weight_type);

// Convenience wrappers over kernels(weight_type) for callers outside the hot loop.
size_t act_bytes(DType weight_type, int K);
Status quantize_act(DType weight_type, const float* x, void* xq, int K);
Status gemm(DType weight_type, const void* W, size_t w_row_bytes, int n0, int n1, const void* xq,
            size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K);

// ---- Packed weights
// A lossless compile-time repacking that the JIT kernels run 2-5x faster than the file layout:
// rows in groups of kPackRows, each 32-block of the group stored as the 16 rows' scales side by
// side, then the quants in 4-byte units interleaved across the rows (so one 512-bit vpdpbusd
// computes 4 products for each of 16 rows). Same bytes as the file; docs/microkernels.md has the
// record layouts. Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K.
inline constexpr int kPackRows = 16;
bool packable(DType weight_type);
// True when weights of this type are worth packing at compile time for this machine: packable,
// and the best variant has packed tiles for the type (the K-quants only in ggml's order; other
// variants would unpack every group per call).
bool pack_pays(DType weight_type);
// Bytes of N rows of K elements packed (N rounded up to a multiple of kPackRows).
size_t packed_bytes(DType weight_type, int N, int K);
// Packs N rows (w_row_bytes apart) into `out` (packed_bytes). Missing rows of the last group are
// zero blocks.
Status pack_weights(DType weight_type, const void* W, size_t w_row_bytes, int N, int K, void* out);
// The inverse: writes N rows back in the file layout.
Status unpack_weights(DType weight_type, const void* packed, int N, int K, void* W,
                      size_t w_row_bytes);
Status gemm_packed(DType weight_type, const void* Wp, int N, int n0, int n1, const void* xq,
                   size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K,
                   int tokens = 0);

// Rewrites one activation row as ggml blocks of act_type(weight_type) (BlockQ8_0 / BlockQ8_1 /
// BlockQ8_K, row_bytes(act_type, K) bytes): for tests and for code that wants ggml's layout.
Status act_to_blocks(DType weight_type, const void* xq, void* blocks, int K);

}  // namespace kiln::mk
