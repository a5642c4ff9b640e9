// mul_mat and get_rows: the ops that read weights. A weight row is dequantized once per use into
// a scratch row by the reference dequantizer, then used in f32 (dot products in double).
#include <cmath>
#include <cstring>
#include <vector>

#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {

// mul_mat's `act` rounding (docs/ir.md): each row of x becomes the values its 8-bit block form
// represents. Q8_0/Q8_1 follow ggml-cpu's x86 quantizer (scale amax/127 stored as f16, quants
// rounded to nearest even), Q8_K its reference quantizer. Multiplying these values by the
// dequantized weights in double is the block dot product ggml computes in integers, up to the
// f16 rounding of Q8_1's precomputed block sum.
static void round_activations(DType act, const float* x, float* out, int64_t K) {
  if (act == DType::F16 || act == DType::BF16) {
    for (int64_t i = 0; i < K; ++i)
      out[i] = act == DType::F16 ? f16_to_f32(f32_to_f16(x[i])) : bf16_to_f32(f32_to_bf16(x[i]));
    return;
  }
  if (act == DType::Q8_K) {
    for (int64_t b = 0; b < K / quant::kQK_K; ++b) {
      quant::BlockQ8_K blk;
      quant::quantize_block(x + quant::kQK_K * b, &blk);
      for (int j = 0; j < quant::kQK_K; ++j) out[quant::kQK_K * b + j] = blk.d * float(blk.qs[j]);
    }
    return;
  }
  for (int64_t b = 0; b < K / quant::kQK; ++b) {
    const float* xb = x + quant::kQK * b;
    float amax = 0.0f;
    for (int j = 0; j < quant::kQK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    const float d = f16_to_f32(f32_to_f16(amax / 127.f));
    for (int j = 0; j < quant::kQK; ++j)
      out[quant::kQK * b + j] = d * float(int(std::nearbyint(xb[j] * id)));
  }
}

// Weights with a per-block minimum (Q4_1, Q5_1) against Q8_1 activations: ggml adds each
// block's min times the activation block's precomputed sum, which Q8_1 stores as
// f16(d * sum(q)) with the unrounded scale d, so that term is computed the same way here.
static Status mul_mat_q8_1(const Tensor& x, const Tensor& w, const float* xd, const float* xr,
                           float* y) {
  const int64_t K = x.dim(-1), N = w.dim(-2), rows = x.numel() / K, nb = K / quant::kQK;
  const size_t w_row = last_row_bytes(*w.type);
  const size_t blk = w_row / size_t(nb);
  std::vector<float> s(size_t(rows * nb));
  std::vector<float> wf(static_cast<size_t>(K));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = xd + i * K + b * quant::kQK;
      float amax = 0.0f;
      for (int j = 0; j < quant::kQK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
      const float id = amax != 0.0f ? 127.f / amax : 0.0f;
      int sum = 0;
      for (int j = 0; j < quant::kQK; ++j) sum += int(std::nearbyint(xb[j] * id));
      s[size_t(i * nb + b)] = f16_to_f32(f32_to_f16(amax / 127.f * float(sum)));
    }
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* row = w.data + size_t(n) * w_row;
    KILN_RETURN_IF_ERROR(to_f32(w.dtype(), row, wf.data(), size_t(K)));
    for (int64_t i = 0; i < rows; ++i) {
      double acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        uint16_t mh;
        std::memcpy(&mh, row + size_t(b) * blk + 2, 2);  // m follows d in both block layouts
        const double m = f16_to_f32(mh);
        double part = 0;
        for (int j = 0; j < quant::kQK; ++j)
          part += (double(wf[size_t(b * quant::kQK + j)]) - m) * double(xr[i * K + b * quant::kQK + j]);
        acc += part + m * double(s[size_t(i * nb + b)]);
      }
      y[i * N + n] = float(acc);
    }
  }
  return Status::Ok();
}

// y[..., m, n] = sum_k x[..., m, k] * w[..., n, k]. A 2-D w is shared by every batch; a batched w
// has x's rank and x batch index i reads w batch index i / (x_d / w_d) per leading dim (GQA).
Status run_MulMat(KernelArgs& a) {
  const Tensor& x = a.in[0];
  const Tensor& w = a.in[1];
  float* y = a.out[0].as<float>();
  KILN_ASSIGN_OR_RETURN(const float* xd, f32_data(x, a.scratch, 0));
  const int64_t K = x.dim(-1), M = x.dim(-2), N = w.dim(-2);
  const DType act = a.node.attrs.dtype("act");
  if (act != DType::F32) {
    float* xr = a.scratch.get(2, size_t(x.numel()));
    for (int64_t i = 0; i < x.numel() / K; ++i) round_activations(act, xd + i * K, xr + i * K, K);
    if (act == DType::Q8_1 && w.rank() == 2 && (w.dtype() == DType::Q4_1 || w.dtype() == DType::Q5_1))
      return mul_mat_q8_1(x, w, xd, xr, y);
    xd = xr;
  }
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
