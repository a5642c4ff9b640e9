// The packed weight layout (microkernels.h): rows in groups of 16, each 32-block of a group one
// record of 16 * block_bytes bytes:
//   [16 f16 d][Q4_1: 16 f16 m][Q5_0: 64 bytes of fifth bits][quants in 64-byte chunks]
// Chunk j, byte 4r + t belongs to row r. For the nibble types it is the file's qs[4j + t] (low
// nibble element 4j + t, high nibble element 16 + 4j + t); for Q8_0 it is qs[4j + t] ^ 0x80 (the
// level as an unsigned byte, what vpdpbusd multiplies). Q5_0's fifth-bit byte 4r + t has, in
// bit i, the fifth bit of element 4i + t. Packing only moves bits, so unpacking gives the file
// bytes back.
#include <algorithm>
#include <cstring>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "codegen/cpu/mk_internal.h"

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

Status check(DType t, int N, int K) {
  if (!packable(t)) {
    return make_error("microkernels: no packed layout for ", dtype_name(t),
                      " (have q4_0, q4_1, q5_0, q8_0)");
  }
  if (N < 0 || K <= 0 || K % 32 != 0) {
    return make_error("microkernels: cannot pack ", N, " x ", K, " ", dtype_name(t),
                      ": K must be a positive multiple of 32");
  }
  return Status::Ok();
}

}  // namespace

void run_packed(const PackedSet& ps, DType t, const void* Wp, int N, int n0, int n1, const void* xq,
                size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K) {
  if (n1 <= n0 || M <= 0) return;
  const size_t group_bytes = size_t(kPackRows) * row_bytes(t, K).value_or(0);
  const ActLayout al = act_layout(act_type(t), K);
  TileArgs a;
  a.w_stride = int64_t(group_bytes);
  a.x_stride = int64_t(xq_row_bytes);
  a.nsteps = K / 32;
  a.tail = 0;
  a.aux_off = int64_t(al.aux_off);
  const auto* w = static_cast<const uint8_t*>(Wp);
  const auto* x = static_cast<const uint8_t*>(xq);
  const int g0 = n0 / kPackRows, g_full = n1 / kPackRows;
  int chunk = std::max(1, g_full - g0);
  if (M > 1) chunk = std::max<int>(1, int((size_t(256) << 10) / group_bytes));
  for (int gc = g0; gc < g_full; gc += chunk) {
    const int ge = std::min(g_full, gc + chunk);
    for (int m = 0; m < M;) {
      const int mr = std::min(ps.mr_max, M - m);
      a.w = w + size_t(gc) * group_bytes;
      a.x = x + size_t(m) * xq_row_bytes;
      a.y = y + size_t(m) * y_row_stride + size_t(gc) * kPackRows;
      a.y_stride = int64_t(y_row_stride * sizeof(float));
      a.ntiles = ge - gc;
      ps.fn[mr](&a);
      m += mr;
    }
  }
  if (n1 % kPackRows != 0) {  // the last, partial group (n1 == N): through a scratch tile
    const int g = n1 / kPackRows, rows = n1 - g * kPackRows;
    float tmp[kMaxPackMr * kPackRows];
    for (int m = 0; m < M;) {
      const int mr = std::min(ps.mr_max, M - m);
      a.w = w + size_t(g) * group_bytes;
      a.x = x + size_t(m) * xq_row_bytes;
      a.y = tmp;
      a.y_stride = kPackRows * sizeof(float);
      a.ntiles = 1;
      ps.fn[mr](&a);
      for (int i = 0; i < mr; ++i)
        std::memcpy(y + size_t(m + i) * y_row_stride + size_t(g) * kPackRows, tmp + kPackRows * i,
                    sizeof(float) * rows);
      m += mr;
    }
  }
}

namespace {

// The plain C++ variant: unpack a group to file rows, then the scalar kernel.
template <DType T>
void gemm_packed_scalar(const void* Wp, int N, int n0, int n1, const void* xq, size_t xq_row_bytes,
                        int M, float* y, size_t y_row_stride, int K) {
  const size_t rb = row_bytes(T, K).value_or(0);
  const size_t group_bytes = kPackRows * rb;
  std::vector<uint8_t> rows(group_bytes);
  const GemmFn gemm = scalar_gemm(T);
  for (int g = n0 / kPackRows; g * kPackRows < n1; ++g) {
    const int count = std::min(kPackRows, N - g * kPackRows);
    (void)unpack_weights(T, static_cast<const uint8_t*>(Wp) + g * group_bytes, count, K,
                         rows.data(), rb);
    const int lo = std::max(n0, g * kPackRows) - g * kPackRows;
    const int hi = std::min(n1, g * kPackRows + count) - g * kPackRows;
    gemm(rows.data(), rb, lo, hi, xq, xq_row_bytes, M, y + g * kPackRows, y_row_stride, K);
  }
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
    default:
      return nullptr;
  }
}

}  // namespace detail

using namespace detail;

bool packable(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q8_0;
}

size_t packed_bytes(DType t, int N, int K) {
  if (!check(t, N, K).ok()) return 0;
  const size_t groups = (size_t(N) + kPackRows - 1) / kPackRows;
  return groups * kPackRows * row_bytes(t, K).value_or(0);
}

Status pack_weights(DType t, const void* W, size_t w_row_bytes, int N, int K, void* out) {
  KILN_RETURN_IF_ERROR(check(t, N, K));
  const PackedLegacy p = packed_legacy(t);
  const int nb = K / 32;
  auto* o = static_cast<uint8_t*>(out);
  for (int g = 0; g * kPackRows < N; ++g) {
    for (int b = 0; b < nb; ++b) {
      const uint8_t* blk[kPackRows];
      for (int r = 0; r < kPackRows; ++r) {
        const int n = g * kPackRows + r;
        blk[r] = n < N ? static_cast<const uint8_t*>(W) + size_t(n) * w_row_bytes +
                             size_t(b) * p.block_bytes
                       : nullptr;
      }
      pack_record(t, p, blk, o + (size_t(g) * nb + b) * kPackRows * p.block_bytes);
    }
  }
  return Status::Ok();
}

Status unpack_weights(DType t, const void* packed, int N, int K, void* W, size_t w_row_bytes) {
  KILN_RETURN_IF_ERROR(check(t, N, K));
  const PackedLegacy p = packed_legacy(t);
  const int nb = K / 32;
  const auto* in = static_cast<const uint8_t*>(packed);
  for (int g = 0; g * kPackRows < N; ++g) {
    for (int b = 0; b < nb; ++b) {
      uint8_t* blk[kPackRows];
      for (int r = 0; r < kPackRows; ++r) {
        const int n = g * kPackRows + r;
        blk[r] =
            n < N ? static_cast<uint8_t*>(W) + size_t(n) * w_row_bytes + size_t(b) * p.block_bytes
                  : nullptr;
      }
      unpack_record(t, p, in + (size_t(g) * nb + b) * kPackRows * p.block_bytes, blk);
    }
  }
  return Status::Ok();
}

}  // namespace kiln::mk
