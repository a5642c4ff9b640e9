// mul_mat and get_rows: the ops that read weights. Legacy block quants with 8-bit activations
// follow ggml-cpu's x86 integer block products and summation order exactly (mul_mat_ggml_legacy);
// every other case dequantizes a weight row once per use into a scratch row by the reference
// dequantizer and sums in double.
#include <cmath>
#include <cstring>
#include <vector>

#include "frontends/gguf/quant_blocks.h"
#include "frontends/gguf/quant_k_scales.h"
#include "ir/half.h"
#include "runtime/interp_ggml_math.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {

// mul_mat's `act` rounding (docs/ir.md) for the products not reproduced in ggml's order: each row
// of x becomes the values its 8-bit block form represents. Q8_0/Q8_1 follow ggml-cpu's x86
// quantizer (scale amax/127 stored as f16, quants rounded to nearest even), Q8_K its reference
// quantizer; the products with the dequantized weights are then summed in double.
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

// Legacy-quant weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against 8-bit activations in ggml-cpu's
// x86 order (ggml_vec_dot_*_q8_{0,1} and llamafile's tinyBLAS_Q0_AVX agree on it): the 32
// products of a block are summed in integers four at a time into eight lanes (lane l holds
// elements 4l..4l+3), each lane accumulates (d_w * d_x) * isum with a fused multiply-add across
// blocks, the lanes are reduced pairwise (ggml_hsum8), and for weights with a minimum the terms
// m_w * s_x are summed separately in f32 and added last. Reproducing this order makes the
// interpreter's products bit-identical to llama.cpp's, so the 8-bit roundings of later layers
// see the same inputs (docs/parity.md).
struct ActQ8 {
  std::vector<int8_t> q;  // rows * K quants
  std::vector<float> d;   // rows * nb scales, as f32 values of their f16 form
  std::vector<float> s;   // rows * nb: f16(d * sum(q)) for Q8_1
};

// ggml-cpu's x86 quantize_row_q8_{0,1}: scale amax/127 stored as f16, quants x * (127/amax)
// rounded to nearest even, the Q8_1 sum from the unrounded scale.
static ActQ8 quantize_act(const float* x, int64_t rows, int64_t K) {
  const int64_t nb = K / quant::kQK;
  ActQ8 a;
  a.q.resize(size_t(rows * K));
  a.d.resize(size_t(rows * nb));
  a.s.resize(size_t(rows * nb));
  for (int64_t b = 0; b < rows * nb; ++b) {
    const float* xb = x + quant::kQK * b;
    float amax = 0.0f;
    for (int j = 0; j < quant::kQK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < quant::kQK; ++j) {
      const int q = int(std::nearbyint(xb[j] * id));
      a.q[size_t(quant::kQK * b + j)] = int8_t(q);
      sum += q;
    }
    a.d[size_t(b)] = f16_to_f32(f32_to_f16(d));
    a.s[size_t(b)] = f16_to_f32(f32_to_f16(d * float(sum)));
  }
  return a;
}

// Integer quants of one weight block (element order as in the block formats).
static int nibble(const uint8_t* qs, int j) {
  return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
}
static int quant_of(const quant::BlockQ4_0& b, int j) {
  return nibble(b.qs, j) - 8;
}
static int quant_of(const quant::BlockQ4_1& b, int j) {
  return nibble(b.qs, j);
}
static int quant_of(const quant::BlockQ8_0& b, int j) {
  return b.qs[j];
}
static int high_bit(const uint8_t* qh, int j) {
  return (qh[j / 8] >> (j % 8)) & 1;
}
static int quant_of(const quant::BlockQ5_0& b, int j) {
  return (nibble(b.qs, j) | high_bit(b.qh, j) << 4) - 16;
}
static int quant_of(const quant::BlockQ5_1& b, int j) {
  return nibble(b.qs, j) | high_bit(b.qh, j) << 4;
}
template <class B>
constexpr bool kHasMin = requires(B b) {
  b.m;
};

template <class Block>
static float dot_legacy(const Block* w, const int8_t* xq, const float* xd, const float* xs,
                        int64_t nb) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float summs = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = f16_to_f32(w[b].d) * xd[b];
    if constexpr (kHasMin<Block>) summs = std::fma(f16_to_f32(w[b].m), xs[b], summs);
    for (int l = 0; l < 8; ++l) {
      int isum = 0;
      for (int j = 4 * l; j < 4 * l + 4; ++j)
        isum += quant_of(w[b], j) * int(xq[b * quant::kQK + j]);
      acc[l] = std::fma(d, float(isum), acc[l]);
    }
  }
  return ggml_hsum8(acc) + summs;
}

template <class Block>
static void mul_mat_legacy(const uint8_t* w, size_t w_row, int64_t N, const ActQ8& a, int64_t rows,
                           int64_t K, float* y) {
  const int64_t nb = K / quant::kQK;
  for (int64_t n = 0; n < N; ++n) {
    const auto* wb = reinterpret_cast<const Block*>(w + size_t(n) * w_row);
    for (int64_t i = 0; i < rows; ++i)
      y[i * N + n] =
          dot_legacy(wb, a.q.data() + i * K, a.d.data() + i * nb, a.s.data() + i * nb, nb);
  }
}

