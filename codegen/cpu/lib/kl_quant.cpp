// Block formats: dequantization (bit-exact with the reference in frontends/gguf/quant*.cpp: the
// same float operations in the same order, no contraction), dot products of a quantized row with
// f32 activations, single-element reads, quantizers for the types a kernel writes (KV caches,
// casts), and the matmul tile of the library path (every weight type, f32 activations).
//
// The byte layouts are those of frontends/gguf/quant_blocks.h, written out by offset here because
// this code is freestanding; tests/cpu_codegen_library_test.cpp checks every type against it.
#include "kl.h"

namespace {

using kl::load_u16;
using kl::load_u32;

#define H(p) kl_f16_to_f32(load_u16(p))

const int8_t kNL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

KL_INLINE void deq_q4_0(const uint8_t* b, float* y) {
  const float d = H(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = float((b[2 + j] & 0x0F) - 8) * d;
    y[j + 16] = float((b[2 + j] >> 4) - 8) * d;
  }
}

KL_INLINE void deq_q4_1(const uint8_t* b, float* y) {
  const float d = H(b), m = H(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b[4 + j] & 0x0F) * d + m;
    y[j + 16] = float(b[4 + j] >> 4) * d + m;
  }
}

KL_INLINE int unpack5(const uint8_t* qs, uint32_t qh, int j) {
  const int low = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return low | int(((qh >> j) & 1u) << 4);
}

KL_INLINE void deq_q5_0(const uint8_t* b, float* y) {
  const float d = H(b);
  const uint32_t qh = load_u32(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = float(unpack5(b + 6, qh, j) - 16) * d;
}

KL_INLINE void deq_q5_1(const uint8_t* b, float* y) {
  const float d = H(b), m = H(b + 2);
  const uint32_t qh = load_u32(b + 4);
  for (int j = 0; j < 32; ++j) y[j] = float(unpack5(b + 8, qh, j)) * d + m;
}

KL_INLINE void deq_q8_0(const uint8_t* b, float* y) {
  const float d = H(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[2 + j])) * d;
}

KL_INLINE void deq_q8_1(const uint8_t* b, float* y) {
  const float d = H(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[4 + j])) * d;
}

KL_INLINE int low2(const uint8_t* qs, int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
}

// Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82.
KL_INLINE void deq_q2_k(const uint8_t* b, float* y) {
  const float d = H(b + 80), dmin = H(b + 82);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(b[s] & 0xF);
    const float ml = dmin * float(b[s] >> 4);
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * float(low2(b + 16, e)) - ml;
  }
}

KL_INLINE int q3k_scale(const uint8_t* bytes, int s) {
  const int low = s < 8 ? bytes[s] & 0xF : bytes[s - 8] >> 4;
  const int high = (bytes[8 + s % 4] >> (2 * (s / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
KL_INLINE void deq_q3_k(const uint8_t* b, float* y) {
  const float d = H(b + 108);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * float(q3k_scale(b + 96, s));
    for (int e = 16 * s; e < 16 * s + 16; ++e) {
      const bool high = (b[e % 32] >> (e / 32)) & 1;
      y[e] = dl * float(low2(b + 32, e) - (high ? 0 : 4));
    }
  }
}

struct ScaleMin {
  int scale, min;
};
KL_INLINE ScaleMin k4_scale_min(const uint8_t* q, int s) {
  if (s < 4) return {q[s] & 63, q[s + 4] & 63};
  return {(q[s + 4] & 0xF) | ((q[s - 4] >> 6) << 4), (q[s + 4] >> 4) | ((q[s] >> 6) << 4)};
}

// Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16.
KL_INLINE void deq_q4_k(const uint8_t* b, float* y) {
  const float d = H(b), dmin = H(b + 2);
  for (int s = 0; s < 8; ++s) {
    const ScaleMin sm = k4_scale_min(b + 4, s);
    const float dl = d * float(sm.scale);
    const float ml = dmin * float(sm.min);
    const uint8_t* q = b + 16 + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) y[32 * s + l] = dl * float((q[l] >> shift) & 0xF) - ml;
  }
}

// Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
KL_INLINE void deq_q5_k(const uint8_t* b, float* y) {
  const float d = H(b), dmin = H(b + 2);
  for (int s = 0; s < 8; ++s) {
    const ScaleMin sm = k4_scale_min(b + 4, s);
    const float dl = d * float(sm.scale);
    const float ml = dmin * float(sm.min);
    const uint8_t* q = b + 48 + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) {
      const int q5 = ((q[l] >> shift) & 0xF) | (((b[16 + l] >> s) & 1) << 4);
      y[32 * s + l] = dl * float(q5) - ml;
    }
  }
}

// Q6_K: ql[128] @0, qh[64] @128, scales[16] @192 (int8), d @208.
KL_INLINE void deq_q6_k(const uint8_t* b, float* y) {
  const float d = H(b + 208);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b + 64 * half;
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * half;
    float* out = y + 128 * half;
    for (int l = 0; l < 32; ++l) {
      const int q0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      const int s = l / 16;
      out[l] = d * float(sc[s]) * float(q0);
      out[l + 32] = d * float(sc[s + 2]) * float(q1);
      out[l + 64] = d * float(sc[s + 4]) * float(q2);
      out[l + 96] = d * float(sc[s + 6]) * float(q3);
    }
  }
}

