// The packed weight layouts (microkernels.h): rows in groups of 16, each block of a group one
// record of 16 * block_bytes bytes (the same bytes as the file, moved).
//
// Legacy types, one record per 32-block:
//   [16 f16 d][Q4_1: 16 f16 m][Q5_0: 64 bytes of fifth bits][quants in 64-byte chunks]
// Chunk j, byte 4r + t belongs to row r. For the nibble types it is the file's qs[4j + t] (low
// nibble element 4j + t, high nibble element 16 + 4j + t); for Q8_0 it is qs[4j + t] ^ 0x80 (the
// level as an unsigned byte, what vpdpbusd multiplies). Q5_0's fifth-bit byte 4r + t has, in
// bit i, the fifth bit of element 4i + t.
//
// K-quants, one record per 256-element super-block, every part in 64-byte chunks whose byte
// 4r + t belongs to row r:
//   Q4_K: [16 f16 d][16 f16 dmin][3 chunks: scales[4u + t], the file's 12 bytes of 6-bit
//         scales and mins][32 chunks: qs[4c + t], low nibble element 64(c/8) + 4(c%8) + t,
//         high nibble the element 32 after it]
//   Q6_K: [16 f16 d][4 chunks: the int8 scales[4u + t]][32 chunks: low four bits of the levels
//         (0..63) of elements 4c + t (low nibble) and 128 + 4c + t (high)][16 chunks: their top
//         two bits, element 64i + 4h + t in bits 2i..2i+1 of chunk h]
// Q6_K's levels are regrouped so that the four consecutive elements of a row that one vpdpbusd
// lane takes are one shift and one mask away; the levels are a bijection of ql/qh, so unpacking
// gives the file bytes back. Packing only moves bits.
#include <algorithm>
#include <cstring>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "codegen/cpu/mk_internal.h"
#include "frontends/gguf/quant_blocks.h"

