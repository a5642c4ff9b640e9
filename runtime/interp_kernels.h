// Internal to the reference interpreter: what a kernel sees, and one kernel per row of
// ir/ops.def. The declarations are generated from the op table, and interpreter.cpp builds its
// dispatch table from the same rows, so an op without a kernel does not link (or compile).
//
// Contract of a kernel: `in` are the operands, `out` the results. A result of an op that
// computes has its own zeroed buffer already (out[k].data); an op that aliases (reshape, view,
// kv_write, region) sets out[k].data itself. Sources (input, weight, state, arg) are bound by the
// interpreter before they run, so their kernels do nothing. Kernels are plain scalar loops: no
// allocation per element, temporary rows come from Scratch.
#pragma once

#include <span>
#include <vector>

#include "ir/graph.h"
#include "runtime/buffer.h"

namespace kiln::runtime::interp {

// Reusable f32 work rows, grown on demand and kept across runs (so a run allocates nothing once
// the buffers have their size). A kernel owns the slots only during its own call.
class Scratch {
 public:
  float* get(int slot, size_t n) {
    if (slots_.size() <= size_t(slot)) slots_.resize(size_t(slot) + 1);
    if (slots_[size_t(slot)].size() < n) slots_[size_t(slot)].resize(n);
    return slots_[size_t(slot)].data();
  }

  // Tokens of this run that are real (their position is >= 0; a prefill bucket pads the rest),
  // 0 when the graph has no `pos` input. ggml-cpu picks its product kernels, and with them the
  // summation order, by this count, so the kernels that mirror it ask for it (docs/parity.md).
  int64_t tokens = 0;

 private:
  std::vector<std::vector<float>> slots_;
};

struct Body;  // a region body ready to run (interpreter.cpp)

struct KernelArgs {
  const ir::Node& node;
  std::span<const Tensor> in;
  std::span<Tensor> out;
  Scratch& scratch;
  Body* body = nullptr;  // region nodes only
};

// Runs a region body: binds arg k to in[k], runs the body, points out[k] at the k-th yield.
Status run_body(Body& body, std::span<const Tensor> in, std::span<Tensor> out);

// The whole tensor as f32: its own data when it is f32, else converted into scratch `slot`.
Result<const float*> f32_data(const Tensor& t, Scratch& s, int slot);

// Double-precision dot product of two f32 rows. Each product of two floats is exact in double,
// so the only rounding is the sum's (about 2^-53 per term): the interpreter's result is the
// exact dot product rounded once to f32, independent of any summation order a backend picks.
inline double dot(const float* a, const float* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += double(a[k]) * double(b[k]);
    s1 += double(a[k + 1]) * double(b[k + 1]);
    s2 += double(a[k + 2]) * double(b[k + 2]);
    s3 += double(a[k + 3]) * double(b[k + 3]);
  }
  for (; k < n; ++k) s0 += double(a[k]) * double(b[k]);
  return (s0 + s1) + (s2 + s3);
}

// Softmax of one row of n scores, as the softmax op defines it:
//   z_j = (softcap > 0 ? softcap * tanh(x_j / softcap) : x_j) * scale + mask[j * mask_stride]
// (mask may be null; mask_stride 0 broadcasts one value), y = exp(z - max z) / sum, in double.
// A row whose z are all -inf gives zeros.
void softmax_row(const float* x, const float* mask, int64_t mask_stride, int64_t n, double scale,
                 double softcap, float* y);

#define X(E, ...) Status run_##E(KernelArgs& a);
#include "ir/ops.def"
#undef X

}  // namespace kiln::runtime::interp
