// Element types of the IR. Every GGUF tensor type is one, so a quantized weight keeps its type
// in the graph: its logical shape counts elements, its bytes follow from the block format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DType : uint16_t {
#define X(E, name, id, be, bb, q) E = id,
#include "ir/dtypes.def"
#undef X
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;  // "q4_k"
  uint32_t ggml_id;       // ggml_type value (1000 for IR-only types)
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
  bool quantized;
};

const DTypeInfo& dtype_info(DType t);
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
std::optional<DType> dtype_from_ggml(uint32_t ggml_id);

inline bool is_quantized(DType t) {
  return dtype_info(t).quantized;
}
inline bool is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}
inline bool is_integer(DType t) {
  return t == DType::I8 || t == DType::I16 || t == DType::I32 || t == DType::I64;
}

// Bytes of one row of n elements; nullopt when n is not a whole number of blocks or overflows.
std::optional<uint64_t> row_bytes(DType t, uint64_t n);

}  // namespace kiln
