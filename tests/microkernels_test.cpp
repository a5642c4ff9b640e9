// The quantized GEMM/GEMV microkernels (codegen/cpu/microkernels.h), every weight type on every
// variant this machine can run, against a reference built from the reference dequantizers:
//   y[m][n] = sum_i w_i * a_i in double, w from dequantize_row, a = d * q from the activation
//   blocks (for Q4_1 the min term uses the activation's f16 s, as ggml does).
// Results must agree within 1e-5 of the row's L1 magnitude sum_i |w_i * a_i|; the activation
// quantizers must be bit-exact with the reference block quantizers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "frontends/gguf/quant.h"
#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"
#include "tests/support/test_support.h"

namespace kiln::mk {
namespace {

const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,
                        DType::Q8_0, DType::Q4_K, DType::Q6_K};
// 32, 96 and 224 are odd numbers of 32-blocks (the 512-bit kernels' one-block tail).
const int kKs[] = {32, 96, 224, 256, 512, 576, 640, 1536, 2048};
const int kNs[] = {1, 3, 17, 64, 129};
const int kMs[] = {1, 2, 3, 7, 32};
constexpr int kMaxN = 129, kMaxM = 32;

size_t block_bytes(DType t) {
  return dtype_info(t).block_bytes;
}
int block_elems(DType t) {
  return int(dtype_info(t).block_elems);
}

// Activations: random, never zero, a different magnitude per row.
std::vector<float> random_acts(int M, int K, uint32_t seed) {
  std::vector<float> x = test::random_floats(size_t(M) * K, seed, 1.0f);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) {
      float& v = x[size_t(m) * K + k];
      if (v == 0.0f) v = 0.25f;
      v *= 0.5f + float(m % 4);
    }
  return x;
}

void set_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// Weights: even rows quantize random floats with the reference quantizer; odd rows are random
// bytes (every level and bit pattern) with sane f16 scales.
std::vector<uint8_t> random_weights(DType t, int N, int K, uint32_t seed) {
  const size_t rb = row_bytes(t, K).value();
  std::vector<uint8_t> w(rb * N);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  for (int n = 0; n < N; ++n) {
    uint8_t* row = w.data() + rb * n;
    if (n % 2 == 0) {
      std::vector<float> f = test::random_floats(K, seed * 7919 + n, 0.1f);
      EXPECT_TRUE(quant::quantize_row(t, f.data(), row, K).ok());
      continue;
    }
    for (size_t i = 0; i < rb; ++i) row[i] = uint8_t(rng());
    for (int b = 0; b < K / block_elems(t); ++b) {
      uint8_t* blk = row + block_bytes(t) * b;
      const float sign = rng() % 2 ? 1.0f : -1.0f;
      switch (t) {
        case DType::Q4_1:
          set_f16(blk, scale(rng));
          set_f16(blk + 2, sign * scale(rng) * 8);
          break;
        case DType::Q4_K:
          set_f16(blk, scale(rng) / 16);
          set_f16(blk + 2, scale(rng) / 16);
          break;
        case DType::Q6_K:
          set_f16(blk + 208, sign * scale(rng) / 64);
          break;
        default:
          set_f16(blk, sign * scale(rng));
          break;
      }
    }
  }
  return w;
}

// The activation row as ggml blocks, dequantized; for Q8_1 also each block's s.
struct RefAct {
  std::vector<float> a;  // d * q
  std::vector<float> s;  // Q8_1 only
};

RefAct ref_act(DType wt, const uint8_t* xq, int K) {
  const DType at = act_type(wt);
  std::vector<uint8_t> blocks(row_bytes(at, K).value());
  EXPECT_TRUE(act_to_blocks(wt, xq, blocks.data(), K).ok());
  RefAct r;
  r.a.resize(K);
  if (at == DType::Q8_K) {
    for (int b = 0; b < K / 256; ++b) {
      quant::BlockQ8_K blk;
      std::memcpy(&blk, blocks.data() + sizeof(blk) * b, sizeof(blk));
      quant::dequantize_block(blk, r.a.data() + 256 * b);
    }
  } else if (at == DType::Q8_1) {
    for (int b = 0; b < K / 32; ++b) {
      quant::BlockQ8_1 blk;
      std::memcpy(&blk, blocks.data() + sizeof(blk) * b, sizeof(blk));
      quant::dequantize_block(blk, r.a.data() + 32 * b);
      r.s.push_back(f16_to_f32(blk.s));
    }
  } else {
    for (int b = 0; b < K / 32; ++b) {
      quant::BlockQ8_0 blk;
      std::memcpy(&blk, blocks.data() + sizeof(blk) * b, sizeof(blk));
      quant::dequantize_block(blk, r.a.data() + 32 * b);
    }
  }
  return r;
}

