// The KV cache and attention: kv_write, attn_mask, attention.
//
// attention computes exactly what its decomposition (get_rows, permute, mul_mat, attn_mask,
// softmax, mul_mat, permute) computes in this interpreter: scores rounded to f32 as mul_mat's
// result is, the same softmax_row, probabilities in f32, the weighted sum of values in double. It
// only skips the keys the mask hides (their probability is exactly 0 there), so the two agree
// to the last bit or nearly (the order of a double sum may differ).
#include <algorithm>
#include <limits>
#include <vector>

#include "ir/half.h"
#include "runtime/interp_ggml_math.h"
#include "runtime/interp_kernels.h"

namespace kiln::runtime::interp {
namespace {

// Keys j in [lo, hi] are visible to a query at position p (docs/ir.md, attn_mask); empty when
// lo > hi. A padding row (p < 0) sees only j = 0.
struct Visible {
  int64_t lo, hi;
};
Visible visible(int64_t p, int64_t ctx, int64_t window) {
  if (p < 0) return {0, 0};
  int64_t lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
  return {lo, std::min(p, ctx - 1)};
}

Status check_seq(int64_t s, int64_t S, int64_t b) {
  if (s < 0 || s >= S)
    return make_error("sequence slot ", s, " of batch row ", b, " is outside the cache's ", S,
                      " slots");
  return Status::Ok();
}

}  // namespace

// cache[seq[b], pos[b, t]] = cast(x[b, t]) for positions in [0, C); others are skipped. The
// result is the cache itself.
Status run_KvWrite(KernelArgs& a) {
  const Tensor& cache = a.in[0];
  const Tensor& pos = a.in[2];
  const Tensor& seq = a.in[3];
  if (!cache.writable)
    return make_error("the cache ", cache.type->str(),
                      " is read-only (a weight, constant or input)");
  KILN_ASSIGN_OR_RETURN(const float* x, f32_data(a.in[1], a.scratch, 0));
  const int64_t S = cache.dim(0), C = cache.dim(1), B = a.in[1].dim(0), T = a.in[1].dim(1);
  const int64_t HD = cache.dim(2) * cache.dim(3);
  const size_t slot_bytes = size_t(cache.dim(2)) * last_row_bytes(*cache.type);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = index_at(pos, b * T + t);
      if (p < 0 || p >= C) continue;
      const int64_t s = index_at(seq, b);
      KILN_RETURN_IF_ERROR(check_seq(s, S, b));
      uint8_t* dst = cache.data + size_t(s * C + p) * slot_bytes;
      KILN_RETURN_IF_ERROR(from_f32(cache.dtype(), x + (b * T + t) * HD, dst, size_t(HD)));
    }
  a.out[0].data = cache.data;
  a.out[0].writable = true;
  return Status::Ok();
}

Status run_AttnMask(KernelArgs& a) {
  const Tensor& pos = a.in[0];
  const int64_t ctx = a.node.attrs.i("ctx"), window = a.node.attrs.i("window");
  float* y = a.out[0].as<float>();
  for (int64_t r = 0; r < pos.numel(); ++r) {
    const Visible v = visible(index_at(pos, r), ctx, window);
    for (int64_t j = 0; j < ctx; ++j)
      y[r * ctx + j] = j >= v.lo && j <= v.hi ? 0.0f : -std::numeric_limits<float>::infinity();
  }
  return Status::Ok();
}

// One query row as llama.cpp's CPU attention (without flash attention) computes it with an f16
// cache. Its two products are f16 mul_mats: with two or more tokens in the batch ggml runs
// llamafile's tinyBLAS (ggml_dot16), with one token ggml_vec_dot_f16 — different summation
// orders, both reproduced. Scores: the f16-rounded query against the keys, times the scale;
// softmax with ggml's vectorized expf and its sum taken per 16 cache cells in f64;
// probabilities rounded to f16; values summed over the cache cells. ggml sees the whole padded
// cache, so a cell's lane is its absolute index; cells outside [first, first + m) are masked
// and add exact zeros. k and v point at this head's row of cache row `row0`; consecutive cache
// rows are `heads` head rows apart.
struct GgmlAttnRow {
  const float* q;
  const float* k;
  const float* v;
  int64_t heads, D, Dv, first, row0, m;
  float scale;
  bool gemv;  // one real token in the batch
};

static void ggml_attention_row(const GgmlAttnRow& r, float* sc, float* pr, float* y) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < r.m; ++j) {
    const float* kj = r.k + (r.row0 + j) * r.heads * r.D;
    sc[j] = (r.gemv ? ggml_vec_dot_f16(kj, r.q, r.D) : ggml_dot16(kj, r.q, r.D)) * r.scale;
    mx = std::max(mx, sc[j]);
  }
  double sum = 0;
  float lanes[16];
  for (int64_t j = 0; j < r.m;) {  // per aligned group of 16 absolute cells
    const int64_t group_end = std::min<int64_t>(r.m, j + (16 - (r.first + j) % 16));
    std::fill(lanes, lanes + 16, 0.0f);
    for (; j < group_end; ++j) lanes[(r.first + j) % 16] = pr[j] = ggml_expf(sc[j] - mx);
    sum += double(ggml_reduce16(lanes));
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < r.m; ++j) pr[j] = f16_to_f32(f32_to_f16(pr[j] * inv));
  // The value sum as a dot product over the padded cache: lane (cell % 64) / 16, cell % 16 of
  // vec_dot_f16's accumulators, or lane cell % 16 of tinyBLAS's one.
  const int64_t first64 = r.first & ~int64_t(63), n = r.first + r.m - first64;
  const int64_t padded = (n + 63) & ~int64_t(63);
  std::vector<float> vrow(size_t(padded), 0.0f), prow(size_t(padded), 0.0f);
  for (int64_t j = 0; j < r.m; ++j) prow[size_t(r.first - first64 + j)] = pr[j];
  for (int64_t d = 0; d < r.Dv; ++d) {
    for (int64_t j = 0; j < r.m; ++j)
      vrow[size_t(r.first - first64 + j)] = r.v[(r.row0 + j) * r.heads * r.Dv + d];
    y[d] = r.gemv ? ggml_vec_dot_f16(vrow.data(), prow.data(), padded)
                  : ggml_dot16(vrow.data(), prow.data(), padded);
  }
}