namespace kiln::mk {
namespace detail {

PackedLegacy packed_legacy(DType t) {
  switch (t) {
    case DType::Q4_0:
      return {18, 0, 0, 32, 4};
    case DType::Q4_1:
      return {20, 32, 0, 64, 4};
    case DType::Q5_0:
      return {22, 0, 32, 96, 4};
    default:  // Q8_0
      return {34, 0, 0, 32, 8};
  }
}

PackedK packed_kquant(DType t) {
  if (t == DType::Q4_K) return {144, 32, 64, 256, 0};
  return {210, 0, 32, 288, 2336};  // Q6_K
}

namespace {

// The file block's fields: d at 0 for all four types, Q4_1's m at 2, Q5_0's qh at 2, qs after.
int qs_off(DType t) {
  return t == DType::Q4_0 ? 2 : t == DType::Q5_0 ? 6 : t == DType::Q4_1 ? 4 : 2;
}

// One record from 16 file blocks (nullptr: a missing row, packed as a zero block).
void pack_record(DType t, const PackedLegacy& p, const uint8_t* const blk[kPackRows],
                 uint8_t* rec) {
  std::memset(rec, 0, size_t(kPackRows) * p.block_bytes);
  for (int r = 0; r < kPackRows; ++r) {
    uint8_t zero[34] = {};
    const uint8_t* b = blk[r] ? blk[r] : zero;
    std::memcpy(rec + 2 * r, b, 2);
    if (t == DType::Q4_1) std::memcpy(rec + p.m_off + 2 * r, b + 2, 2);
    if (t == DType::Q5_0) {
      uint32_t qh;
      std::memcpy(&qh, b + 2, 4);
      for (int tt = 0; tt < 4; ++tt) {
        uint8_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint8_t(((qh >> (4 * i + tt)) & 1) << i);
        rec[p.qh_off + 4 * r + tt] = v;
      }
    }
    const uint8_t* qs = b + qs_off(t);
    const uint8_t flip = t == DType::Q8_0 ? 0x80 : 0;
    for (int j = 0; j < p.chunks; ++j)
      for (int tt = 0; tt < 4; ++tt) {
        // A missing Q8_0 row packs as level 0 (byte 0x80), like every other zero block.
        rec[p.q_off + 64 * j + 4 * r + tt] = uint8_t(qs[4 * j + tt] ^ flip);
      }
  }
}

void unpack_record(DType t, const PackedLegacy& p, const uint8_t* rec,
                   uint8_t* const blk[kPackRows]) {
  for (int r = 0; r < kPackRows; ++r) {
    uint8_t* b = blk[r];
    if (!b) continue;
    std::memcpy(b, rec + 2 * r, 2);
    if (t == DType::Q4_1) std::memcpy(b + 2, rec + p.m_off + 2 * r, 2);
    if (t == DType::Q5_0) {
      uint32_t qh = 0;
      for (int tt = 0; tt < 4; ++tt)
        for (int i = 0; i < 8; ++i)
          qh |= uint32_t((rec[p.qh_off + 4 * r + tt] >> i) & 1) << (4 * i + tt);
      std::memcpy(b + 2, &qh, 4);
    }
    uint8_t* qs = b + qs_off(t);
    const uint8_t flip = t == DType::Q8_0 ? 0x80 : 0;
    for (int j = 0; j < p.chunks; ++j)
      for (int tt = 0; tt < 4; ++tt)
        qs[4 * j + tt] = uint8_t(rec[p.q_off + 64 * j + 4 * r + tt] ^ flip);
  }
}

bool is_kquant(DType t) {
  return t == DType::Q4_K || t == DType::Q6_K;
}

// Q6_K's 256 levels (0..63, the +32 offset kept) from ql/qh, and back.
void q6k_levels(const quant::BlockQ6_K& b, uint8_t lev[256]) {
  for (int e = 0; e < 256; ++e) {
    const int j = e / 128, r = e % 128, run = r / 32, l = r % 32;
    const uint8_t lo = b.ql[64 * j + l + (run & 1) * 32];
    lev[e] = uint8_t((run < 2 ? lo & 0xF : lo >> 4) | ((b.qh[32 * j + l] >> (2 * run)) & 3) << 4);
  }
}
void q6k_from_levels(const uint8_t lev[256], quant::BlockQ6_K& b) {
  std::memset(b.ql, 0, sizeof b.ql);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 128, r = e % 128, run = r / 32, l = r % 32;
    b.ql[64 * j + l + (run & 1) * 32] |= uint8_t((lev[e] & 0xF) << (run < 2 ? 0 : 4));
    b.qh[32 * j + l] |= uint8_t((lev[e] >> 4) << (2 * run));
  }
}

// One K-quant record from 16 file blocks (nullptr: a missing row, a zero block).
void pack_record_k(DType t, const PackedK& p, const uint8_t* const blk[kPackRows], uint8_t* rec) {
  std::memset(rec, 0, size_t(kPackRows) * p.block_bytes);
  for (int r = 0; r < kPackRows; ++r) {
    uint8_t zero[210] = {};
    const uint8_t* b = blk[r] ? blk[r] : zero;
    auto chunked = [&](int off, int i, uint8_t v) { rec[off + 64 * (i / 4) + 4 * r + i % 4] = v; };
    if (t == DType::Q4_K) {
      quant::BlockQ4_K q;
      std::memcpy(&q, b, sizeof q);
      std::memcpy(rec + 2 * r, &q.d, 2);
      std::memcpy(rec + p.dmin_off + 2 * r, &q.dmin, 2);
      for (int i = 0; i < 12; ++i) chunked(p.sc_off, i, q.scales[i]);
      for (int i = 0; i < 128; ++i) chunked(p.q_off, i, q.qs[i]);
      continue;
    }
    quant::BlockQ6_K q;
    std::memcpy(&q, b, sizeof q);
    std::memcpy(rec + 2 * r, &q.d, 2);
    for (int i = 0; i < 16; ++i) chunked(p.sc_off, i, uint8_t(q.scales[i]));
    uint8_t lev[256];
    q6k_levels(q, lev);
    for (int i = 0; i < 128; ++i) chunked(p.q_off, i, uint8_t((lev[i] & 0xF) | lev[128 + i] << 4));
    for (int i = 0; i < 64; ++i) {
      uint8_t v = 0;
      for (int k = 0; k < 4; ++k) v |= uint8_t((lev[64 * k + i] >> 4) << (2 * k));
      chunked(p.hb_off, i, v);
    }
  }
}

void unpack_record_k(DType t, const PackedK& p, const uint8_t* rec, uint8_t* const blk[kPackRows]) {
  for (int r = 0; r < kPackRows; ++r) {
    if (!blk[r]) continue;
    auto chunked = [&](int off, int i) { return rec[off + 64 * (i / 4) + 4 * r + i % 4]; };
    if (t == DType::Q4_K) {
      quant::BlockQ4_K q;
      std::memcpy(&q.d, rec + 2 * r, 2);
      std::memcpy(&q.dmin, rec + p.dmin_off + 2 * r, 2);
      for (int i = 0; i < 12; ++i) q.scales[i] = chunked(p.sc_off, i);
      for (int i = 0; i < 128; ++i) q.qs[i] = chunked(p.q_off, i);
      std::memcpy(blk[r], &q, sizeof q);
      continue;
    }
    quant::BlockQ6_K q;
    std::memcpy(&q.d, rec + 2 * r, 2);
    for (int i = 0; i < 16; ++i) q.scales[i] = int8_t(chunked(p.sc_off, i));
    uint8_t lev[256];
    for (int i = 0; i < 128; ++i) {
      const uint8_t v = chunked(p.q_off, i);
      lev[i] = v & 0xF;
      lev[128 + i] = v >> 4;
    }
    for (int i = 0; i < 64; ++i) {
      const uint8_t v = chunked(p.hb_off, i);
      for (int k = 0; k < 4; ++k) lev[64 * k + i] |= uint8_t(((v >> (2 * k)) & 3) << 4);
    }
    q6k_from_levels(lev, q);
    std::memcpy(blk[r], &q, sizeof q);
  }
}

Status check(DType t, int N, int K) {
  if (!packable(t)) {
    return make_error("microkernels: no packed layout for ", dtype_name(t),
                      " (have q4_0, q4_1, q5_0, q8_0, q4_k, q6_k)");
  }
  const int qk = is_kquant(t) ? 256 : 32;
  if (N < 0 || K <= 0 || K % qk != 0) {
    return make_error("microkernels: cannot pack ", N, " x ", K, " ", dtype_name(t),
                      ": K must be a positive multiple of ", qk);
  }
  return Status::Ok();
}

// Packs (or, with `unpack`, unpacks) every record of N rows.
void for_each_record(DType t, int N, int K, bool unpack, const uint8_t* W, uint8_t* Wm,
                     size_t w_row_bytes, const uint8_t* packed, uint8_t* packed_m) {
  const bool k = is_kquant(t);
  const int block_bytes = k ? packed_kquant(t).block_bytes : packed_legacy(t).block_bytes;
  const int nb = K / (k ? 256 : 32);
  for (int g = 0; g * kPackRows < N; ++g) {
    for (int b = 0; b < nb; ++b) {
      uint8_t* blk[kPackRows];
      for (int r = 0; r < kPackRows; ++r) {
        const int n = g * kPackRows + r;
        const size_t off = size_t(n) * w_row_bytes + size_t(b) * block_bytes;
        blk[r] = n >= N ? nullptr : unpack ? Wm + off : const_cast<uint8_t*>(W + off);
      }
      const size_t rec = (size_t(g) * nb + b) * kPackRows * block_bytes;
      if (unpack && k)
        unpack_record_k(t, packed_kquant(t), packed + rec, blk);
      else if (unpack)
        unpack_record(t, packed_legacy(t), packed + rec, blk);
      else if (k)
        pack_record_k(t, packed_kquant(t), blk, packed_m + rec);
      else
        pack_record(t, packed_legacy(t), blk, packed_m + rec);
    }
  }
}

}  // namespace

namespace {

// Groups of weight rows one at a time: unpacked to file rows, then a file-layout kernel. For the
// plain C++ variant, and for ISAs without packed tiles for a type.
void gemm_via_unpack(GemmFn gemm, DType t, const void* Wp, int N, int n0, int n1, const void* xq,
                     size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K) {
  const size_t rb = row_bytes(t, K).value_or(0);
  const size_t group_bytes = kPackRows * rb;
  thread_local std::vector<uint8_t> rows;  // grows once per thread: no allocation per token
  if (rows.size() < group_bytes) rows.resize(group_bytes);
  for (int g = n0 / kPackRows; g * kPackRows < n1; ++g) {
    const int count = std::min(kPackRows, N - g * kPackRows);
    (void)unpack_weights(t, static_cast<const uint8_t*>(Wp) + g * group_bytes, count, K,
                         rows.data(), rb);
    const int lo = std::max(n0, g * kPackRows) - g * kPackRows;
    const int hi = std::min(n1, g * kPackRows + count) - g * kPackRows;
    gemm(rows.data(), rb, lo, hi, xq, xq_row_bytes, M, y + g * kPackRows, y_row_stride, K);
  }
}

// Activation rows [m0, m1) through tiles of at most `mr_max` rows.
void run_rows(const TileFn* fn, int mr_max, TileArgs a, const uint8_t* w, const uint8_t* x,
              size_t group_bytes, int n0, int n1, int m0, int m1, float* y, size_t y_row_stride,
              size_t xq_row_bytes, int M) {
  const int g0 = n0 / kPackRows, g_full = n1 / kPackRows;
  int chunk = std::max(1, g_full - g0);
  if (M > 1) chunk = std::max<int>(1, int((size_t(256) << 10) / group_bytes));
  for (int gc = g0; gc < g_full; gc += chunk) {
    const int ge = std::min(g_full, gc + chunk);
    for (int m = m0; m < m1;) {
      const int mr = std::min(mr_max, m1 - m);
      a.w = w + size_t(gc) * group_bytes;
      a.x = x + size_t(m) * xq_row_bytes;
      a.y = y + size_t(m) * y_row_stride + size_t(gc) * kPackRows;
      a.y_stride = int64_t(y_row_stride * sizeof(float));
      a.ntiles = ge - gc;
      fn[mr](&a);
      m += mr;
    }
  }
  if (n1 % kPackRows != 0) {  // the last, partial group (n1 == N): through a scratch tile
    const int g = n1 / kPackRows, rows = n1 - g * kPackRows;
    float tmp[kMaxPackMr * kPackRows];
    for (int m = m0; m < m1;) {
      const int mr = std::min(mr_max, m1 - m);
      a.w = w + size_t(g) * group_bytes;
      a.x = x + size_t(m) * xq_row_bytes;
      a.y = tmp;
      a.y_stride = kPackRows * sizeof(float);
      a.ntiles = 1;
      fn[mr](&a);
      for (int i = 0; i < mr; ++i)
        std::memcpy(y + size_t(m + i) * y_row_stride + size_t(g) * kPackRows, tmp + kPackRows * i,
                    sizeof(float) * rows);
      m += mr;
    }
  }
}

}  // namespace

void run_packed(const PackedSet& ps, GemmFn fallback, DType t, const void* Wp, int N, int n0,
                int n1, const void* xq, size_t xq_row_bytes, int M, float* y, size_t y_row_stride,
                int K, int tokens) {
  if (n1 <= n0 || M <= 0) return;
  if (ps.mr_max == 0) {
    gemm_via_unpack(fallback, t, Wp, N, n0, n1, xq, xq_row_bytes, M, y, y_row_stride, K);
    return;
  }
  const size_t group_bytes = size_t(kPackRows) * row_bytes(t, K).value_or(0);
  const ActLayout al = act_layout(act_type(t), K);
  TileArgs a;
  a.w_stride = int64_t(group_bytes);
  a.x_stride = int64_t(xq_row_bytes);
  a.nsteps = K / al.block_elems;
  a.tail = 0;
  a.aux_off = int64_t(al.aux_off);
  const auto* w = static_cast<const uint8_t*>(Wp);
  const auto* x = static_cast<const uint8_t*>(xq);
  // ggml's K-quant kernels by the batch's real tokens T: Q4_K's gemm takes rows in groups of 4
  // (rows below T - T % 4), its gemv the rest; Q6_K's tiled kernel all rows when T >= 8.
  int many = 0;
  if (ps.mr_many > 0) {
    const int T = tokens > 0 && tokens < M ? tokens : M;
    many = t == DType::Q4_K ? T - T % 4 : T >= 8 ? M : 0;
  }
  if (many > 0)
    run_rows(ps.fn_many, ps.mr_many, a, w, x, group_bytes, n0, n1, 0, many, y, y_row_stride,
             xq_row_bytes, M);
  if (many < M)
    run_rows(ps.fn, ps.mr_max, a, w, x, group_bytes, n0, n1, many, M, y, y_row_stride, xq_row_bytes,
             M);
}

namespace {

template <DType T>
void gemm_packed_scalar(const void* Wp, int N, int n0, int n1, const void* xq, size_t xq_row_bytes,
                        int M, float* y, size_t y_row_stride, int K, int) {
  gemm_via_unpack(scalar_gemm(T), T, Wp, N, n0, n1, xq, xq_row_bytes, M, y, y_row_stride, K);
}

}  // namespace

GemmPackedFn scalar_gemm_packed(DType t) {
  switch (t) {
    case DType::Q4_0:
      return gemm_packed_scalar<DType::Q4_0>;
    case DType::Q4_1:
      return gemm_packed_scalar<DType::Q4_1>;
    case DType::Q5_0:
      return gemm_packed_scalar<DType::Q5_0>;
    case DType::Q8_0:
      return gemm_packed_scalar<DType::Q8_0>;
    case DType::Q4_K:
      return gemm_packed_scalar<DType::Q4_K>;
    case DType::Q6_K:
      return gemm_packed_scalar<DType::Q6_K>;
    default:
      return nullptr;
  }
}

}  // namespace detail

using namespace detail;

bool packable(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q8_0 ||
         is_kquant(t);
}

size_t packed_bytes(DType t, int N, int K) {
  if (!check(t, N, K).ok()) return 0;
  const size_t groups = (size_t(N) + kPackRows - 1) / kPackRows;
  return groups * kPackRows * row_bytes(t, K).value_or(0);
}

Status pack_weights(DType t, const void* W, size_t w_row_bytes, int N, int K, void* out) {
  KILN_RETURN_IF_ERROR(check(t, N, K));
  for_each_record(t, N, K, false, static_cast<const uint8_t*>(W), nullptr, w_row_bytes, nullptr,
                  static_cast<uint8_t*>(out));
  return Status::Ok();
}

Status unpack_weights(DType t, const void* packed, int N, int K, void* W, size_t w_row_bytes) {
  KILN_RETURN_IF_ERROR(check(t, N, K));
  for_each_record(t, N, K, true, nullptr, static_cast<uint8_t*>(W), w_row_bytes,
                  static_cast<const uint8_t*>(packed), nullptr);
  return Status::Ok();
}

}  // namespace kiln::mk
