// Row-level dispatch of the reference quant formats (quant.h), and the plain float types.
// The block formats live in quant_legacy.cpp, quant_k_*.cpp and quant_iq.cpp.
#include "frontends/gguf/quant_exact_fp.h"

#include "frontends/gguf/quant.h"

#include <cstring>

#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"

namespace kiln::quant {
namespace {

Status check_whole_blocks(const char* what, DType t, size_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (n % info.block_elems != 0) {
    return make_error("quant: ", what, " ", info.name, ": n=", n, " is not a multiple of the ",
                      info.block_elems, "-element block");
  }
  return Status::Ok();
}

// One block at a time through a local copy: file bytes need not be aligned for the struct.
template <class Block>
void dequantize_blocks(const uint8_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n / Block::kElems; ++i) {
    Block b;
    std::memcpy(&b, src + i * sizeof(Block), sizeof(Block));
    dequantize_block(b, dst + i * Block::kElems);
  }
}

template <class Block>
void quantize_blocks(const float* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n / Block::kElems; ++i) {
    Block b;
    quantize_block(src + i * Block::kElems, &b);
    std::memcpy(dst + i * sizeof(Block), &b, sizeof(Block));
  }
}

// The block types with a per-block dequantizer / quantizer, as X(Block).
// clang-format off
#define KILN_DEQUANT_BLOCKS(X)                                                 \
  X(BlockQ4_0) X(BlockQ4_1) X(BlockQ5_0) X(BlockQ5_1) X(BlockQ8_0) X(BlockQ8_1) \
  X(BlockQ2_K) X(BlockQ3_K) X(BlockQ4_K) X(BlockQ5_K) X(BlockQ6_K) X(BlockQ8_K) \
  X(BlockIQ4_NL) X(BlockIQ4_XS)
#define KILN_QUANT_BLOCKS(X)                                                   \
  X(BlockQ4_0) X(BlockQ4_1) X(BlockQ5_0) X(BlockQ5_1) X(BlockQ8_0) X(BlockQ8_1) \
  X(BlockQ2_K) X(BlockQ3_K) X(BlockQ4_K) X(BlockQ5_K) X(BlockQ6_K) X(BlockQ8_K) \
  X(BlockIQ4_NL) X(BlockIQ4_XS)
// clang-format on

}  // namespace

bool can_dequantize(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return true;
#define X(B) case B::kType:
      KILN_DEQUANT_BLOCKS(X)
#undef X
      return true;
    default:
      return false;
  }
}

bool can_quantize(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return true;
#define X(B) case B::kType:
      KILN_QUANT_BLOCKS(X)
#undef X
      return true;
    default:
      return false;
  }
}

Status dequantize_row(DType t, const void* src, float* dst, size_t n) {
  if (!can_dequantize(t)) return make_error("quant: dequantize not supported for ", dtype_name(t));
  KILN_RETURN_IF_ERROR(check_whole_blocks("dequantize", t, n));
  const uint8_t* s = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      if (n != 0) std::memcpy(dst, s, n * sizeof(float));
      return Status::Ok();
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return Status::Ok();
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return Status::Ok();
#define X(B)                         \
  case B::kType:                     \
    dequantize_blocks<B>(s, dst, n); \
    return Status::Ok();
      KILN_DEQUANT_BLOCKS(X)
#undef X
    default:
      break;
  }
  return make_error("quant: dequantize not supported for ", dtype_name(t));
}

Status quantize_row(DType t, const float* src, void* dst, size_t n) {
  if (!can_quantize(t)) return make_error("quant: quantize not supported for ", dtype_name(t));
  KILN_RETURN_IF_ERROR(check_whole_blocks("quantize", t, n));
  uint8_t* d = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32:
      if (n != 0) std::memcpy(d, src, n * sizeof(float));
      return Status::Ok();
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_f16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return Status::Ok();
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return Status::Ok();
#define X(B)                       \
  case B::kType:                   \
    quantize_blocks<B>(src, d, n); \
    return Status::Ok();
      KILN_QUANT_BLOCKS(X)
#undef X
    default:
      break;
  }
  return make_error("quant: quantize not supported for ", dtype_name(t));
}

}  // namespace kiln::quant
