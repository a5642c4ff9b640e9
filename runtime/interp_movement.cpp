// Data movement for any dtype. A quantized tensor moves in whole rows (the verifier keeps its last
// axis intact), so these kernels see every tensor as an array of "units": elements for plain
// types, rows of the last axis for block types. Byte copies, never a conversion.
#include <cstring>

#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {
namespace {

struct Units {
  ir::Shape shape;  // unit shape (quantized: without the last axis)
  size_t bytes;     // bytes per unit
};

Units units_of(const ir::TensorType& t) {
  if (!is_quantized(t.dtype)) return {t.shape, dtype_info(t.dtype).block_bytes};
  return {ir::Shape(t.shape.begin(), t.shape.end() - 1), last_row_bytes(t)};
}

int64_t prod(const ir::Shape& s, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to; ++i) n *= s[i];
  return n;
}

}  // namespace

Status run_Reshape(KernelArgs& a) {
  a.out[0].data = a.in[0].data;
  a.out[0].writable = a.in[0].writable;
  return Status::Ok();
}

Status run_View(KernelArgs& a) {
  const Tensor& x = a.in[0];
  const int64_t off = a.node.attrs.i("offset");
  size_t byte_off = is_quantized(x.dtype()) ? size_t(off / x.dim(-1)) * last_row_bytes(*x.type)
                                            : size_t(off) * dtype_info(x.dtype()).block_bytes;
  a.out[0].data = x.data + byte_off;
  a.out[0].writable = x.writable;
  return Status::Ok();
}

Status run_Permute(KernelArgs& a) {
  const Tensor& x = a.in[0];
  const Units u = units_of(*x.type);
  const std::vector<int64_t>& perm = a.node.attrs.ints("perm");
  const size_t r = u.shape.size();  // quantized: the last axis stays last, so drop it
  std::vector<int64_t> xs = ir::strides_of(u.shape), src(r);
  ir::Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    out[i] = u.shape[size_t(perm[i])];
    src[i] = xs[size_t(perm[i])];
  }
  BroadcastWalk walk(out, src, {});  // offsets into x of each output unit, in output order
  const int64_t n = prod(out, 0, r);
  uint8_t* y = a.out[0].data;
  for (int64_t i = 0; i < n; ++i, walk.next())
    std::memcpy(y + size_t(i) * u.bytes, x.data + size_t(walk.a()) * u.bytes, u.bytes);
  return Status::Ok();
}

Status run_Slice(KernelArgs& a) {
  const Tensor& x = a.in[0];
  const Units u = units_of(*x.type);
  const size_t axis = size_t(a.node.attrs.i("axis"));
  const int64_t start = a.node.attrs.i("start"), size = a.node.attrs.i("size");
  const int64_t outer = prod(u.shape, 0, axis), inner = prod(u.shape, axis + 1, u.shape.size());
  const size_t chunk = size_t(size * inner) * u.bytes;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(a.out[0].data + size_t(o) * chunk,
                x.data + size_t((o * u.shape[axis] + start) * inner) * u.bytes, chunk);
  return Status::Ok();
}

Status run_Concat(KernelArgs& a) {
  const Units uo = units_of(*a.out[0].type);
  const size_t axis = size_t(a.node.attrs.i("axis"));
  const int64_t outer = prod(uo.shape, 0, axis), inner = prod(uo.shape, axis + 1, uo.shape.size());
  uint8_t* y = a.out[0].data;
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor& x : a.in) {
      const size_t chunk = size_t(x.shape()[axis] * inner) * uo.bytes;
      std::memcpy(y, x.data + size_t(o) * chunk, chunk);
      y += chunk;
    }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
