#include "runtime/buffer.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "frontends/gguf/quant.h"

namespace kiln::runtime {
namespace {

template <class T>
void ints_to_f32(const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, s + i * sizeof(T), sizeof(T));
    dst[i] = float(v);
  }
}

// Truncation toward zero, saturated; NaN gives 0. Compared in double so that the bounds of
// every integer type up to 32 bits are exact; for i64 the upper bound 2^63 is exact too.
template <class T>
void f32_to_ints(const float* src, void* dst, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const double lo = double(std::numeric_limits<T>::min());
  const double hi = double(std::numeric_limits<T>::max());
  for (size_t i = 0; i < n; ++i) {
    double x = std::trunc(double(src[i]));
    T v = std::isnan(x) ? T(0)
          : x <= lo     ? std::numeric_limits<T>::min()
          : x >= hi     ? std::numeric_limits<T>::max()
                        : T(x);
    std::memcpy(d + i * sizeof(T), &v, sizeof(T));
  }
}

}  // namespace

size_t last_row_bytes(const ir::TensorType& t) {
  if (t.rank() == 0) return dtype_info(t.dtype).block_bytes;
  return size_t(row_bytes(t.dtype, uint64_t(t.dim(-1))).value_or(0));
}

Status to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F64: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, s + 8 * i, 8);
        dst[i] = float(v);
      }
      return Status::Ok();
    }
    case DType::I8:
      ints_to_f32<int8_t>(src, dst, n);
      return Status::Ok();
    case DType::I16:
      ints_to_f32<int16_t>(src, dst, n);
      return Status::Ok();
    case DType::I32:
      ints_to_f32<int32_t>(src, dst, n);
      return Status::Ok();
    case DType::I64:
      ints_to_f32<int64_t>(src, dst, n);
      return Status::Ok();
    case DType::BOOL: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = s[i] ? 1.0f : 0.0f;
      return Status::Ok();
    }
    default:
      return quant::dequantize_row(t, src, dst, n);
  }
}

Status from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F64: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) {
        double v = src[i];
        std::memcpy(d + 8 * i, &v, 8);
      }
      return Status::Ok();
    }
    case DType::I8:
      f32_to_ints<int8_t>(src, dst, n);
      return Status::Ok();
    case DType::I16:
      f32_to_ints<int16_t>(src, dst, n);
      return Status::Ok();
    case DType::I32:
      f32_to_ints<int32_t>(src, dst, n);
      return Status::Ok();
    case DType::I64:
      f32_to_ints<int64_t>(src, dst, n);
      return Status::Ok();
    case DType::BOOL: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = src[i] != 0.0f ? 1 : 0;
      return Status::Ok();
    }
    default:
      return quant::quantize_row(t, src, dst, n);
  }
}

Result<std::vector<float>> to_f32(const TensorView& t) {
  if (!t.type) return make_error("to_f32: tensor has no type");
  std::vector<float> out(size_t(t.type->numel()));
  KILN_RETURN_IF_ERROR(to_f32(t.type->dtype, t.bytes.data(), out.data(), out.size()));
  return out;
}

std::vector<int64_t> broadcast_strides(const ir::Shape& src, const ir::Shape& out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> own = ir::strides_of(src);
  size_t lead = out.size() - src.size();
  for (size_t i = 0; i < src.size(); ++i)
    if (src[i] != 1) s[lead + i] = own[i];
  return s;
}

BroadcastWalk::BroadcastWalk(const ir::Shape& out, std::vector<int64_t> a, std::vector<int64_t> b)
    : out_(out), sa_(std::move(a)), sb_(std::move(b)), idx_(out.size(), 0) {
  if (sb_.empty()) sb_.assign(out.size(), 0);
}

void BroadcastWalk::next() {
  for (size_t d = out_.size(); d-- > 0;) {
    off_a_ += sa_[d];
    off_b_ += sb_[d];
    if (++idx_[d] < out_[d]) return;
    off_a_ -= sa_[d] * out_[d];
    off_b_ -= sb_[d] * out_[d];
    idx_[d] = 0;
  }
}

}  // namespace kiln::runtime