// One weight type at one K: weights, activations (quantized once by the scalar quantizer), and
// the reference products with their L1 magnitudes, for up to kMaxM x kMaxN.
struct Fixture {
  DType t;
  int K;
  size_t w_rb, x_rb;
  std::vector<uint8_t> w, xq;
  std::vector<double> ref, l1;  // [m * kMaxN + n]

  Fixture(DType type, int k) : t(type), K(k) {
    w_rb = row_bytes(t, K).value();
    w = random_weights(t, kMaxN, K, uint32_t(K * 31 + int(t)));
    x_rb = act_bytes(t, K) + 64;  // a row stride larger than one row
    xq.assign(x_rb * kMaxM, 0xAB);
    const std::vector<float> x = random_acts(kMaxM, K, uint32_t(K * 17 + int(t)));
    const Kernels* ks = kernels(t, Isa::kScalar).value();
    for (int m = 0; m < kMaxM; ++m) ks->quantize_act(x.data() + size_t(m) * K, &xq[x_rb * m], K);
    ref.assign(kMaxM * kMaxN, 0.0);
    l1.assign(kMaxM * kMaxN, 0.0);
    std::vector<float> wf(K);
    for (int m = 0; m < kMaxM; ++m) {
      const RefAct a = ref_act(t, &xq[x_rb * m], K);
      for (int n = 0; n < kMaxN; ++n) {
        EXPECT_TRUE(quant::dequantize_row(t, &w[w_rb * n], wf.data(), K).ok());
        double sum = 0, mag = 0;
        for (int k = 0; k < K; ++k) {
          sum += double(wf[k]) * a.a[k];
          mag += std::fabs(double(wf[k]) * a.a[k]);
        }
        if (t == DType::Q4_1) {  // ggml's min term: m * s with s = f16(d * sum q)
          for (int b = 0; b < K / 32; ++b) {
            quant::BlockQ4_1 blk;
            std::memcpy(&blk, &w[w_rb * n + sizeof(blk) * b], sizeof(blk));
            const double mw = f16_to_f32(blk.m);
            double asum = 0;
            for (int j = 0; j < 32; ++j) asum += a.a[32 * b + j];
            sum += mw * (a.s[b] - asum);
            mag += std::fabs(mw * a.s[b]);
          }
        }
        ref[m * kMaxN + n] = sum;
        l1[m * kMaxN + n] = mag;
      }
    }
  }
};

bool k_ok(DType t, int K) {
  return K % block_elems(t) == 0;
}

class GemmTest : public ::testing::TestWithParam<std::tuple<DType, Isa>> {};

TEST_P(GemmTest, MatchesReference) {
  const auto [t, isa] = GetParam();
  if (!isa_available(isa)) GTEST_SKIP() << isa_name(isa) << " unavailable here";
  Result<const Kernels*> ks = kernels(t, isa);
  ASSERT_TRUE(ks.ok()) << ks.message();
  const Kernels& k = **ks;
  EXPECT_EQ(k.weight_type, t);
  EXPECT_EQ(k.isa, isa);
  int checks = 0;
  double worst = 0;  // largest |error| / L1 seen
  for (int K : kKs) {
    if (!k_ok(t, K)) continue;
    const Fixture f(t, K);
    constexpr size_t kYStride = kMaxN + 2;
    // (n0, n1) ranges: from 0, and one that starts inside the matrix.
    std::vector<std::pair<int, int>> ranges;
    for (int N : kNs) ranges.push_back({0, N});
    ranges.push_back({5, 5 + 17});
    for (auto [n0, n1] : ranges) {
      for (int M : kMs) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + isa_name(isa) + " K=" + std::to_string(K) +
                     " n=[" + std::to_string(n0) + "," + std::to_string(n1) +
                     ") M=" + std::to_string(M));
        std::vector<float> y(kYStride * M, std::numeric_limits<float>::quiet_NaN());
        k.gemm(f.w.data(), f.w_rb, n0, n1, f.xq.data(), f.x_rb, M, y.data(), kYStride, K);
        int bad = 0;
        for (int m = 0; m < M; ++m) {
          for (int n = 0; n < int(kYStride); ++n) {
            const float got = y[kYStride * m + n];
            if (n < n0 || n >= n1) {
              if (!std::isnan(got) && bad++ < 3)
                ADD_FAILURE() << "wrote y[" << m << "][" << n << "]";
              continue;
            }
            const double want = f.ref[m * kMaxN + n];
            const double tol = 1e-5 * f.l1[m * kMaxN + n] + 1e-30;
            worst = std::max(worst, std::fabs(got - want) / (f.l1[m * kMaxN + n] + 1e-30));
            if (!(std::fabs(got - want) <= tol) && bad++ < 3) {
              ADD_FAILURE() << "y[" << m << "][" << n << "] = " << got << ", want " << want
                            << " (tolerance " << tol << ")";
            }
          }
        }
        ++checks;
        if (bad) return;
      }
    }
  }
  RecordProperty("checks", checks);
  std::printf("  %s/%s: %d (K, n-range, M) checks, worst |error|/L1 %.2g\n",
              std::string(dtype_name(t)).c_str(), isa_name(isa), checks, worst);
}

