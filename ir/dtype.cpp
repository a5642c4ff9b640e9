#include "ir/dtype.h"

#include <array>

namespace kiln {
namespace {

constexpr DTypeInfo kInfos[] = {
#define X(E, name, id, be, bb, q) {DType::E, name, id, be, bb, q},
#include "ir/dtypes.def"
#undef X
};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
  for (const DTypeInfo& i : kInfos)
    if (i.dtype == t) return i;
  return kInfos[0];  // unreachable for valid enum values
}

std::string_view dtype_name(DType t) {
  return dtype_info(t).name;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DTypeInfo& i : kInfos)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml(uint32_t id) {
  for (const DTypeInfo& i : kInfos)
    if (i.ggml_id == id && i.dtype != DType::BOOL) return i.dtype;
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(DType t, uint64_t n) {
  const DTypeInfo& i = dtype_info(t);
  if (n % i.block_elems != 0) return std::nullopt;
  uint64_t blocks = n / i.block_elems;
  if (blocks > UINT64_MAX / i.block_bytes) return std::nullopt;
  return blocks * i.block_bytes;
}

}  // namespace kiln