// Q8_K: f32 d @0, qs[256] @4, bsums @260.
KL_INLINE void deq_q8_k(const uint8_t* b, float* y) {
  const float d = kl::load_f32(b);
  for (int e = 0; e < 256; ++e) y[e] = d * float(int8_t(b[4 + e]));
}

KL_INLINE void decode_nl32(const uint8_t* qs, float d, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(kNL[qs[j] & 0xF]);
    y[j + 16] = d * float(kNL[qs[j] >> 4]);
  }
}

KL_INLINE void deq_iq4_nl(const uint8_t* b, float* y) {
  decode_nl32(b + 2, H(b), y);
}

// IQ4_XS: d @0, scales_h @2 (u16), scales_l[4] @4, qs[128] @8.
KL_INLINE void deq_iq4_xs(const uint8_t* b, float* y) {
  const float d = H(b);
  const uint32_t sh = load_u16(b + 2);
  for (int s = 0; s < 8; ++s) {
    const int low = (b[4 + s / 2] >> (4 * (s % 2))) & 0xF;
    const int high = (sh >> (2 * s)) & 3;
    const float dl = d * float((low | (high << 4)) - 32);
    decode_nl32(b + 8 + 16 * s, dl, y + 32 * s);
  }
}

KL_INLINE void deq_f32(const uint8_t* b, float* y) {
  y[0] = kl::load_f32(b);
}
KL_INLINE void deq_f16(const uint8_t* b, float* y) {
  y[0] = H(b);
}
KL_INLINE void deq_bf16(const uint8_t* b, float* y) {
  y[0] = kl_bf16_to_f32(load_u16(b));
}

template <int QK>
KL_INLINE float dot_block(const float* a, const float* b) {
#pragma clang fp reassociate(on) contract(fast)
  float s = 0.0f;
  for (int i = 0; i < QK; ++i) s += a[i] * b[i];
  return s;
}

// Four dot products against one row `w` (activation rows x0..x3), sharing the loads of w.
KL_INLINE void dot4(const float* w, const float* x0, const float* x1, const float* x2,
                    const float* x3, int64_t n, float* out) {
#pragma clang fp reassociate(on) contract(fast)
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    s0 += w[i] * x0[i];
    s1 += w[i] * x1[i];
    s2 += w[i] * x2[i];
    s3 += w[i] * x3[i];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

}  // namespace

