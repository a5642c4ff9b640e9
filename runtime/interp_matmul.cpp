// mul_mat and get_rows: the ops that read weights. A weight row is dequantized once per use into
// a scratch row by the reference dequantizer, then used in f32 (dot products in double).
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {

// y[..., m, n] = sum_k x[..., m, k] * w[..., n, k]. A 2-D w is shared by every batch; a batched w
// has x's rank and x batch index i reads w batch index i / (x_d / w_d) per leading dim (GQA).
Status run_MulMat(KernelArgs& a) {
  const Tensor& x = a.in[0];
  const Tensor& w = a.in[1];
  float* y = a.out[0].as<float>();
  KILN_ASSIGN_OR_RETURN(const float* xd, f32_data(x, a.scratch, 0));
  const int64_t K = x.dim(-1), M = x.dim(-2), N = w.dim(-2);
  const size_t w_row = last_row_bytes(*w.type);
  float* wf = a.scratch.get(1, size_t(K));

  if (w.rank() == 2) {
    // Every row of x (all batches) against each dequantized weight row.
    const int64_t rows = x.numel() / K;
    for (int64_t n = 0; n < N; ++n) {
      KILN_RETURN_IF_ERROR(to_f32(w.dtype(), w.data + size_t(n) * w_row, wf, size_t(K)));
      for (int64_t i = 0; i < rows; ++i) y[i * N + n] = float(dot(xd + i * K, wf, K));
    }
    return Status::Ok();
  }

  const int nb = x.rank() - 2;
  ir::Shape x_batch(x.shape().begin(), x.shape().end() - 2);
  ir::Shape w_batch(w.shape().begin(), w.shape().end() - 2);
  std::vector<int64_t> w_stride = ir::strides_of(w_batch);  // in matrices
  std::vector<int64_t> idx(size_t(nb), 0);
  int64_t batches = 1;
  for (int64_t d : x_batch) batches *= d;
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t wb = 0;
    for (int d = 0; d < nb; ++d)
      wb += idx[size_t(d)] / (x_batch[size_t(d)] / w_batch[size_t(d)]) * w_stride[size_t(d)];
    const uint8_t* wm = w.data + size_t(wb * N) * w_row;
    const float* xm = xd + bi * M * K;
    float* ym = y + bi * M * N;
    for (int64_t n = 0; n < N; ++n) {
      KILN_RETURN_IF_ERROR(to_f32(w.dtype(), wm + size_t(n) * w_row, wf, size_t(K)));
      for (int64_t m = 0; m < M; ++m) ym[m * N + n] = float(dot(xm + m * K, wf, K));
    }
    for (int d = nb; d-- > 0;) {  // next batch index, row-major
      if (++idx[size_t(d)] < x_batch[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
  return Status::Ok();
}

// y[i..., c] = t[idx[i...], c], dequantized.
Status run_GetRows(KernelArgs& a) {
  const Tensor& t = a.in[0];
  const Tensor& idx = a.in[1];
  float* y = a.out[0].as<float>();
  const int64_t R = t.dim(0), C = t.dim(1);
  const size_t t_row = last_row_bytes(*t.type);
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t r = index_at(idx, i);
    if (r < 0 || r >= R)
      return make_error("index ", r, " at position ", i, " is outside the table's ", R, " rows");
    KILN_RETURN_IF_ERROR(to_f32(t.dtype(), t.data + size_t(r) * t_row, y + i * C, size_t(C)));
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
