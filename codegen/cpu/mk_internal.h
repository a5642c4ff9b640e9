// Internals shared by the microkernel files: the activation row layout, the tile ABI between the
// C++ driver and the JIT code, and the per-ISA entry points. Not a public header.
#pragma once

#include <cstddef>
#include <cstdint>

#include "codegen/cpu/microkernels.h"
#include "ir/dtype.h"

namespace kiln::mk::detail {

inline constexpr int kNumTypes = 6;
// Index of a supported weight type in the tables, -1 otherwise.
int type_index(DType weight_type);
DType type_at(int index);

inline size_t round_up64(size_t n) {
  return (n + 63) & ~size_t(63);
}

// One activation row. The int8 quants of all blocks come first, back to back (so a 64-byte load
// covers two 32-blocks), then one aux record per block:
//   Q8_0, Q8_1: {f32 d, f32 s/8, i32 -sum(q), f32 s}  16 bytes (s: Q8_1 only, else 0; s/8 is
//                                                     exact, a power-of-two scale)
//   Q8_K:       {i16 bsums[16], f32 d, pad}           64 bytes
// d and s are the values of ggml's f16 fields (or Q8_K's f32 d), widened exactly.
struct ActLayout {
  DType act_type;
  int block_elems;   // 32 or 256
  int nblocks;       // K / block_elems
  size_t aux_off;    // start of the aux records
  size_t aux_bytes;  // bytes of one aux record
  size_t bytes;      // whole row, a multiple of 64
};
ActLayout act_layout(DType act_type, int K);

// Arguments of one JIT tile call: mr activation rows times ntiles * nr weight rows.
struct TileArgs {
  const uint8_t* w;  // weight row of the first tile
  const uint8_t* x;  // activation row 0 of the tile (its quants)
  float* y;          // y[0][0] of the first tile
  int64_t w_stride;  // bytes between weight rows
  int64_t x_stride;  // bytes between activation rows
  int64_t y_stride;  // bytes between output rows (m)
  int64_t ntiles;    // tiles of nr weight rows, one after another
  int64_t nsteps;    // full K steps (2 blocks for 512-bit legacy, 1 block otherwise)
  int64_t tail;      // 1 when one 32-block is left after the full steps
  int64_t aux_off;   // bytes from an activation row's start to its aux records
};
using TileFn = void (*)(const TileArgs*);

inline constexpr int kMaxMr = 4;
inline constexpr int kMaxNr = 8;

// The JIT tiles of one (type, ISA): fn[mr][nr] for 1 <= mr <= mr_max, 1 <= nr <= nr_max[mr].
struct TileSet {
  int mr_max = 0;
  int nr_max[kMaxMr + 1] = {};
  int blocks_per_step = 1;
  TileFn fn[kMaxMr + 1][kMaxNr + 1] = {};
};

// The packed-layout tiles of one (type, ISA): fn[mr] computes mr activation rows times one
// group of kPackRows weight rows, for `ntiles` consecutive groups.
inline constexpr int kMaxPackMr = 8;
struct PackedSet {
  int mr_max = 0;
  TileFn fn[kMaxPackMr + 1] = {};
  // K-quants in ggml's order, which depends on the tokens of the batch (run_packed): fn sums as
  // ggml does for few tokens (Q4_K gemv, Q6_K vec_dot), fn_many for groups of 4 rows (Q4_K gemm)
  // or 8 tokens and more (Q6_K tiled). Empty where the ISA has no packed K-quant tiles.
  int mr_many = 0;
  TileFn fn_many[kMaxPackMr + 1] = {};
};

// Where the parts of one packed 32-block record (16 rows) start; bytes = 16 * block bytes.
struct PackedLegacy {
  int block_bytes;  // of the file's block
  int m_off;        // Q4_1: the 16 f16 mins (d's are at 0)
  int qh_off;       // Q5_0: 64 bytes of fifth bits
  int q_off;        // the quants: 64-byte chunks
  int chunks;       // 4 (nibbles: chunk j holds elements 4j.. and 16+4j..) or 8 (Q8_0)
};
PackedLegacy packed_legacy(DType weight_type);

// Where the parts of one packed 256-element K-quant record (16 rows) start; bytes = 16 * block
// bytes (mk_pack.cpp has the layouts).
struct PackedK {
  int block_bytes;  // of the file's block
  int dmin_off;     // Q4_K: the 16 f16 dmin (d's are at 0)
  int sc_off;       // the scale bytes in 64-byte chunks (Q4_K: 3, Q6_K: 4)
  int q_off;        // 32 chunks of nibbles
  int hb_off;       // Q6_K: 16 chunks of the levels' top two bits
};
PackedK packed_kquant(DType weight_type);

// `tokens`: the real tokens of the batch (<= 0: all M rows), which pick ggml's K-quant order. Sets
// without tiles for the type (mr_max 0) run `fallback` on unpacked groups.
void run_packed(const PackedSet& ps, GemmFn fallback, DType weight_type, const void* Wp, int N,
                int n0, int n1, const void* xq, size_t xq_row_bytes, int M, float* y,
                size_t y_row_stride, int K, int tokens);
GemmPackedFn scalar_gemm_packed(DType weight_type);

// Runs a tile set over the whole product (the JIT variants' GemmFn body).
void run_tiles(const TileSet& ts, DType weight_type, const void* W, size_t w_row_bytes, int n0,
               int n1, const void* xq, size_t xq_row_bytes, int M, float* y, size_t y_row_stride,
               int K);

// Plain C++ kernels (mk_scalar.cpp).
GemmFn scalar_gemm(DType weight_type);

// Activation quantizers (mk_act_quant.cpp). `ggml_x86` picks ggml-cpu's AVX rounding for Q8_0 and
// Q8_1 (see microkernels.h). The SIMD versions are bit-exact with the scalar ones.
QuantizeActFn act_quantizer(DType act_type, Isa isa, bool ggml_x86);
Status act_to_blocks_impl(DType act_type, const void* xq, void* blocks, int K);

#if defined(KILN_WITH_XBYAK)
// JIT-compiles the tile sets of every supported type for one SIMD ISA (mk_jit_*.cpp). Fills
// sets[type_index] and returns an error when xbyak fails (no executable memory, code too big).
Status jit_tiles(Isa isa, TileSet sets[kNumTypes], PackedSet packed[kNumTypes]);
#endif

}  // namespace kiln::mk::detail