// True (and y written) when w and act form one of ggml's legacy block products.
static bool mul_mat_ggml_legacy(DType act, const Tensor& w, const float* x, int64_t rows, int64_t K,
                                float* y) {
  const DType t = w.dtype();
  const bool pair =
      (act == DType::Q8_1 && (t == DType::Q4_1 || t == DType::Q5_1)) ||
      (act == DType::Q8_0 && (t == DType::Q4_0 || t == DType::Q5_0 || t == DType::Q8_0));
  if (!pair || w.rank() != 2 || K % quant::kQK != 0) return false;
  const ActQ8 a = quantize_act(x, rows, K);
  const size_t row = last_row_bytes(*w.type);
  const int64_t N = w.dim(-2);
  switch (t) {
    case DType::Q4_0:
      mul_mat_legacy<quant::BlockQ4_0>(w.data, row, N, a, rows, K, y);
      break;
    case DType::Q4_1:
      mul_mat_legacy<quant::BlockQ4_1>(w.data, row, N, a, rows, K, y);
      break;
    case DType::Q5_0:
      mul_mat_legacy<quant::BlockQ5_0>(w.data, row, N, a, rows, K, y);
      break;
    case DType::Q5_1:
      mul_mat_legacy<quant::BlockQ5_1>(w.data, row, N, a, rows, K, y);
      break;
    default:
      mul_mat_legacy<quant::BlockQ8_0>(w.data, row, N, a, rows, K, y);
      break;
  }
  return true;
}

// An f16 x f16 product (act=f16, as attention's products over the KV cache are) in ggml-cpu's
// order: with one activation row ggml_vec_dot_f16, with more llamafile's tinyBLAS (ggml_dot16). xr
// holds x already rounded to f16.
static void mul_mat_f16_rows(const float* xr, const float* wf, int64_t M, int64_t K, int64_t N,
                             int64_t n, float* y) {
  for (int64_t m = 0; m < M; ++m)
    y[m * N + n] = M < 2 ? ggml_vec_dot_f16(wf, xr + m * K, K) : ggml_dot16(wf, xr + m * K, K);
}

// K-quant weights against Q8_K activations. ggml-cpu picks the kernel by weight type and by the
// number of activation rows, and each sums in its own order; reproduced here per output:
//  - Q6_K, fewer than 8 rows: ggml_vec_dot_q6_K_q8_K (AVX2): per 256-element super-block eight
//    integer lanes (lane l: elements 4l..4l+3 of every 32-element run, times their sub-block
//    scale, minus 32 x the scaled activation sums of sub-blocks 2l and 2l+1, which undoes the
//    stored +32 offset), one fused multiply-add per lane with d_w * d_x, ggml_hsum8 at the end.
//  - Q6_K, 8 rows or more: the tiled kernels (ggml-cpu/tiled): the exact integer sum of each
//    super-block, times d_w, then fused-multiply-added with d_x into one f32 accumulator.
//  - Q4_K with a multiple of 8 output rows: llama.cpp repacks these weights into interleaved 8x8
//    blocks and runs ggml_gemm_q4_K_8x8_q8_K on each group of four activation rows and
//    ggml_gemv_q4_K_8x8_q8_K on the rest: exact integer sums of the scaled products and of
//    mins x activation sums, fused-multiply-added with d_w * d_x (resp. dmin_w * d_x) into two
//    accumulators (per pair of sub-blocks in gemm, per super-block in gemv), the second
//    subtracted at the end.
static int q6_k_quant(const quant::BlockQ6_K& q, int e) {  // 0..63, the +32 offset kept
  const int j = e / 128, r = e % 128, run = r / 32, l = r % 32;
  const uint8_t lo = q.ql[64 * j + l + (run & 1) * 32];
  return (run < 2 ? lo & 0xF : lo >> 4) | ((q.qh[32 * j + l] >> (2 * run)) & 3) << 4;
}

static float dot_q6_k_vec(const quant::BlockQ6_K* w, const quant::BlockQ8_K* x, int64_t nb) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t b = 0; b < nb; ++b) {
    int32_t lane[8] = {};
    for (int e = 0; e < quant::kQK_K; ++e)
      lane[(e % 32) / 4] += int32_t(w[b].scales[e / 16]) * q6_k_quant(w[b], e) * x[b].qs[e];
    for (int l = 0; l < 8; ++l)
      lane[l] -= 32 * (x[b].bsums[2 * l] * w[b].scales[2 * l] +
                       x[b].bsums[2 * l + 1] * w[b].scales[2 * l + 1]);
    const float d = x[b].d * f16_to_f32(w[b].d);
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(d, float(lane[l]), acc[l]);
  }
  return ggml_hsum8(acc);
}

