// The type of an IR value: element type and row-major shape (outermost dimension first).
// A GGUF tensor with ggml dims [ne0, ne1] has IR shape [ne1, ne0].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace kiln::ir {

using Shape = std::vector<int64_t>;

struct TensorType {
  DType dtype = DType::F32;
  Shape shape;

  int rank() const { return int(shape.size()); }
  int64_t numel() const;
  int64_t dim(int i) const { return shape[size_t(i < 0 ? i + rank() : i)]; }
  // Bytes of the whole tensor; nullopt when the last dim is not a whole number of blocks.
  std::optional<uint64_t> bytes() const;
  std::string str() const;  // "f32[1, 576]"
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const TensorType& o) const { return !(*this == o); }
};

std::string shape_str(const Shape& s);  // "[1, 576]"
// Tensors hold at most kMaxElements (2^40) elements. Shapes are checked where they enter the IR
// (the parser's types, shape attributes in shape inference), so numel() never overflows.
inline constexpr int64_t kMaxElements = int64_t(1) << 40;
// True when every dim is positive and the element count is at most kMaxElements.
bool shape_in_range(const Shape& s);
// Row-major strides in elements.
std::vector<int64_t> strides_of(const Shape& s);
// numpy broadcasting of two shapes; nullopt when incompatible.
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace kiln::ir