// Per type T with blocks of QK elements and BYTES bytes:
//   kl_dequant_row_T(src, dst, n)    n elements (whole blocks)
//   kl_dequant_elem_T(row, k)        element k of a row
//   kl_dot_T(w, x, n)                sum_k w[k] x[k], w dequantized block by block
//   kl_mm_T(W, w_row_bytes, n0, n1, x, x_stride, M, y, y_stride, K, tmp)
//        y[m * y_stride + (n - n0)] = dot(W row n, x row m) for n in [n0, n1), m < M; tmp holds K
//        floats (a dequantized weight row, reused by every activation row when M is large).
#define KL_TYPE(T, QK, BYTES)                                                                    \
  KL_API void kl_dequant_row_##T(const uint8_t* src, float* dst, int64_t n) {                    \
    for (int64_t b = 0; b < n / QK; ++b) deq_##T(src + b * BYTES, dst + b * QK);                 \
  }                                                                                              \
  KL_API float kl_dequant_elem_##T(const uint8_t* row, int64_t k) {                              \
    float t[QK];                                                                                 \
    deq_##T(row + (k / QK) * BYTES, t);                                                          \
    return t[k % QK];                                                                            \
  }                                                                                              \
  KL_API float kl_dot_##T(const uint8_t* w, const float* x, int64_t n) {                         \
    _Pragma("clang fp reassociate(on)") float acc = 0.0f;                                        \
    for (int64_t b = 0; b < n / QK; ++b) {                                                       \
      float t[QK];                                                                               \
      deq_##T(w + b * BYTES, t);                                                                 \
      acc += dot_block<QK>(t, x + b * QK);                                                       \
    }                                                                                            \
    return acc;                                                                                  \
  }                                                                                              \
  KL_API void kl_mm_##T(const uint8_t* W, int64_t w_row_bytes, int64_t n0, int64_t n1,           \
                        const float* x, int64_t x_stride, int64_t M, float* y, int64_t y_stride, \
                        int64_t K, float* tmp) {                                                 \
    if (M < 4) {                                                                                 \
      for (int64_t n = n0; n < n1; ++n)                                                          \
        for (int64_t m = 0; m < M; ++m)                                                          \
          y[m * y_stride + (n - n0)] = kl_dot_##T(W + n * w_row_bytes, x + m * x_stride, K);     \
      return;                                                                                    \
    }                                                                                            \
    for (int64_t n = n0; n < n1; ++n) {                                                          \
      kl_dequant_row_##T(W + n * w_row_bytes, tmp, K);                                           \
      int64_t m = 0;                                                                             \
      for (; m + 4 <= M; m += 4) {                                                               \
        float o[4];                                                                              \
        dot4(tmp, x + m * x_stride, x + (m + 1) * x_stride, x + (m + 2) * x_stride,              \
             x + (m + 3) * x_stride, K, o);                                                      \
        for (int i = 0; i < 4; ++i) y[(m + i) * y_stride + (n - n0)] = o[i];                     \
      }                                                                                          \
      for (; m < M; ++m) y[m * y_stride + (n - n0)] = kl_vdot(tmp, x + m * x_stride, K);         \
    }                                                                                            \
  }

KL_TYPE(q4_0, 32, 18)
KL_TYPE(q4_1, 32, 20)
KL_TYPE(q5_0, 32, 22)
KL_TYPE(q5_1, 32, 24)
KL_TYPE(q8_0, 32, 34)
KL_TYPE(q8_1, 32, 36)
KL_TYPE(q2_k, 256, 84)
KL_TYPE(q3_k, 256, 110)
KL_TYPE(q4_k, 256, 144)
KL_TYPE(q5_k, 256, 176)
KL_TYPE(q6_k, 256, 210)
KL_TYPE(q8_k, 256, 292)
KL_TYPE(iq4_nl, 32, 18)
KL_TYPE(iq4_xs, 256, 136)
KL_TYPE(f16, 1, 2)
KL_TYPE(bf16, 1, 2)
KL_TYPE(f32, 1, 4)

