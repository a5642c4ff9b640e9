#include "codegen/cuda/weight_layout.h"

#include <cstring>

namespace kiln::cuda {
namespace {

uint64_t up16(uint64_t n) {
  return (n + 15) / 16 * 16;
}

// One field of a GGUF block: `bytes` bytes at `at`, copied to plane `plane` of the packed row at
// block index * bytes.
struct Field {
  uint64_t at, bytes;
  uint64_t PackedRow::*plane;
};

// The fields of each repacked type, in GGUF block order. Together they cover the block exactly.
std::vector<Field> fields(DType t) {
  switch (t) {
    case DType::Q8_0:
      return {{0, 2, &PackedRow::d}, {2, 32, &PackedRow::qs}};
    case DType::Q4_0:
      return {{0, 2, &PackedRow::d}, {2, 16, &PackedRow::qs}};
    case DType::Q4_1:
      return {{0, 2, &PackedRow::d}, {2, 2, &PackedRow::m}, {4, 16, &PackedRow::qs}};
    case DType::Q5_0:
      return {{0, 2, &PackedRow::d}, {2, 4, &PackedRow::qh}, {6, 16, &PackedRow::qs}};
    case DType::Q5_1:
      return {{0, 2, &PackedRow::d},
              {2, 2, &PackedRow::m},
              {4, 4, &PackedRow::qh},
              {8, 16, &PackedRow::qs}};
    case DType::Q6_K:
      return {{0, 128, &PackedRow::qs},
              {128, 64, &PackedRow::qh},
              {192, 16, &PackedRow::m},
              {208, 2, &PackedRow::d}};
    default:
      return {};
  }
}

}  // namespace

bool supported_weight_type(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

bool is_repacked(DType t) {
  return !fields(t).empty();
}

Result<PackedRow> packed_row(DType t, int64_t K) {
  if (!supported_weight_type(t))
    return make_error("weight type ", dtype_name(t), " is not supported by the CUDA kernels");
  const DTypeInfo& info = dtype_info(t);
  if (K <= 0 || K % info.block_elems != 0)
    return make_error("a ", dtype_name(t), " row of ", K, " elements is not a whole number of ",
                      info.block_elems, "-element blocks");
  PackedRow r;
  const uint64_t nblk = uint64_t(K) / info.block_elems;
  auto f = fields(t);
  if (f.empty()) {  // unchanged layout
    r.bytes = nblk * info.block_bytes;
    if (t == DType::Q4_K) r.qs = 0;
    return r;
  }
  // Planes in this order: qs, qh, m (q6_k scales), d, then the mins of q4_1/q5_1 after d. The
  // quant planes come first so they start 16-byte aligned.
  uint64_t at = 0;
  auto place = [&](uint64_t PackedRow::*plane) {
    for (const Field& x : f)
      if (x.plane == plane) {
        r.*plane = at;
        at += nblk * x.bytes;
      }
  };
  place(&PackedRow::qs);
  place(&PackedRow::qh);
  if (t == DType::Q6_K) place(&PackedRow::m);
  place(&PackedRow::d);
  if (t != DType::Q6_K) place(&PackedRow::m);
  r.bytes = up16(at);
  return r;
}

Result<std::vector<uint8_t>> pack_weight(DType t, int64_t rows, int64_t K,
                                         std::span<const uint8_t> gguf) {
  KILN_ASSIGN_OR_RETURN(PackedRow r, packed_row(t, K));
  auto src_row = row_bytes(t, uint64_t(K));
  if (!src_row || gguf.size() != *src_row * uint64_t(rows))
    return make_error("pack_weight: ", gguf.size(), " bytes for ", rows, " rows of ", K, " ",
                      dtype_name(t));
  std::vector<uint8_t> out(r.bytes * uint64_t(rows), 0);
  auto f = fields(t);
  if (f.empty()) {
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(out.data() + uint64_t(i) * r.bytes, gguf.data() + uint64_t(i) * *src_row,
                  *src_row);
    return out;
  }
  const DTypeInfo& info = dtype_info(t);
  const uint64_t nblk = uint64_t(K) / info.block_elems;
  for (int64_t i = 0; i < rows; ++i) {
    const uint8_t* src = gguf.data() + uint64_t(i) * *src_row;
    uint8_t* dst = out.data() + uint64_t(i) * r.bytes;
    for (uint64_t b = 0; b < nblk; ++b)
      for (const Field& x : f)
        std::memcpy(dst + r.*x.plane + b * x.bytes, src + b * info.block_bytes + x.at, x.bytes);
  }
  return out;
}

Result<std::vector<uint8_t>> unpack_weight(DType t, int64_t rows, int64_t K,
                                           std::span<const uint8_t> packed) {
  KILN_ASSIGN_OR_RETURN(PackedRow r, packed_row(t, K));
  auto dst_row = row_bytes(t, uint64_t(K));
  if (!dst_row || packed.size() != r.bytes * uint64_t(rows))
    return make_error("unpack_weight: ", packed.size(), " bytes for ", rows, " rows of ", K, " ",
                      dtype_name(t));
  std::vector<uint8_t> out(*dst_row * uint64_t(rows));
  auto f = fields(t);
  const DTypeInfo& info = dtype_info(t);
  const uint64_t nblk = uint64_t(K) / info.block_elems;
  for (int64_t i = 0; i < rows; ++i) {
    const uint8_t* src = packed.data() + uint64_t(i) * r.bytes;
    uint8_t* dst = out.data() + uint64_t(i) * *dst_row;
    if (f.empty()) {
      std::memcpy(dst, src, *dst_row);
      continue;
    }
    for (uint64_t b = 0; b < nblk; ++b)
      for (const Field& x : f)
        std::memcpy(dst + b * info.block_bytes + x.at, src + r.*x.plane + b * x.bytes, x.bytes);
  }
  return out;
}

}  // namespace kiln::cuda