// q [B, T, Hq, D], caches [S, C, Hkv, D|Dv] -> [B, T, Hq, Dv]; query head h reads kv head
// h / (Hq / Hkv). Only the visible cache rows are dequantized, once per batch row.
Status run_Attention(KernelArgs& a) {
  const Tensor& qt = a.in[0];
  const Tensor& kc = a.in[1];
  const Tensor& vc = a.in[2];
  const Tensor& pos = a.in[3];
  const Tensor& seq = a.in[4];
  KILN_ASSIGN_OR_RETURN(const float* q, f32_data(qt, a.scratch, 0));
  float* y = a.out[0].as<float>();
  const double scale = a.node.attrs.f("scale"), softcap = a.node.attrs.f("softcap");
  const int64_t window = a.node.attrs.i("window");
  const bool f16 = a.node.attrs.dtype("act") == DType::F16;
  // act=f16 reproduces llama.cpp's CPU attention bit for bit where its shapes allow.
  const bool exact = f16 && softcap == 0 && qt.dim(3) % 16 == 0;
  const int64_t B = qt.dim(0), T = qt.dim(1), Hq = qt.dim(2), D = qt.dim(3);
  const int64_t S = kc.dim(0), C = kc.dim(1), Hkv = kc.dim(2), Dv = vc.dim(3);
  const int64_t group = Hq / Hkv;
  const size_t k_slot = size_t(Hkv) * last_row_bytes(*kc.type);
  const size_t v_slot = size_t(Hkv) * last_row_bytes(*vc.type);
  // ggml picks its f16 product by the batch's tokens; padding rows (pos < 0) are not in
  // llama.cpp's batch, so one real token among them still takes ggml_vec_dot_f16.
  int64_t real_tokens = 0;
  for (int64_t r = 0; r < B * T; ++r) real_tokens += index_at(pos, r) >= 0;

  for (int64_t b = 0; b < B; ++b) {
    // Every key any query of this row can see lies in [lo, hi]; only those rows are read,
    // dequantized once into kf/vf (row j of the cache at index j - lo).
    int64_t lo = C, hi = -1;
    for (int64_t t = 0; t < T; ++t) {
      Visible v = visible(index_at(pos, b * T + t), C, window);
      if (v.lo > v.hi) continue;
      lo = std::min(lo, v.lo);
      hi = std::max(hi, v.hi);
    }
    const int64_t s = index_at(seq, b), n = std::max<int64_t>(hi - lo + 1, 0);
    if (n > 0) KILN_RETURN_IF_ERROR(check_seq(s, S, b));
    float* kf = a.scratch.get(1, size_t(std::max<int64_t>(n, 1) * Hkv * D));
    float* vf = a.scratch.get(2, size_t(std::max<int64_t>(n, 1) * Hkv * Dv));
    float* sc = a.scratch.get(3, size_t(std::max<int64_t>(n, 1)));
    float* pr = a.scratch.get(4, size_t(std::max<int64_t>(n, 1)));
    for (int64_t j = 0; j < n; ++j) {
      KILN_RETURN_IF_ERROR(to_f32(kc.dtype(), kc.data + size_t(s * C + lo + j) * k_slot,
                                  kf + j * Hkv * D, size_t(Hkv * D)));
      KILN_RETURN_IF_ERROR(to_f32(vc.dtype(), vc.data + size_t(s * C + lo + j) * v_slot,
                                  vf + j * Hkv * Dv, size_t(Hkv * Dv)));
    }
    for (int64_t t = 0; t < T; ++t) {
      const Visible v = visible(index_at(pos, b * T + t), C, window);
      const int64_t m = v.lo <= v.hi ? v.hi - v.lo + 1 : 0;
      for (int64_t h = 0; h < Hq; ++h) {
        const float* qr = q + ((b * T + t) * Hq + h) * D;
        float* qh = a.scratch.get(5, size_t(D));
        if (f16) {  // act=f16: q rounded before the scores
          for (int64_t d = 0; d < D; ++d) qh[d] = f16_to_f32(f32_to_f16(qr[d]));
          qr = qh;
        }
        const int64_t kvh = h / group;
        float* yr = y + ((b * T + t) * Hq + h) * Dv;
        if (exact) {
          const GgmlAttnRow row{qr, kf + kvh * D, vf + kvh * Dv, Hkv, D, Dv, v.lo, v.lo - lo,
                                m,  float(scale), real_tokens < 2};
          ggml_attention_row(row, sc, pr, yr);
          continue;
        }
        for (int64_t j = 0; j < m; ++j)
          sc[j] = float(dot(qr, kf + ((v.lo - lo + j) * Hkv + kvh) * D, D));
        softmax_row(sc, nullptr, 0, m, scale, softcap, pr);
        if (f16)  // act=f16: probabilities rounded before multiplying V
          for (int64_t j = 0; j < m; ++j) pr[j] = f16_to_f32(f32_to_f16(pr[j]));
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < m; ++j)
            acc += double(pr[j]) * double(vf[((v.lo - lo + j) * Hkv + kvh) * Dv + d]);
          yr[d] = float(acc);
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln::runtime::interp
