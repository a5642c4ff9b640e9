// The reference quant formats against goldens from ggml and the gguf package
// (scripts/goldens/make_quant_goldens.py; tests/data/quant/README.md says which reference made
// which file). Every comparison is bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "frontends/gguf/quant.h"
#include "frontends/gguf/quant_blocks.h"
#include "tests/support/test_support.h"

namespace kiln::quant {
namespace {

const char* const kDequantTypes[] = {"f32",  "f16",  "bf16", "q4_0",   "q4_1",  "q5_0",
                                     "q5_1", "q8_0", "q8_1", "q2_k",   "q3_k",  "q4_k",
                                     "q5_k", "q6_k", "q8_k", "iq4_nl", "iq4_xs"};
const char* const kQuantTypes[] = {"f16",  "bf16", "q4_0",   "q4_1",  "q5_0", "q5_1",
                                   "q8_0", "q8_1", "q2_k",   "q3_k",  "q4_k", "q5_k",
                                   "q6_k", "q8_k", "iq4_nl", "iq4_xs"};

const char* const kBlockQuantTypes[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1",   "q2_k",
                                        "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq4_nl", "iq4_xs"};

std::string golden_path(const std::string& file) {
  return test::data_dir() + "/quant/" + file;
}

std::vector<uint8_t> read_golden(const std::string& file) {
  std::vector<uint8_t> b = test::read_bytes(golden_path(file));
  EXPECT_FALSE(b.empty()) << "missing golden " << golden_path(file)
                          << " (scripts/goldens/make_quant_goldens.py)";
  return b;
}

std::vector<float> read_golden_floats(const std::string& file) {
  std::vector<uint8_t> b = read_golden(file);
  std::vector<float> f(b.size() / 4);
  std::memcpy(f.data(), b.data(), f.size() * 4);
  return f;
}

DType type_named(const std::string& name) {
  std::optional<DType> t = dtype_from_name(name);
  EXPECT_TRUE(t.has_value()) << name;
  return t.value_or(DType::F32);
}

// Bitwise equality of float arrays (so -0 != +0 and a NaN would have to match exactly).
::testing::AssertionResult same_bits(const std::vector<float>& got,
                                     const std::vector<float>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], 4) != 0 && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " values differ; first at " << first << ": got "
         << got[first] << ", want " << want[first];
}

::testing::AssertionResult same_bytes(const std::vector<uint8_t>& got,
                                      const std::vector<uint8_t>& want, size_t block_bytes) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  }
  size_t bad_blocks = 0, first = 0;
  for (size_t b = 0; b < got.size() / block_bytes; ++b) {
    if (std::memcmp(&got[b * block_bytes], &want[b * block_bytes], block_bytes) != 0 &&
        bad_blocks++ == 0) {
      first = b;
    }
  }
  if (bad_blocks == 0) return ::testing::AssertionSuccess();
  size_t byte = first * block_bytes;
  while (got[byte] == want[byte]) ++byte;
  return ::testing::AssertionFailure()
         << bad_blocks << " of " << got.size() / block_bytes << " blocks differ; first is block "
         << first << ", at byte " << byte - first * block_bytes << " of it: got " << int(got[byte])
         << ", want " << int(want[byte]);
}

std::vector<float> dequantize(DType t, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  Status st = dequantize_row(t, q.data(), y.data(), n);
  EXPECT_TRUE(st.ok()) << st.message();
  return y;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(t, x.size()).value_or(0));
  Status st = quantize_row(t, x.data(), q.data(), x.size());
  EXPECT_TRUE(st.ok()) << st.message();
  return q;
}

// The golden script's stress_input(), regenerated here bit for bit: xorshift32 and float
// arithmetic that is exact (2^-23 grids, powers of two), so no input file is needed.
struct XorShift32 {
  uint32_t state;
  uint32_t next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  }
  float uniform() { return float(next() >> 8) * 0x1p-23f - 1.0f; }
};

std::vector<float> stress_input() {
  constexpr int kSuperBlocks = 16;
  XorShift32 rng{0x9E3779B9u};
  std::vector<float> out;
  for (int sub = 0; sub < kSuperBlocks * 8; ++sub) {
    const uint32_t mode = rng.next() % 6;
    float scale = std::ldexp(1.0f, int(rng.next() % 17) - 10);
    const uint32_t outlier = rng.next() % 32;
    float v[32];
    for (float& a : v) {
      const float u0 = rng.uniform();
      const float u1 = rng.uniform();
      a = (u0 + u1) * 0.5f;
    }
    for (int i = 0; i < 32; ++i) {
      if (mode == 1) v[i] = std::fabs(v[i]);                // positive only
      if (mode == 2) v[i] = -std::fabs(v[i]);               // negative only
      if (mode == 3) v[i] = v[0];                           // all equal
      if (mode == 4 && uint32_t(i) == outlier) v[i] *= 64;  // one outlier
    }
    if (mode == 5) scale = 0x1p-24f;  // tiny: the f16 scales underflow
    for (float a : v) out.push_back(a != 0.0f ? a * scale : scale * 0x1p-12f);
  }
  return out;
}