// The packed layout: lossless round trip, then the same products as the file layout.
TEST_P(GemmTest, PackedMatchesReference) {
  const auto [t, isa] = GetParam();
  if (!isa_available(isa)) GTEST_SKIP() << isa_name(isa) << " unavailable here";
  if (!packable(t)) GTEST_SKIP() << dtype_name(t) << " has no packed layout";
  const Kernels& k = *kernels(t, isa).value();
  ASSERT_NE(k.gemm_packed, nullptr);
  int checks = 0;
  double worst = 0;
  for (int K : kKs) {
    if (!k_ok(t, K)) continue;
    const Fixture f(t, K);
    std::vector<uint8_t> packed(packed_bytes(t, kMaxN, K));
    ASSERT_EQ(packed.size(), (kMaxN + 15) / 16 * 16 * f.w_rb);
    ASSERT_TRUE(pack_weights(t, f.w.data(), f.w_rb, kMaxN, K, packed.data()).ok());
    std::vector<uint8_t> back(f.w.size());
    ASSERT_TRUE(unpack_weights(t, packed.data(), kMaxN, K, back.data(), f.w_rb).ok());
    ASSERT_EQ(back, f.w) << "pack/unpack is not lossless";
    constexpr size_t kYStride = kMaxN + 2;
    const std::pair<int, int> ranges[] = {
        {0, kMaxN}, {0, 16}, {16, 64}, {112, kMaxN}, {128, kMaxN}};
    for (auto [n0, n1] : ranges) {
      for (int M : kMs) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + isa_name(isa) + " K=" + std::to_string(K) +
                     " n=[" + std::to_string(n0) + "," + std::to_string(n1) +
                     ") M=" + std::to_string(M));
        std::vector<float> y(kYStride * M, std::numeric_limits<float>::quiet_NaN());
        k.gemm_packed(packed.data(), kMaxN, n0, n1, f.xq.data(), f.x_rb, M, y.data(), kYStride, K,
                      0);
        int bad = 0;
        for (int m = 0; m < M; ++m) {
          for (int n = 0; n < int(kYStride); ++n) {
            const float got = y[kYStride * m + n];
            if (n < n0 || n >= n1) {
              if (!std::isnan(got) && bad++ < 3)
                ADD_FAILURE() << "wrote y[" << m << "][" << n << "]";
              continue;
            }
            const double want = f.ref[m * kMaxN + n];
            const double tol = 1e-5 * f.l1[m * kMaxN + n] + 1e-30;
            worst = std::max(worst, std::fabs(got - want) / (f.l1[m * kMaxN + n] + 1e-30));
            if (!(std::fabs(got - want) <= tol) && bad++ < 3) {
              ADD_FAILURE() << "y[" << m << "][" << n << "] = " << got << ", want " << want
                            << " (tolerance " << tol << ")";
            }
          }
        }
        ++checks;
        if (bad) return;
      }
    }
  }
  std::printf("  packed %s/%s: %d (K, n-range, M) checks, worst |error|/L1 %.2g\n",
              std::string(dtype_name(t)).c_str(), isa_name(isa), checks, worst);
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<DType, Isa>>& p) {
  return std::string(dtype_name(std::get<0>(p.param))) + "_" + isa_name(std::get<1>(p.param));
}

INSTANTIATE_TEST_SUITE_P(AllVariants, GemmTest,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::Values(Isa::kScalar, Isa::kAvx2,
                                                              Isa::kAvx2Vnni, Isa::kAvx512Vnni)),
                         param_name);

// ---- activation quantizers

