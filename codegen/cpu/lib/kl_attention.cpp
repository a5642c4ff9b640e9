// Attention over the KV cache (flash-decoding): one pass over the visible keys with an online
// softmax, the query heads of one KV head together (grouped-query attention shares every K and V
// row they read). Work items are (batch row, token, KV head), and when there are fewer of them
// than threads can share well (decode), also slices of the key range; the slices' partial results
// (max, sum, weighted values) meet in shared scratch after a barrier, as in flash-decoding.
//
// Positions and slots are read at run time, so one compiled kernel serves every step.
#include "kl.h"

// Cache element types, by ggml type id.
enum : int32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kBF16 = 30
};

KL_API void kl_dequant_row_f32(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_bf16(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_q8_0(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_q4_0(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_q4_1(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_q5_0(const uint8_t* src, float* dst, int64_t n);
KL_API void kl_dequant_row_q5_1(const uint8_t* src, float* dst, int64_t n);

namespace {

constexpr int64_t kKeyBlock = 32;  // keys scored and accumulated together
constexpr int64_t kMaxSplit = 16;  // slices of the key range per work item

KL_INLINE int64_t row_bytes(int32_t dt, int64_t n) {
  switch (dt) {
    case kF32:
      return 4 * n;
    case kF16:
    case kBF16:
      return 2 * n;
    case kQ4_0:
      return n / 32 * 18;
    case kQ4_1:
      return n / 32 * 20;
    case kQ5_0:
      return n / 32 * 22;
    case kQ5_1:
      return n / 32 * 24;
    default:
      return n / 32 * 34;  // q8_0
  }
}

KL_INLINE void load_row(int32_t dt, const uint8_t* src, float* dst, int64_t n) {
  switch (dt) {
    case kF32:
      kl_dequant_row_f32(src, dst, n);
      break;
    case kF16: {
      int64_t i = 0;
      for (; i + 16 <= n; i += 16) kl_f16x16_to_f32(src + 2 * i, dst + i);
      for (; i < n; ++i) dst[i] = kl_f16_to_f32(kl::load_u16(src + 2 * i));
      break;
    }
    case kBF16:
      kl_dequant_row_bf16(src, dst, n);
      break;
    case kQ4_0:
      kl_dequant_row_q4_0(src, dst, n);
      break;
    case kQ4_1:
      kl_dequant_row_q4_1(src, dst, n);
      break;
    case kQ5_0:
      kl_dequant_row_q5_0(src, dst, n);
      break;
    case kQ5_1:
      kl_dequant_row_q5_1(src, dst, n);
      break;
    default:
      kl_dequant_row_q8_0(src, dst, n);
      break;
  }
}

struct Range {
  int64_t lo, n;  // keys [lo, lo + n)
};

// Keys visible to a query at position p (docs/ir.md, attn_mask): a padding row sees key 0 only.
KL_INLINE Range visible(int64_t p, int64_t C, int64_t window) {
  if (p < 0) return {0, 1};
  const int64_t lo = window > 0 ? kl::max<int64_t>(0, p - window + 1) : 0;
  const int64_t hi = kl::min(p, C - 1);
  return {lo, hi >= lo ? hi - lo + 1 : 0};
}

KL_INLINE float dot(const float* a, const float* b, int64_t n) {
#pragma clang fp reassociate(on) contract(fast)
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// ggml's f16 products (runtime/interp_ggml_math.h) in explicit 16-lane vectors, so that the
// accumulators stay in registers and the lanes' reduction is two shuffles and adds: the same
// operations in the same order. The vectors pass only between always-inlined helpers, so no
// calling convention is involved.
#pragma clang diagnostic ignored "-Wpsabi"
typedef float f32x16 __attribute__((ext_vector_type(16)));
typedef float f32x8 __attribute__((ext_vector_type(8)));
typedef float f32x4 __attribute__((ext_vector_type(4)));

KL_INLINE f32x16 load16(const float* p) {
  f32x16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// _mm512_reduce_add_ps as GCC expands it (kl::reduce16).
KL_INLINE float reduce16(f32x16 a) {
  const f32x8 t3 = a.hi + a.lo;
  const f32x4 t6 = t3.hi + t3.lo;
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// ggml_vec_dot_f16: four accumulators of 16 lanes over steps of 64, summed pairwise, reduced, the
// tail added in double. n is a multiple of 16.
KL_INLINE float vec_dot_f16(const float* a, const float* b, int64_t n) {
  f32x16 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = __builtin_elementwise_fma(load16(a + i), load16(b + i), a0);
    a1 = __builtin_elementwise_fma(load16(a + i + 16), load16(b + i + 16), a1);
    a2 = __builtin_elementwise_fma(load16(a + i + 32), load16(b + i + 32), a2);
    a3 = __builtin_elementwise_fma(load16(a + i + 48), load16(b + i + 48), a3);
  }
  double sum = reduce16((a0 + a2) + (a1 + a3));
  for (; i < n; ++i) sum += double(a[i] * b[i]);
  return float(sum);
}

// llamafile's tinyBLAS f16 product: one accumulator of 16 lanes. n is a multiple of 16.
KL_INLINE float dot16(const float* a, const float* b, int64_t n) {
  f32x16 acc = 0.0f;
  for (int64_t i = 0; i < n; i += 16)
    acc = __builtin_elementwise_fma(load16(a + i), load16(b + i), acc);
  return reduce16(acc);
}

// llama.cpp's CPU attention with an f16 cache and no soft-capping, bit for bit (the reference
// interpreter's ggml_attention_row in runtime/interp_attention.cpp): its two f16 products are
// ggml_vec_dot_f16 with one token in the batch (gemv) and llamafile's tinyBLAS (dot16) with more.
// Query heads h0 .. h0 + nh of one KV head, keys [r.lo, r.lo + r.n): scores of the f16-rounded
// query by the product's order, times the scale; exp by ggml_v_expf with the sum taken per
// aligned group of 16 absolute cache cells (reduce16, added in double); probabilities scaled by
// float(1 / sum) and rounded to f16. The value sums are the product over the whole cache (ggml
// sees it padded), so a cell's lane is its absolute index: lane c % 64 (c % 16 for dot16) of
// vec_dot_f16's four accumulators of 16 lanes, updated by FMA in increasing cell order. Here a
// lane is computed at a time, its cells' V rows read from the cache with 64 columns of sums in
// registers; then the lanes are reduced as the product's accumulators are.
struct ExactHeads {
  const float* q;  // q[(bt * Hq + h) * D + d]
  const uint8_t *kbase, *vbase;
  int64_t Hq, D, Dv, Hkv, k_row, v_row, bt, h0, nh, C;
  int32_t kdt, vdt;
  float scale;
  bool gemv;
};

KL_INLINE void attention_exact(const ExactHeads& e, Range r, float* qh, float* buf, float* sc,
                               float* lanes, float* y) {
  const int64_t D = e.D, Dv = e.Dv, L = e.gemv ? 64 : 16;
  for (int64_t g = 0; g < e.nh; ++g)
    for (int64_t d = 0; d < D; ++d)
      qh[g * D + d] = kl_f16_to_f32(kl_f32_to_f16(e.q[(e.bt * e.Hq + e.h0 + g) * D + d]));
  // Scores.
  for (int64_t jb = 0; jb < r.n; jb += kKeyBlock) {
    const int64_t nb = kl::min(kKeyBlock, r.n - jb);
    for (int64_t i = 0; i < nb; ++i)
      load_row(e.kdt, e.kbase + (r.lo + jb + i) * e.Hkv * e.k_row, buf + i * D, D);
    for (int64_t g = 0; g < e.nh; ++g)
      for (int64_t i = 0; i < nb; ++i) {
        const float* k = buf + i * D;
        const float z = e.gemv ? vec_dot_f16(k, qh + g * D, D) : dot16(k, qh + g * D, D);
        sc[g * e.C + jb + i] = z * e.scale;
      }
  }
  // Softmax per head: sums of 16 absolute cells; probabilities rounded to f16.
  for (int64_t g = 0; g < e.nh; ++g) {
    float* s = sc + g * e.C;
    float mx = -__builtin_inff();
    for (int64_t j = 0; j < r.n; ++j) mx = kl::max(mx, s[j]);
    for (int64_t j = 0; j < r.n; ++j) s[j] = kl_expf(s[j] - mx);
    double sum = 0.0;
    for (int64_t j = 0; j < r.n;) {
      const int64_t at = (r.lo + j) & 15, len = kl::min<int64_t>(16 - at, r.n - j);
      if (len == 16) {
        sum += double(kl::reduce16(s + j));
      } else {
        float part[16] = {};
        for (int64_t l = 0; l < len; ++l) part[at + l] = s[j + l];
        sum += double(kl::reduce16(part));
      }
      j += len;
    }
    const float inv = float(1.0 / sum);
    for (int64_t j = 0; j < r.n; ++j) s[j] = kl_f16_to_f32(kl_f32_to_f16(s[j] * inv));
  }
  // Value sums, per head and lane: lane l accumulates the cells c = l (mod L) in increasing
  // order (from +0, as the product's zeroed accumulators; a lane no cell reaches stays zero),
  // 64 columns at a time in registers; V rows are read where they lie in the cache.
  float* t = buf + Dv;  // 16 rows of Dv after one row of V (the other types' row buffer)
  for (int64_t g = 0; g < e.nh; ++g) {
    const float* p = sc + g * e.C;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t j0 = (l - r.lo) & (L - 1);  // the first visible cell of this lane
      float* out = lanes + l * Dv;
      for (int64_t d0 = 0; d0 < Dv; d0 += 64) {
        const int64_t w = kl::min<int64_t>(64, Dv - d0);
        if (w == 64 && e.vdt == kF16) {
          f32x16 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
          for (int64_t j = j0; j < r.n; j += L) {
            const uint8_t* vr = e.vbase + (r.lo + j) * e.Hkv * e.v_row + 2 * d0;
            float v[64];
            for (int k = 0; k < 4; ++k) kl_f16x16_to_f32(vr + 32 * k, v + 16 * k);
            const f32x16 pj = p[j];
            a0 = __builtin_elementwise_fma(load16(v), pj, a0);
            a1 = __builtin_elementwise_fma(load16(v + 16), pj, a1);
            a2 = __builtin_elementwise_fma(load16(v + 32), pj, a2);
            a3 = __builtin_elementwise_fma(load16(v + 48), pj, a3);
          }
          __builtin_memcpy(out + d0, &a0, 64);
          __builtin_memcpy(out + d0 + 16, &a1, 64);
          __builtin_memcpy(out + d0 + 32, &a2, 64);
          __builtin_memcpy(out + d0 + 48, &a3, 64);
        } else {
          float a[64] = {};
          for (int64_t j = j0; j < r.n; j += L) {
            load_row(e.vdt, e.vbase + (r.lo + j) * e.Hkv * e.v_row, buf, Dv);
            for (int64_t c = 0; c < w; ++c) a[c] = __builtin_fmaf(buf[d0 + c], p[j], a[c]);
          }
          for (int64_t c = 0; c < w; ++c) out[d0 + c] = a[c];
        }
      }
    }
    // The lanes' sums as the product ends them, as vector adds over d: vec_dot_f16 adds its four
    // accumulators pairwise (lane 16 k + l is accumulator k's lane l) into t, then reduce16 over
    // t's rows.
    for (int64_t l = 0; l < 16; ++l) {
      float* tl = t + l * Dv;
      const float* a0 = lanes + l * Dv;
      if (L == 64) {
        const float *a1 = a0 + 16 * Dv, *a2 = a0 + 32 * Dv, *a3 = a0 + 48 * Dv;
        for (int64_t d = 0; d < Dv; ++d) tl[d] = (a0[d] + a2[d]) + (a1[d] + a3[d]);
      } else {
        for (int64_t d = 0; d < Dv; ++d) tl[d] = a0[d];
      }
    }
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t d = 0; d < Dv; ++d) t[i * Dv + d] = t[(i + 8) * Dv + d] + t[i * Dv + d];
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t d = 0; d < Dv; ++d) t[i * Dv + d] = t[(i + 4) * Dv + d] + t[i * Dv + d];
    float* yr = y + (e.bt * e.Hq + e.h0 + g) * Dv;
    for (int64_t d = 0; d < Dv; ++d) yr[d] = (t[d] + t[2 * Dv + d]) + (t[Dv + d] + t[3 * Dv + d]);
  }
}

}  // namespace

// Floats of private scratch per thread that kl_attention needs (C: the cache length; act16: the
// act=f16 path, whose value sums need 64 lanes of Dv floats).
KL_API int64_t kl_attention_private_floats(int64_t D, int64_t Dv, int64_t group, int64_t C,
                                           int32_t act16) {
  return kKeyBlock * (D + Dv) + group * (kKeyBlock + C + D + Dv + 2) + (act16 ? 64 * Dv : 0);
}

// Floats of shared scratch (0: this shape never splits the key range).
KL_API int64_t kl_attention_shared_floats(int64_t units, int64_t Dv, int64_t group) {
  return units < 32 ? units * kMaxSplit * group * (Dv + 2) : 0;
}

// q [B, T, Hq, D] f32; caches [S, C, Hkv, D | Dv] of types kdt / vdt; pos i32 [B, T]; seq i32 [B];
// y [B, T, Hq, Dv]. `shared` holds kl_attention_shared_floats (or is null when that is 0), `priv`
// kl_attention_private_floats. Every thread of the kernel calls this with its ith.
// act16: attention's act=f16 (llama.cpp's CPU attention with an f16 cache): q and the normalized
// probabilities are rounded to f16, so the softmax is taken whole before the values (two passes
// over the keys per query head) rather than online; without softcap and with D % 16 == 0 in
// llama.cpp's exact arithmetic (attention_exact).
KL_API void kl_attention(const float* q, const uint8_t* kc, const uint8_t* vc, const int32_t* pos,
                         const int32_t* seq, float* y, int64_t B, int64_t T, int64_t Hq, int64_t D,
                         int64_t S, int64_t C, int64_t Hkv, int64_t Dv, int32_t kdt, int32_t vdt,
                         float scale, float softcap, int64_t window, int32_t act16, float* shared,
                         float* priv, int32_t ith, int32_t nth, void (*barrier)(void*),
                         void* barrier_ctx) {
  const int64_t group = Hq / Hkv;
  const int64_t units = B * T * Hkv;
  const int64_t k_row = row_bytes(kdt, D), v_row = row_bytes(vdt, Dv);
  if (act16) {
    // Work items: (batch row, token, KV head, a share of its query heads), enough of them for
    // every thread; the heads of one item share every K and V row they read.
    const int64_t bth = B * T * Hkv;
    int64_t parts = 1;
    while (parts < group && bth * parts < 2 * nth) ++parts;
    const int64_t per = (group + parts - 1) / parts;
    float* qh = priv;             // per head: D
    float* buf = qh + group * D;  // a block of K or V rows: kKeyBlock * max(D, Dv)
    float* acc = buf + kKeyBlock * kl::max(D, Dv);  // per head: Dv
    float* sc = acc + group * Dv;                   // per head: C scores, then probabilities
    float* lanes = sc + group * C;                  // exact: 64 lanes of Dv
    const bool exact = softcap == 0.0f && D % 16 == 0;
    // ggml picks its f16 product by the batch's real tokens (padding rows, pos < 0, are not in
    // llama.cpp's batch): ggml_vec_dot_f16 for one, tinyBLAS for more.
    int64_t real_tokens = 0;
    for (int64_t r = 0; r < B * T; ++r) real_tokens += pos[r] >= 0;
    const int64_t items = bth * parts;
    for (int64_t it = items * ith / nth; it < items * (ith + 1) / nth; ++it) {
      const int64_t part = it % parts, unit = it / parts;
      const int64_t kvh = unit % Hkv, bt = unit / Hkv, b = bt / T;
      const int64_t h0 = kvh * group + part * per, nh = kl::min(per, kvh * group + group - h0);
      if (nh <= 0) continue;
      Range r = visible(pos[bt], C, window);
      const int64_t slot = seq[b];
      if (slot < 0 || slot >= S) r.n = 0;
      if (exact) {
        ExactHeads e;
        e.q = q;
        e.kbase = kc + (slot * C * Hkv + kvh) * k_row;
        e.vbase = vc + (slot * C * Hkv + kvh) * v_row;
        e.Hq = Hq, e.D = D, e.Dv = Dv, e.Hkv = Hkv, e.k_row = k_row, e.v_row = v_row;
        e.bt = bt, e.h0 = h0, e.nh = nh, e.C = C, e.kdt = kdt, e.vdt = vdt, e.scale = scale;
        e.gemv = real_tokens < 2;
        attention_exact(e, r, qh, buf, sc, lanes, y);
        continue;
      }
      for (int64_t g = 0; g < nh; ++g)
        for (int64_t d = 0; d < D; ++d)
          qh[g * D + d] = kl_f16_to_f32(kl_f32_to_f16(q[(bt * Hq + h0 + g) * D + d]));
      const uint8_t* kbase = kc + (slot * C * Hkv + kvh) * k_row;
      const uint8_t* vbase = vc + (slot * C * Hkv + kvh) * v_row;
      // Pass 1: every score.
      for (int64_t jb = 0; jb < r.n; jb += kKeyBlock) {
        const int64_t nb = kl::min(kKeyBlock, r.n - jb);
        for (int64_t i = 0; i < nb; ++i)
          load_row(kdt, kbase + (r.lo + jb + i) * Hkv * k_row, buf + i * D, D);
        for (int64_t g = 0; g < nh; ++g)
          for (int64_t i = 0; i < nb; ++i) {
            float z = dot(qh + g * D, buf + i * D, D);
            if (softcap > 0.0f) z = softcap * kl_tanhf(z / softcap);
            sc[g * C + jb + i] = z * scale;
          }
      }
      // The softmax of each head, probabilities rounded to f16.
      for (int64_t g = 0; g < nh; ++g) {
        float* s = sc + g * C;
        float mx = -__builtin_inff();
        for (int64_t j = 0; j < r.n; ++j) mx = kl::max(mx, s[j]);
        double sum = 0.0;
        {
#pragma clang fp reassociate(on)
          for (int64_t j = 0; j < r.n; ++j) {
            s[j] = kl_expf(s[j] - mx);
            sum += double(s[j]);
          }
        }
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < r.n; ++j) s[j] = kl_f16_to_f32(kl_f32_to_f16(s[j] * inv));
        for (int64_t d = 0; d < Dv; ++d) acc[g * Dv + d] = 0.0f;
      }
      // Pass 2: the weighted values.
      for (int64_t jb = 0; jb < r.n; jb += kKeyBlock) {
        const int64_t nb = kl::min(kKeyBlock, r.n - jb);
        for (int64_t i = 0; i < nb; ++i)
          load_row(vdt, vbase + (r.lo + jb + i) * Hkv * v_row, buf + i * Dv, Dv);
        for (int64_t g = 0; g < nh; ++g) {
          float* a = acc + g * Dv;
          for (int64_t i = 0; i < nb; ++i) {
            const float p = sc[g * C + jb + i];
            const float* v = buf + i * Dv;
            {
#pragma clang fp contract(fast)
              for (int64_t d = 0; d < Dv; ++d) a[d] += p * v[d];
            }
          }
        }
      }
      for (int64_t g = 0; g < nh; ++g)
        for (int64_t d = 0; d < Dv; ++d) y[(bt * Hq + h0 + g) * Dv + d] = acc[g * Dv + d];
    }
    return;
  }

  // Slices of the key range: enough work items to keep every thread busy, only when the keys are
  // many enough to pay for the barrier. Every thread computes the same answer.
  int64_t nsplit = 1;
  if (shared && units < 4 * nth && barrier) {
    int64_t most = 0;
    for (int64_t bt = 0; bt < B * T; ++bt) most = kl::max(most, visible(pos[bt], C, window).n);
    if (most >= 128) {
      while (nsplit < kMaxSplit && (units * nsplit) % nth != 0 && units * nsplit < 4 * nth)
        ++nsplit;
      if ((units * nsplit) % nth != 0 && units * nsplit < 4 * nth) nsplit = 1;
    }
  }

  float* kbuf = priv;
  float* vbuf = kbuf + kKeyBlock * D;
  float* sc = vbuf + kKeyBlock * Dv;
  float* st = sc + group * kKeyBlock;  // per head: m, l, acc[Dv]
  const int64_t items = units * nsplit;
  const int64_t w0 = items * ith / nth, w1 = items * (ith + 1) / nth;
  for (int64_t w = w0; w < w1; ++w) {
    const int64_t unit = w / nsplit, part = w % nsplit;
    const int64_t kvh = unit % Hkv, bt = unit / Hkv, b = bt / T;
    Range r = visible(pos[bt], C, window);
    const int64_t slot = seq[b];
    if (slot < 0 || slot >= S) r.n = 0;
    const int64_t j0 = r.lo + r.n * part / nsplit, j1 = r.lo + r.n * (part + 1) / nsplit;
    for (int64_t g = 0; g < group; ++g) {
      float* s = st + g * (Dv + 2);
      s[0] = -__builtin_inff();
      s[1] = 0.0f;
      for (int64_t d = 0; d < Dv; ++d) s[2 + d] = 0.0f;
    }
    const uint8_t* kbase = kc + (slot * C * Hkv + kvh) * k_row;
    const uint8_t* vbase = vc + (slot * C * Hkv + kvh) * v_row;
    for (int64_t jb = j0; jb < j1; jb += kKeyBlock) {
      const int64_t nb = kl::min(kKeyBlock, j1 - jb);
      for (int64_t i = 0; i < nb; ++i)
        load_row(kdt, kbase + (jb + i) * Hkv * k_row, kbuf + i * D, D);
      for (int64_t i = 0; i < nb; ++i)
        load_row(vdt, vbase + (jb + i) * Hkv * v_row, vbuf + i * Dv, Dv);
      for (int64_t g = 0; g < group; ++g) {
        const float* qh = q + (bt * Hq + kvh * group + g) * D;
        float* scg = sc + g * kKeyBlock;
        float bmax = -__builtin_inff();
        for (int64_t i = 0; i < nb; ++i) {
          float z = dot(qh, kbuf + i * D, D);
          if (softcap > 0.0f) z = softcap * kl_tanhf(z / softcap);
          z *= scale;
          scg[i] = z;
          bmax = kl::max(bmax, z);
        }
        float* s = st + g * (Dv + 2);
        const float mnew = kl::max(s[0], bmax);
        const float corr = kl_expf(s[0] - mnew);
        float lsum = 0.0f;
        for (int64_t i = 0; i < nb; ++i) {
          scg[i] = kl_expf(scg[i] - mnew);
          lsum += scg[i];
        }
        float* acc = s + 2;
        for (int64_t d = 0; d < Dv; ++d) acc[d] *= corr;
        for (int64_t i = 0; i < nb; ++i) {
          const float p = scg[i];
          const float* v = vbuf + i * Dv;
          {
#pragma clang fp contract(fast)
            for (int64_t d = 0; d < Dv; ++d) acc[d] += p * v[d];
          }
        }
        s[0] = mnew;
        s[1] = s[1] * corr + lsum;
      }
    }
    for (int64_t g = 0; g < group; ++g) {
      const float* s = st + g * (Dv + 2);
      if (nsplit == 1) {
        float* yr = y + (bt * Hq + kvh * group + g) * Dv;
        const float inv = s[1] > 0.0f ? 1.0f / s[1] : 0.0f;
        for (int64_t d = 0; d < Dv; ++d) yr[d] = s[2 + d] * inv;
      } else {
        float* out = shared + ((unit * nsplit + part) * group + g) * (Dv + 2);
        for (int64_t d = 0; d < Dv + 2; ++d) out[d] = s[d];
      }
    }
  }
  if (nsplit == 1) return;

  // Combine the slices: each partial is rescaled to the overall maximum.
  barrier(barrier_ctx);
  const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
  for (int64_t unit = u0; unit < u1; ++unit) {
    const int64_t kvh = unit % Hkv, bt = unit / Hkv;
    for (int64_t g = 0; g < group; ++g) {
      float m = -__builtin_inff();
      for (int64_t part = 0; part < nsplit; ++part) {
        const float* p = shared + ((unit * nsplit + part) * group + g) * (Dv + 2);
        if (p[1] > 0.0f) m = kl::max(m, p[0]);
      }
      float* yr = y + (bt * Hq + kvh * group + g) * Dv;
      for (int64_t d = 0; d < Dv; ++d) yr[d] = 0.0f;
      float l = 0.0f;
      for (int64_t part = 0; part < nsplit; ++part) {
        const float* p = shared + ((unit * nsplit + part) * group + g) * (Dv + 2);
        if (!(p[1] > 0.0f)) continue;
        const float f = kl_expf(p[0] - m);
        l += f * p[1];
        for (int64_t d = 0; d < Dv; ++d) yr[d] += f * p[2 + d];
      }
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      for (int64_t d = 0; d < Dv; ++d) yr[d] *= inv;
    }
  }
}