static float dot_q6_k_tiled(const quant::BlockQ6_K* w, const quant::BlockQ8_K* x, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sum = 0;
    for (int e = 0; e < quant::kQK_K; ++e)
      sum += int32_t(w[b].scales[e / 16]) * (q6_k_quant(w[b], e) - 32) * x[b].qs[e];
    acc = std::fma(float(sum) * f16_to_f32(w[b].d), x[b].d, acc);
  }
  return acc;
}

// `gemm`: the four-row kernel (AVX-512), which adds to the accumulators per pair of 32-element
// sub-blocks; otherwise the one-row gemv, which adds once per super-block.
static float dot_q4_k_8x8(const quant::BlockQ4_K* w, const quant::BlockQ8_K* x, int64_t nb,
                          bool gemm) {
  float acc = 0, acc_min = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = f16_to_f32(w[b].d) * x[b].d, dmin = f16_to_f32(w[b].dmin) * x[b].d;
    int32_t sum = 0, sum_min = 0;
    for (int sub = 0; sub < 8; ++sub) {
      const quant::ScaleMin sm = quant::k4_scale_min(w[b].scales, sub);
      int32_t dot = 0, xs = 0;
      for (int e = 32 * sub; e < 32 * sub + 32; ++e) {
        const uint8_t byte = w[b].qs[32 * (e / 64) + e % 32];
        dot += int32_t(sub % 2 ? byte >> 4 : byte & 0xF) * x[b].qs[e];
        xs += x[b].qs[e];
      }
      sum += int32_t(sm.scale) * dot;
      sum_min += int32_t(sm.min) * xs;
      if (gemm ? sub % 2 == 1 : sub == 7) {
        acc = std::fma(float(sum), d, acc);
        acc_min = std::fma(float(sum_min), dmin, acc_min);
        sum = sum_min = 0;
      }
    }
  }
  return acc - acc_min;
}

// True (and y written) when w and act form one of the K-quant products above.
static bool mul_mat_ggml_kquant(DType act, const Tensor& w, const float* x, int64_t rows, int64_t K,
                                int64_t tokens, float* y) {
  const DType t = w.dtype();
  const int64_t N = w.dim(-2);
  const bool q6 = t == DType::Q6_K, q4 = t == DType::Q4_K && N % 8 == 0;
  if (act != DType::Q8_K || !(q6 || q4) || w.rank() != 2 || K % quant::kQK_K != 0) return false;
  // ggml sees the real tokens of the batch, not a bucket's padding rows.
  tokens = tokens > 0 && tokens < rows ? tokens : rows;
  const int64_t nb = K / quant::kQK_K;
  std::vector<quant::BlockQ8_K> xq(size_t(rows * nb));
  for (int64_t i = 0; i < rows * nb; ++i)
    quant::quantize_block(x + i * quant::kQK_K, &xq[size_t(i)]);
  const size_t row = last_row_bytes(*w.type);
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* wr = w.data + size_t(n) * row;
    for (int64_t i = 0; i < rows; ++i) {
      const quant::BlockQ8_K* xr = xq.data() + i * nb;
      if (q4)  // groups of four rows go to the gemm kernel, the rest to gemv
        y[i * N + n] = dot_q4_k_8x8(reinterpret_cast<const quant::BlockQ4_K*>(wr), xr, nb,
                                    i < tokens - tokens % 4);
      else if (tokens < 8)
        y[i * N + n] = dot_q6_k_vec(reinterpret_cast<const quant::BlockQ6_K*>(wr), xr, nb);
      else
        y[i * N + n] = dot_q6_k_tiled(reinterpret_cast<const quant::BlockQ6_K*>(wr), xr, nb);
    }
  }
  return true;
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
    if (mul_mat_ggml_legacy(act, w, xd, x.numel() / K, K, y)) return Status::Ok();
    if (mul_mat_ggml_kquant(act, w, xd, x.numel() / K, K, a.scratch.tokens, y)) return Status::Ok();
    xd = xr;
  }
  const size_t w_row = last_row_bytes(*w.type);
  float* wf = a.scratch.get(1, size_t(K));
  // act=f16 is ggml's f16 product; w may be the f32 copy of an f16 cache (decompose-attention).
  const bool ggml_f16 =
      act == DType::F16 && (w.dtype() == DType::F16 || w.dtype() == DType::F32) && K % 16 == 0;

  if (w.rank() == 2) {
    // Every row of x (all batches) against each dequantized weight row.
    const int64_t rows = x.numel() / K;
    for (int64_t n = 0; n < N; ++n) {
      KILN_RETURN_IF_ERROR(to_f32(w.dtype(), w.data + size_t(n) * w_row, wf, size_t(K)));
      if (ggml_f16)
        mul_mat_f16_rows(xd, wf, rows, K, N, n, y);
      else
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
      if (ggml_f16)
        mul_mat_f16_rows(xm, wf, M, K, N, n, ym);
      else
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