// Rows of the microkernels' packed layout (codegen/cpu/mk_pack.cpp), for a get_rows of a table
// that products read packed: rows in groups of 16; block b of group g is one record of
// 16 * BYTES bytes at (g * n/32 + b) * 16 * BYTES holding the 16 rows' f16 d, Q4_1's f16 m at
// M_OFF, Q5_0's fifth bits at QH_OFF (byte 4r + t, bit i: element 4i + t), then CHUNKS chunks of
// 64 bytes at Q_OFF whose byte 4r + t is row r's qs[4j + t] (Q8_0's xor 0x80). Each block of the
// row is put back together as stored (qs at QS) and dequantized as such.
#define KL_PACKED(T, BYTES, M_OFF, QH_OFF, Q_OFF, CHUNKS, QS, FLIP)                             \
  KL_API void kl_dequant_packed_row_##T(const uint8_t* p, int64_t row, float* dst, int64_t n) { \
    const int64_t nb = n / 32, r = row % 16;                                                    \
    for (int64_t b = 0; b < nb; ++b) {                                                          \
      const uint8_t* rec = p + ((row / 16) * nb + b) * 16 * BYTES;                              \
      uint8_t blk[BYTES];                                                                       \
      blk[0] = rec[2 * r];                                                                      \
      blk[1] = rec[2 * r + 1];                                                                  \
      if (M_OFF) {                                                                              \
        blk[2] = rec[M_OFF + 2 * r];                                                            \
        blk[3] = rec[M_OFF + 2 * r + 1];                                                        \
      }                                                                                         \
      if (QH_OFF) {                                                                             \
        uint32_t qh = 0;                                                                        \
        for (int t = 0; t < 4; ++t)                                                             \
          for (int i = 0; i < 8; ++i)                                                           \
            qh |= uint32_t((rec[QH_OFF + 4 * r + t] >> i) & 1) << (4 * i + t);                  \
        __builtin_memcpy(blk + 2, &qh, 4);                                                      \
      }                                                                                         \
      for (int j = 0; j < CHUNKS; ++j)                                                          \
        for (int t = 0; t < 4; ++t)                                                             \
          blk[QS + 4 * j + t] = uint8_t(rec[Q_OFF + 64 * j + 4 * r + t] ^ FLIP);                \
      deq_##T(blk, dst + b * 32);                                                               \
    }                                                                                           \
  }

KL_PACKED(q4_0, 18, 0, 0, 32, 4, 2, 0)
KL_PACKED(q4_1, 20, 32, 0, 64, 4, 4, 0)
KL_PACKED(q5_0, 22, 0, 32, 96, 4, 6, 0)
KL_PACKED(q8_0, 34, 0, 0, 32, 8, 2, 0x80)

// The K-quants' packed records (256 elements; mk_pack.cpp): a row's byte i of a chunked part at
// OFF is at OFF + 64 (i / 4) + 4 r + i % 4.
KL_INLINE uint8_t packed_byte(const uint8_t* rec, int off, int64_t r, int i) {
  return rec[off + 64 * (i / 4) + 4 * r + i % 4];
}

KL_API void kl_dequant_packed_row_q4_k(const uint8_t* p, int64_t row, float* dst, int64_t n) {
  const int64_t nb = n / 256, r = row % 16;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = p + ((row / 16) * nb + b) * 16 * 144;
    uint8_t blk[144];  // d, dmin, scales[12], qs[128]
    for (int i = 0; i < 2; ++i) {
      blk[i] = rec[2 * r + i];
      blk[2 + i] = rec[32 + 2 * r + i];
    }
    for (int i = 0; i < 12; ++i) blk[4 + i] = packed_byte(rec, 64, r, i);
    for (int i = 0; i < 128; ++i) blk[16 + i] = packed_byte(rec, 256, r, i);
    deq_q4_k(blk, dst + b * 256);
  }
}