std::string param_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

// ---- Dequantization of random raw blocks

class DequantizeRaw : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantizeRaw, BitExact) {
  const std::string name = GetParam();
  const DType t = type_named(name);
  ASSERT_TRUE(can_dequantize(t));
  std::vector<uint8_t> q = read_golden(name + ".raw.q");
  std::vector<float> want = read_golden_floats(name + ".raw.deq.f32");
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(row_bytes(t, want.size()), q.size());
  EXPECT_TRUE(same_bits(dequantize(t, q, want.size()), want));
}

TEST_P(DequantizeRaw, SourceNeedNotBeAligned) {
  const std::string name = GetParam();
  const DType t = type_named(name);
  std::vector<uint8_t> q = read_golden(name + ".raw.q");
  std::vector<float> want = read_golden_floats(name + ".raw.deq.f32");
  std::vector<uint8_t> shifted(q.size() + 1);
  std::memcpy(shifted.data() + 1, q.data(), q.size());
  std::vector<float> got(want.size());
  ASSERT_TRUE(dequantize_row(t, shifted.data() + 1, got.data(), got.size()).ok());
  EXPECT_TRUE(same_bits(got, want));
}

INSTANTIATE_TEST_SUITE_P(Quant, DequantizeRaw, ::testing::ValuesIn(kDequantTypes), param_name);

// ---- Quantization of the golden input

class Quantize : public ::testing::TestWithParam<const char*> {};

TEST_P(Quantize, BitExactWithReference) {
  const std::string name = GetParam();
  const DType t = type_named(name);
  ASSERT_TRUE(can_quantize(t));
  std::vector<float> x = read_golden_floats("input.f32");
  std::vector<uint8_t> want = read_golden(name + ".q");
  ASSERT_EQ(row_bytes(t, x.size()), want.size());
  EXPECT_TRUE(same_bytes(quantize(t, x), want, dtype_info(t).block_bytes));
}

TEST_P(Quantize, DequantizedReferenceMatches) {
  const std::string name = GetParam();
  const DType t = type_named(name);
  std::vector<uint8_t> q = read_golden(name + ".q");
  std::vector<float> want = read_golden_floats(name + ".deq.f32");
  EXPECT_TRUE(same_bits(dequantize(t, q, want.size()), want));
}

// Quantize-dequantize error on uniform random data, relative to the data's RMS. The bounds are
// 1.5 to 2.5 times what the formats achieve here: they catch a broken format, not a slightly worse
// search.
TEST_P(Quantize, RoundTripErrorIsSmall) {
  static const std::map<std::string, double> kMaxRelRms = {
      {"f16", 5e-4},  {"bf16", 4e-3},  {"q8_0", 0.01},  {"q8_1", 0.01},
      {"q8_k", 0.01}, {"q6_k", 0.025}, {"q5_0", 0.05},  {"q5_1", 0.05},
      {"q5_k", 0.05}, {"q4_0", 0.1},   {"q4_1", 0.1},   {"q4_k", 0.08},
      {"q3_k", 0.2},  {"q2_k", 0.35},  {"iq4_nl", 0.1}, {"iq4_xs", 0.1}};
  const std::string name = GetParam();
  const DType t = type_named(name);
  std::vector<float> x = test::random_floats(8 * kQK_K, 42, 3.0f);
  std::vector<float> y = dequantize(t, quantize(t, x), x.size());
  double err2 = 0, sig2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    sig2 += double(x[i]) * x[i];
  }
  const double rel = std::sqrt(err2 / sig2);
  ASSERT_TRUE(kMaxRelRms.count(name)) << name;
  EXPECT_LT(rel, kMaxRelRms.at(name));
  EXPECT_GT(rel, 0.0) << "lossless? the bound table is probably wrong";
}

TEST_P(Quantize, ZerosStayZero) {
  const DType t = type_named(GetParam());
  std::vector<float> x(2 * kQK_K, 0.0f);
  for (float y : dequantize(t, quantize(t, x), x.size())) ASSERT_EQ(y, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Quant, Quantize, ::testing::ValuesIn(kQuantTypes), param_name);

// Many more blocks, with every kind of sub-block mixed into the K-quant super-blocks, for the
// branches of the scale searches that the hand-picked input may miss.
class QuantizeStress : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizeStress, BitExactWithReference) {
  const std::string name = GetParam();
  const DType t = type_named(name);
  std::vector<float> x = stress_input();
  std::vector<uint8_t> want = read_golden(name + ".stress.q");
  ASSERT_EQ(row_bytes(t, x.size()), want.size());
  EXPECT_TRUE(same_bytes(quantize(t, x), want, dtype_info(t).block_bytes));
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantizeStress, ::testing::ValuesIn(kBlockQuantTypes), param_name);

// ---- Coverage, block sizes, per-block API, errors