// ggml-cpu's x86 quantize_row_q8_0 / q8_1, written out again from its definition.
std::vector<uint8_t> ggml_x86_blocks(DType at, const float* x, int K) {
  std::vector<uint8_t> out(row_bytes(at, K).value());
  for (int b = 0; b < K / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int8_t q[32];
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = int8_t(std::nearbyint(x[32 * b + j] * id));
      sum += q[j];
    }
    if (at == DType::Q8_1) {
      quant::BlockQ8_1 blk;
      blk.d = f32_to_f16(d);
      blk.s = f32_to_f16(d * float(sum));
      std::memcpy(blk.qs, q, 32);
      std::memcpy(&out[sizeof(blk) * b], &blk, sizeof(blk));
    } else {
      quant::BlockQ8_0 blk;
      blk.d = f32_to_f16(d);
      std::memcpy(blk.qs, q, 32);
      std::memcpy(&out[sizeof(blk) * b], &blk, sizeof(blk));
    }
  }
  return out;
}

// Rows that hit the corners: exact .5 ties (a block whose largest magnitude is 127 gives a
// multiplier of exactly 1), equal magnitudes of both signs, a zero block, tiny values.
std::vector<float> tricky_row(int K, uint32_t seed) {
  std::vector<float> x = test::random_floats(K, seed, 3.0f);
  for (int k = 0; k < std::min(K, 64); ++k) x[k] = float(k % 32) - 15.5f;
  x[0] = 127.0f;
  if (K > 32) x[32] = -127.0f;
  if (K >= 256) {
    x[96] = -3.0f;
    for (int k = 97; k < 128; ++k) x[k] = (k % 2 ? 3.0f : -3.0f);
    for (int k = 128; k < 160; ++k) x[k] = 0.0f;
    for (int k = 160; k < 192; ++k) x[k] = 1e-30f * float(k - 170);
  }
  if (K >= 512) {
    for (int k = 256; k < 512; ++k) x[k] = 0.0f;  // a zero Q8_K block
    x[300] = 0.0f;
  }
  return x;
}

class ActQuantTest : public ::testing::TestWithParam<std::tuple<DType, Isa>> {};

TEST_P(ActQuantTest, BitExact) {
  const auto [t, isa] = GetParam();
  if (!isa_available(isa)) GTEST_SKIP() << isa_name(isa) << " unavailable here";
  const Kernels& k = *kernels(t, isa).value();
  const DType at = k.act_type;
  int rows = 0;
  for (int K : {32, 64, 96, 256, 512, 576, 640, 1536, 2048}) {
    if (!k_ok(t, K) || K % block_elems(at) != 0) continue;
    for (uint32_t seed = 1; seed <= 6; ++seed) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " " + isa_name(isa) + " K=" + std::to_string(K) +
                   " seed=" + std::to_string(seed));
      std::vector<float> x =
          seed == 1 ? tricky_row(K, seed) : test::random_floats(K, seed, seed < 4 ? 1.0f : 1e3f);
      ASSERT_EQ(act_bytes(t, K) % 64, 0u);
      std::vector<uint8_t> xq(act_bytes(t, K)), got(row_bytes(at, K).value());
      std::vector<uint8_t> want(got.size());
      // Reference flavor against the reference block quantizer.
      k.quantize_act(x.data(), xq.data(), K);
      ASSERT_TRUE(act_to_blocks(t, xq.data(), got.data(), K).ok());
      ASSERT_TRUE(quant::quantize_row(at, x.data(), want.data(), K).ok());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size())) << "reference flavor";
      // ggml-cpu's x86 flavor.
      k.quantize_act_ggml_x86(x.data(), xq.data(), K);
      ASSERT_TRUE(act_to_blocks(t, xq.data(), got.data(), K).ok());
      if (at != DType::Q8_K) want = ggml_x86_blocks(at, x.data(), K);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size())) << "ggml x86 flavor";
      ++rows;
    }
  }
  std::printf("  %s/%s: %d rows\n", std::string(dtype_name(t)).c_str(), isa_name(isa), rows);
}

INSTANTIATE_TEST_SUITE_P(AllVariants, ActQuantTest,
                         ::testing::Combine(::testing::ValuesIn(kTypes),
                                            ::testing::Values(Isa::kScalar, Isa::kAvx2,
                                                              Isa::kAvx2Vnni, Isa::kAvx512Vnni)),
                         param_name);