// Q6_K's packed levels (0..63): low four bits of elements i and 128 + i in nibble byte i, top two
// bits of element 64k + i in bits 2k..2k+1 of byte i of the second part; back to ql/qh.
KL_API void kl_dequant_packed_row_q6_k(const uint8_t* p, int64_t row, float* dst, int64_t n) {
  const int64_t nb = n / 256, r = row % 16;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = p + ((row / 16) * nb + b) * 16 * 210;
    uint8_t blk[210] = {};  // ql[128], qh[64], scales[16], d
    for (int e = 0; e < 256; ++e) {
      const uint8_t nib = packed_byte(rec, 288, r, e % 128);
      const int lo = e < 128 ? nib & 0xF : nib >> 4;
      const int hi = (packed_byte(rec, 2336, r, e % 64) >> (2 * (e / 64))) & 3;
      const int j = e / 128, q = e % 128, run = q / 32, l = q % 32;
      blk[64 * j + l + (run & 1) * 32] |= uint8_t(lo << (run < 2 ? 0 : 4));
      blk[128 + 32 * j + l] |= uint8_t(hi << (2 * run));
    }
    for (int i = 0; i < 16; ++i) blk[192 + i] = packed_byte(rec, 32, r, i);
    blk[208] = rec[2 * r];
    blk[209] = rec[2 * r + 1];
    deq_q6_k(blk, dst + b * 256);
  }
}

// ---- Quantizers (bit-exact with the reference quantize_row_*_ref; rows of whole blocks).

namespace {

KL_INLINE float signed_absmax32(const float* x) {
  float amax = 0.0f, m = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float a = __builtin_fabsf(x[j]);
    if (amax < a) {
      amax = a;
      m = x[j];
    }
  }
  return m;
}

KL_INLINE void min_max32(const float* x, float* mn, float* mx) {
  *mn = x[0];
  *mx = x[0];
  for (int j = 1; j < 32; ++j) {
    *mn = kl::min(*mn, x[j]);
    *mx = kl::max(*mx, x[j]);
  }
}

KL_INLINE void pack5(const int* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    h |= uint32_t((q[j] >> 4) & 1) << j;
    h |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  kl::store_u32(qh, h);
}

}  // namespace

