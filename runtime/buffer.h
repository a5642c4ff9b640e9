// Typed windows of memory for the runtime, and the scalar conversions between any IR dtype and
// f32 that the reference interpreter is built on. Nothing here owns tensor bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ir/status.h"
#include "ir/tensor_type.h"

namespace kiln::runtime {

// A tensor a kernel reads or writes: its type and its first byte. Row-major and contiguous, as
// every IR value is. `writable` is false for weights and derived constants (weights may be a
// read-only mmap), so a kernel that writes in place (kv_write) can refuse them.
struct Tensor {
  const ir::TensorType* type = nullptr;
  uint8_t* data = nullptr;
  bool writable = false;

  DType dtype() const { return type->dtype; }
  const ir::Shape& shape() const { return type->shape; }
  int rank() const { return type->rank(); }
  int64_t dim(int i) const { return type->dim(i); }
  int64_t numel() const { return type->numel(); }
  // Valid for every type the interpreter accepts (it checks at creation).
  size_t bytes() const { return size_t(type->bytes().value_or(0)); }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(data);
  }
};

// A read-only tensor handed out to callers: the bytes stay valid until the next run (or, for
// states and constants, as long as their owner lives).
struct TensorView {
  const ir::TensorType* type = nullptr;
  std::span<const uint8_t> bytes;
};

// Bytes of one row along the last axis (a whole number of blocks for quantized types).
size_t last_row_bytes(const ir::TensorType& t);

// Converts n elements of type t (a whole number of blocks) to f32. Every dtype works: floats
// and quant blocks through the reference dequantizers (frontends/gguf/quant.h), integers and
// bool by value.
Status to_f32(DType t, const void* src, float* dst, size_t n);
// Converts n f32 values to type t: quant blocks by the reference quantizer, integers by
// truncation toward zero saturated to the type's range (NaN gives 0, as numpy's astype
// mostly does), bool as x != 0.
Status from_f32(DType t, const float* src, void* dst, size_t n);
// A whole tensor as f32 values (dequantized): for tests and debugging.
Result<std::vector<float>> to_f32(const TensorView& t);

// Element i of an index tensor (i32 or i64).
inline int64_t index_at(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::I64) return t.as<const int64_t>()[i];
  return t.as<const int32_t>()[i];
}

// Strides (in elements) of a tensor of shape `src` read as if broadcast to `out` (numpy rules,
// aligned at the trailing dimension): 0 along broadcast or missing dimensions. One entry per
// dimension of `out`. The shapes must broadcast (the verifier guarantees it).
std::vector<int64_t> broadcast_strides(const ir::Shape& src, const ir::Shape& out);

// Walks the elements of an output shape in row-major order, keeping the offsets of up to two
// broadcast operands (incremental: no division per element).
class BroadcastWalk {
 public:
  BroadcastWalk(const ir::Shape& out, std::vector<int64_t> a, std::vector<int64_t> b);
  int64_t a() const { return off_a_; }
  int64_t b() const { return off_b_; }
  void next();

 private:
  ir::Shape out_;
  std::vector<int64_t> sa_, sb_, idx_;
  int64_t off_a_ = 0, off_b_ = 0;
};

}  // namespace kiln::runtime
