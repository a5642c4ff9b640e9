#include "ir/tensor_type.h"

#include <algorithm>

namespace kiln::ir {

int64_t TensorType::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::optional<uint64_t> TensorType::bytes() const {
  if (shape.empty()) return row_bytes(dtype, 1);
  auto rb = row_bytes(dtype, uint64_t(shape.back()));
  if (!rb) return std::nullopt;
  return *rb * uint64_t(numel() / std::max<int64_t>(shape.back(), 1));
}

bool shape_in_range(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d <= 0 || d > kMaxElements / n) return false;
    n *= d;
  }
  return true;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string TensorType::str() const {
  return std::string(dtype_name(dtype)) + shape_str(shape);
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * s[size_t(i) + 1];
  return st;
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return std::nullopt;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace kiln::ir