KL_API void kl_quantize_row_q8_0(const float* x, uint8_t* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = kl::max(amax, __builtin_fabsf(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    kl::store_u16(y, kl_f32_to_f16(d));
    for (int j = 0; j < 32; ++j) y[2 + j] = uint8_t(int8_t(__builtin_roundf(x[j] * id)));
  }
}

KL_API void kl_quantize_row_q4_0(const float* x, uint8_t* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 18) {
    const float d = signed_absmax32(x) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    kl::store_u16(y, kl_f32_to_f16(d));
    for (int j = 0; j < 16; ++j) {
      const int q0 = kl::min(15, int(x[j] * id + 8.5f));
      const int q1 = kl::min(15, int(x[j + 16] * id + 8.5f));
      y[2 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

KL_API void kl_quantize_row_q4_1(const float* x, uint8_t* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 20) {
    float mn, mx;
    min_max32(x, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    kl::store_u16(y, kl_f32_to_f16(d));
    kl::store_u16(y + 2, kl_f32_to_f16(mn));
    for (int j = 0; j < 16; ++j) {
      const int q0 = kl::min(15, int((x[j] - mn) * id + 0.5f));
      const int q1 = kl::min(15, int((x[j + 16] - mn) * id + 0.5f));
      y[4 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

KL_API void kl_quantize_row_q5_0(const float* x, uint8_t* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 22) {
    const float d = signed_absmax32(x) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    kl::store_u16(y, kl_f32_to_f16(d));
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = kl::min(31, int(x[j] * id + 16.5f));
    pack5(q, y + 6, y + 2);
  }
}

KL_API void kl_quantize_row_q5_1(const float* x, uint8_t* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, y += 24) {
    float mn, mx;
    min_max32(x, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    kl::store_u16(y, kl_f32_to_f16(d));
    kl::store_u16(y + 2, kl_f32_to_f16(mn));
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = int((x[j] - mn) * id + 0.5f);
    pack5(q, y + 8, y + 4);
  }
}

KL_API void kl_quantize_row_f32(const float* x, uint8_t* y, int64_t n) {
  __builtin_memcpy(y, x, size_t(n) * 4);
}

KL_API void kl_quantize_row_f16(const float* x, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) kl::store_u16(y + 2 * i, kl_f32_to_f16(x[i]));
}

KL_API void kl_quantize_row_bf16(const float* x, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) kl::store_u16(y + 2 * i, kl_f32_to_bf16(x[i]));
}

// ---- Activation rounding: mul_mat's `act` (docs/ir.md). Each row of x becomes the values of
// its 8-bit (or 16-bit) form, as the interpreter and llama.cpp's CPU backend compute them:
// Q8_0/Q8_1 with ggml-cpu's x86 quantizer (scale amax/127 stored as f16, quants rounded to
// nearest even), Q8_K with the reference quantizer.

KL_API void kl_act_q8_0(const float* x, float* xr, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, xr += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = kl::max(amax, __builtin_fabsf(x[j]));
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    const float d = kl_f16_to_f32(kl_f32_to_f16(amax / 127.f));
    for (int j = 0; j < 32; ++j) xr[j] = d * __builtin_rintf(x[j] * id);
  }
}

// Q8_1's per-block sums: f16(d * sum(q)) with the unrounded scale, which ggml adds times each
// block's minimum for Q4_1 / Q5_1 weights.
KL_API void kl_act_q8_1_sums(const float* x, float* s, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = kl::max(amax, __builtin_fabsf(x[j]));
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += int(__builtin_rintf(x[j] * id));
    s[b] = kl_f16_to_f32(kl_f32_to_f16(amax / 127.f * float(sum)));
  }
}

KL_API void kl_act_q8_k(const float* x, float* xr, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b, x += 256, xr += 256) {
    float mx = 0.0f, amax = 0.0f;
    for (int e = 0; e < 256; ++e) {
      const float a = __builtin_fabsf(x[e]);
      if (a > amax) {
        amax = a;
        mx = x[e];
      }
    }
    if (amax == 0.0f) {
      for (int e = 0; e < 256; ++e) xr[e] = 0.0f;
      continue;
    }
    const float iscale = -127.f / mx;
    const float d = 1 / iscale;
    for (int e = 0; e < 256; ++e)
      xr[e] = d * float(kl::min(127, int(__builtin_rintf(iscale * x[e]))));
  }
}

KL_API void kl_act_f16(const float* x, float* xr, int64_t n) {
  for (int64_t i = 0; i < n; ++i) xr[i] = kl_f16_to_f32(kl_f32_to_f16(x[i]));
}

KL_API void kl_act_bf16(const float* x, float* xr, int64_t n) {
  for (int64_t i = 0; i < n; ++i) xr[i] = kl_bf16_to_f32(kl_f32_to_bf16(x[i]));
}

// Q4_1 / Q5_1 weights with Q8_1 activations: sum_b [sum_j (w_j - m_b) xr_j + m_b s_b], with xr
// the rounded activations and s the block sums above.
#define KL_Q8_1_TYPE(T, BYTES)                                                                   \
  KL_API float kl_dot_##T##_q8_1(const uint8_t* w, const float* xr, const float* s, int64_t n) { \
    _Pragma("clang fp reassociate(on)") float acc = 0.0f;                                        \
    for (int64_t b = 0; b < n / 32; ++b) {                                                       \
      float t[32];                                                                               \
      deq_##T(w + b * BYTES, t);                                                                 \
      const float m = H(w + b * BYTES + 2);                                                      \
      for (int j = 0; j < 32; ++j) t[j] -= m;                                                    \
      acc += dot_block<32>(t, xr + b * 32) + m * s[b];                                           \
    }                                                                                            \
    return acc;                                                                                  \
  }                                                                                              \
  KL_API void kl_mm_##T##_q8_1(const uint8_t* W, int64_t w_row_bytes, int64_t n0, int64_t n1,    \
                               const float* xr, int64_t x_stride, const float* s, int64_t M,     \
                               float* y, int64_t y_stride, int64_t K) {                          \
    for (int64_t n = n0; n < n1; ++n)                                                            \
      for (int64_t m = 0; m < M; ++m)                                                            \
        y[m * y_stride + (n - n0)] =                                                             \
            kl_dot_##T##_q8_1(W + n * w_row_bytes, xr + m * x_stride, s + m * (K / 32), K);      \
  }

KL_Q8_1_TYPE(q4_1, 20)
KL_Q8_1_TYPE(q5_1, 24)