// How often ggml-cpu's x86 rounding differs from the reference (documented in
// docs/microkernels.md): not a requirement, a measurement.
TEST(Microkernels, FlavorsDiffer) {
  const Kernels& k = *kernels(DType::Q8_0, Isa::kScalar).value();
  const int K = 4096, rows = 64;
  std::vector<uint8_t> a(act_bytes(DType::Q8_0, K)), b(a.size());
  std::vector<uint8_t> ba(row_bytes(DType::Q8_0, K).value()), bb(ba.size());
  int blocks = 0, differ = 0;
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> x = test::random_floats(K, 100 + r, 1.0f);
    k.quantize_act(x.data(), a.data(), K);
    k.quantize_act_ggml_x86(x.data(), b.data(), K);
    ASSERT_TRUE(act_to_blocks(DType::Q8_0, a.data(), ba.data(), K).ok());
    ASSERT_TRUE(act_to_blocks(DType::Q8_0, b.data(), bb.data(), K).ok());
    for (int i = 0; i < K / 32; ++i, ++blocks)
      differ += std::memcmp(&ba[34 * i], &bb[34 * i], 34) != 0;
  }
  std::printf("  reference vs ggml x86 Q8_0: %d of %d blocks differ\n", differ, blocks);
}

// ---- API

TEST(Microkernels, InitAndErrors) {
  ASSERT_TRUE(init().ok()) << init().message();
  EXPECT_TRUE(isa_available(Isa::kScalar));
  EXPECT_TRUE(isa_available(best_isa()));
  for (DType t : kTypes) {
    EXPECT_TRUE(supported(t));
    const Kernels* k = kernels(t);
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->act_bytes(576 * 2), act_bytes(t, 576 * 2));
  }
  EXPECT_FALSE(supported(DType::Q5_K));
  EXPECT_EQ(kernels(DType::Q5_K), nullptr);
  Result<const Kernels*> bad = kernels(DType::F32, Isa::kScalar);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("f32"), std::string::npos) << bad.message();
  for (int i = 0; i < kNumIsas; ++i) {
    Result<const Kernels*> r = kernels(DType::Q4_0, Isa(i));
    EXPECT_EQ(r.ok(), isa_available(Isa(i))) << isa_name(Isa(i));
    if (!r.ok()) {
      EXPECT_NE(r.message().find("unavailable"), std::string::npos) << r.message();
    }
  }
  float y = 0;
  std::vector<uint8_t> xq(act_bytes(DType::Q4_K, 256));
  EXPECT_FALSE(quantize_act(DType::Q4_K, &y, xq.data(), 100).ok());
  EXPECT_FALSE(gemm(DType::Q6_K, nullptr, 0, 0, 1, xq.data(), 0, 1, &y, 1, 300).ok());
  EXPECT_FALSE(packable(DType::Q5_K));
  EXPECT_EQ(packed_bytes(DType::Q5_K, 16, 256), 0u);
  EXPECT_EQ(packed_bytes(DType::Q4_K, 16, 96), 0u);  // K-quants pack whole super-blocks
  EXPECT_FALSE(pack_weights(DType::Q6_K, nullptr, 0, 16, 320, nullptr).ok());
  EXPECT_FALSE(gemm_packed(DType::Q4_0, nullptr, 40, 8, 24, xq.data(), 0, 1, &y, 1, 256).ok());
  EXPECT_FALSE(gemm_packed(DType::Q4_0, nullptr, 40, 0, 20, xq.data(), 0, 1, &y, 1, 256).ok());
}

// The convenience wrappers run the best variant end to end.
TEST(Microkernels, Wrappers) {
  ASSERT_TRUE(init().ok());
  const int K = 512, N = 33, M = 5;
  for (DType t : kTypes) {
    SCOPED_TRACE(dtype_name(t));
    const std::vector<uint8_t> w = random_weights(t, N, K, 3);
    const std::vector<float> x = random_acts(M, K, 4);
    const size_t ab = act_bytes(t, K);
    std::vector<uint8_t> xq(ab * M);
    for (int m = 0; m < M; ++m)
      ASSERT_TRUE(quantize_act(t, x.data() + size_t(m) * K, xq.data() + ab * m, K).ok());
    std::vector<float> y(size_t(M) * N), ys(size_t(M) * N);
    const size_t rb = row_bytes(t, K).value();
    ASSERT_TRUE(gemm(t, w.data(), rb, 0, N, xq.data(), ab, M, y.data(), N, K).ok());
    kernels(t, Isa::kScalar).value()->gemm(w.data(), rb, 0, N, xq.data(), ab, M, ys.data(), N, K);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ys[i], 1e-4f * (1 + std::fabs(ys[i])));
  }
}

}  // namespace
}  // namespace kiln::mk