// Every type the dispatch claims has a golden (so a new format cannot skip the oracle check).
TEST(Quant, EverySupportedTypeHasGoldens) {
  struct Row {
    DType t;
    const char* name;
  };
  static const Row kAll[] = {
#define X(E, name, id, be, bb, q) {DType::E, name},
#include "ir/dtypes.def"
#undef X
  };
  for (const Row& r : kAll) {
    const std::string name = r.name;
    if (can_dequantize(r.t)) {
      EXPECT_FALSE(test::read_bytes(golden_path(name + ".raw.q")).empty()) << name;
    }
    if (can_quantize(r.t) && r.t != DType::F32) {
      EXPECT_FALSE(test::read_bytes(golden_path(name + ".q")).empty()) << name;
    }
  }
}

// ir/dtypes.def against ggml's block sizes (and the gguf package's, which still lists Q8_1 with
// the old 40-byte layout: that is the one difference allowed).
TEST(Quant, DtypesDefMatchesGgmlBlockSizes) {
  std::ifstream in(golden_path("sizes.txt"));
  ASSERT_TRUE(in) << golden_path("sizes.txt");
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string name;
    uint32_t id, elems, bytes, py_elems, py_bytes;
    ASSERT_TRUE(ss >> name >> id >> elems >> bytes >> py_elems >> py_bytes) << line;
    const DTypeInfo& info = dtype_info(type_named(name));
    EXPECT_EQ(info.ggml_id, id) << name;
    EXPECT_EQ(info.block_elems, elems) << name;
    EXPECT_EQ(info.block_bytes, bytes) << name;
    if (name == "q8_1") {
      EXPECT_EQ(py_bytes, 40u);
    } else {
      EXPECT_EQ(py_elems, elems) << name;
      EXPECT_EQ(py_bytes, bytes) << name;
    }
    ++rows;
  }
  int ggml_types = 0;
#define X(E, name, id, be, bb, q) ggml_types += (id != 1000);
#include "ir/dtypes.def"
#undef X
  EXPECT_EQ(rows, ggml_types);
}

TEST(Quant, PerBlockApiMatchesRowApi) {
  std::vector<float> x = test::random_floats(kQK_K, 3);
  BlockQ8_K b8k;
  quantize_block(x.data(), &b8k);
  std::vector<uint8_t> row = quantize(DType::Q8_K, x);
  ASSERT_EQ(row.size(), sizeof(b8k));
  EXPECT_EQ(std::memcmp(row.data(), &b8k, sizeof(b8k)), 0);
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += b8k.qs[16 * g + i];
    EXPECT_EQ(b8k.bsums[g], sum);
  }
  BlockQ4_K b4k;
  quantize_block(x.data(), &b4k);
  std::vector<float> y(kQK_K);
  dequantize_block(b4k, y.data());
  std::vector<uint8_t> bytes(sizeof(b4k));
  std::memcpy(bytes.data(), &b4k, sizeof(b4k));
  EXPECT_TRUE(same_bits(y, dequantize(DType::Q4_K, bytes, kQK_K)));
}

TEST(Quant, NearestIntRoundsHalfToEven) {
  EXPECT_EQ(nearest_int(2.5f), 2);
  EXPECT_EQ(nearest_int(3.5f), 4);
  EXPECT_EQ(nearest_int(-2.5f), -2);
  EXPECT_EQ(nearest_int(-3.5f), -4);
  EXPECT_EQ(nearest_int(-0.4f), 0);
  EXPECT_EQ(nearest_int(62.51f), 63);
}

TEST(Quant, EmptyRowIsFine) {
  EXPECT_TRUE(dequantize_row(DType::Q4_K, nullptr, nullptr, 0).ok());
  EXPECT_TRUE(quantize_row(DType::Q4_0, nullptr, nullptr, 0).ok());
}

TEST(Quant, PartialBlockIsAnError) {
  std::vector<uint8_t> q(4 * sizeof(BlockQ4_K));
  std::vector<float> y(4 * kQK_K);
  Status st = dequantize_row(DType::Q4_K, q.data(), y.data(), kQK_K + 32);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("q4_k"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("288"), std::string::npos) << st.message();
  st = quantize_row(DType::Q8_0, y.data(), q.data(), 33);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("q8_0"), std::string::npos) << st.message();
}

TEST(Quant, UnsupportedTypeIsAnError) {
  std::vector<uint8_t> q(1024);
  std::vector<float> y(256);
  Status st = dequantize_row(DType::IQ2_XXS, q.data(), y.data(), 256);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "quant: dequantize not supported for iq2_xxs");
  EXPECT_FALSE(can_dequantize(DType::I32));
  EXPECT_FALSE(dequantize_row(DType::I32, q.data(), y.data(), 4).ok());
  EXPECT_FALSE(can_quantize(DType::IQ3_S));
  st = quantize_row(DType::IQ3_S, y.data(), q.data(), 256);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "quant: quantize not supported for iq3_s");
  EXPECT_FALSE(quantize_row(DType::BOOL, y.data(), q.data(), 4).ok());
}

}  // namespace
}  // namespace kiln::quant
