// The plain C++ variant: the same products as the JIT code, one block at a time. It is the
// fallback when xbyak is off and the cross-check in tests. Per block it computes the integer dot
// product exactly and scales it the way ggml's x86 kernels do (d_w * d_x first).
#include <cstring>

#include "codegen/cpu/mk_internal.h"
#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"

namespace kiln::mk::detail {
namespace {

using namespace kiln::quant;

template <class B>
B load_block(const uint8_t* p) {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

// The activation row as the kernels see it.
struct ActRow {
  const int8_t* q;
  const uint8_t* aux;
  size_t aux_bytes;
  float f(int block, int field) const {
    float v;
    std::memcpy(&v, aux + size_t(block) * aux_bytes + 4 * field, 4);
    return v;
  }
};

ActRow act_row(const ActLayout& l, const uint8_t* row) {
  return {reinterpret_cast<const int8_t*>(row), row + l.aux_off, l.aux_bytes};
}

// Legacy 32-blocks: q(j) gives element j's unsigned level; `off` is subtracted from it.
template <class B, int kOff, class Q>
float dot_legacy(const uint8_t* w, const ActRow& x, int nb, Q q) {
  float sum = 0.0f;
  for (int b = 0; b < nb; ++b) {
    const B blk = load_block<B>(w + size_t(b) * sizeof(B));
    const int8_t* xq = x.q + 32 * b;
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += (q(blk, j) - kOff) * xq[j];
    sum += float(isum) * (f16_to_f32(blk.d) * x.f(b, 0));
  }
  return sum;
}

float dot_q4_1(const uint8_t* w, const ActRow& x, int nb) {
  float sum = 0.0f, summs = 0.0f;
  for (int b = 0; b < nb; ++b) {
    const BlockQ4_1 blk = load_block<BlockQ4_1>(w + size_t(b) * sizeof(BlockQ4_1));
    const int8_t* xq = x.q + 32 * b;
    int isum = 0;
    for (int j = 0; j < 16; ++j) isum += (blk.qs[j] & 15) * xq[j] + (blk.qs[j] >> 4) * xq[j + 16];
    sum += float(isum) * (f16_to_f32(blk.d) * x.f(b, 0));
    summs += f16_to_f32(blk.m) * (x.f(b, 1) * 8.0f);
  }
  return sum + summs;
}

float dot_q4_k(const uint8_t* w, const ActRow& x, int nb) {
  float sum = 0.0f;
  for (int b = 0; b < nb; ++b) {
    const BlockQ4_K blk = load_block<BlockQ4_K>(w + size_t(b) * sizeof(BlockQ4_K));
    const int8_t* xq = x.q + 256 * b;
    int16_t bsums[16];
    std::memcpy(bsums, x.aux + size_t(b) * x.aux_bytes, sizeof(bsums));
    const float dx = x.f(b, 8);
    const uint8_t* s = blk.scales;
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, mn;
      if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
      } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
      }
      const uint8_t* qs = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) dot += ((qs[l] >> shift) & 15) * xq[32 * j + l];
      isum += sc * dot;
      msum += mn * (bsums[2 * j] + bsums[2 * j + 1]);
    }
    sum += (dx * f16_to_f32(blk.d)) * float(isum) - (dx * f16_to_f32(blk.dmin)) * float(msum);
  }
  return sum;
}

float dot_q6_k(const uint8_t* w, const ActRow& x, int nb) {
  float sum = 0.0f;
  for (int b = 0; b < nb; ++b) {
    const BlockQ6_K blk = load_block<BlockQ6_K>(w + size_t(b) * sizeof(BlockQ6_K));
    const int8_t* xq = x.q + 256 * b;
    int isum = 0;
    for (int e = 0; e < 256; e += 16) {
      int dot = 0;
      for (int i = e; i < e + 16; ++i) {
        // Element i = 128h + 32g + l: low 4 bits in ql[64h + 32(g&1) + l] (nibble g/2), high 2
        // bits at qh[32h + l] >> 2g.
        const int h = i / 128, g = (i / 32) % 4, l = i % 32;
        const int lo = (blk.ql[64 * h + 32 * (g & 1) + l] >> (4 * (g / 2))) & 15;
        const int hi = (blk.qh[32 * h + l] >> (2 * g)) & 3;
        dot += ((lo | (hi << 4)) - 32) * xq[i];
      }
      isum += blk.scales[e / 16] * dot;
    }
    sum += (x.f(b, 8) * f16_to_f32(blk.d)) * float(isum);
  }
  return sum;
}

template <DType T>
float dot_row(const uint8_t* w, const ActRow& x, int K) {
  if constexpr (T == DType::Q4_0) {
    return dot_legacy<BlockQ4_0, 8>(w, x, K / 32, [](const BlockQ4_0& b, int j) {
      return j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4;
    });
  } else if constexpr (T == DType::Q5_0) {
    return dot_legacy<BlockQ5_0, 16>(w, x, K / 32, [](const BlockQ5_0& b, int j) {
      uint32_t qh;
      std::memcpy(&qh, b.qh, 4);
      const int lo = j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4;
      return lo | int((qh >> j) & 1) << 4;
    });
  } else if constexpr (T == DType::Q8_0) {
    return dot_legacy<BlockQ8_0, 0>(w, x, K / 32,
                                    [](const BlockQ8_0& b, int j) { return int(b.qs[j]); });
  } else if constexpr (T == DType::Q4_1) {
    return dot_q4_1(w, x, K / 32);
  } else if constexpr (T == DType::Q4_K) {
    return dot_q4_k(w, x, K / 256);
  } else {
    return dot_q6_k(w, x, K / 256);
  }
}

template <DType T>
void gemm_scalar(const void* W, size_t w_row_bytes, int n0, int n1, const void* xq,
                 size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K) {
  const ActLayout l = act_layout(act_type(T), K);
  for (int m = 0; m < M; ++m) {
    const ActRow x = act_row(l, static_cast<const uint8_t*>(xq) + size_t(m) * xq_row_bytes);
    for (int n = n0; n < n1; ++n) {
      const uint8_t* w = static_cast<const uint8_t*>(W) + size_t(n) * w_row_bytes;
      y[size_t(m) * y_row_stride + n] = dot_row<T>(w, x, K);
    }
  }
}

}  // namespace

GemmFn scalar_gemm(DType weight_type) {
  switch (weight_type) {
    case DType::Q4_0:
      return gemm_scalar<DType::Q4_0>;
    case DType::Q4_1:
      return gemm_scalar<DType::Q4_1>;
    case DType::Q5_0:
      return gemm_scalar<DType::Q5_0>;
    case DType::Q8_0:
      return gemm_scalar<DType::Q8_0>;
    case DType::Q4_K:
      return gemm_scalar<DType::Q4_K>;
    case DType::Q6_K:
      return gemm_scalar<DType::Q6_K>;
    default:
      return nullptr;
  }
}

}  // namespace kiln::mk::detail
