// The reference interpreter, op by op, against expectations computed here by hand from
// docs/ir.md (plain loops over random, never-zero inputs).
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "ir/half.h"
#include "tests/interpreter_test_util.h"

namespace kiln {
namespace {

using ir::Shape;
using ir::Value;
using test::expect_near;
using test::Harness;

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> naive_matmul(const std::vector<float>& x, const std::vector<float>& w,
                                int64_t rows, int64_t N, int64_t K) {
  std::vector<float> y(size_t(rows * N));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(i * K + k)]) * w[size_t(n * K + k)];
      y[size_t(i * N + n)] = float(s);
    }
  return y;
}

TEST(InterpreterOps, MulMatEveryWeightType) {
  const DType types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                         DType::Q5_1, DType::Q4_K, DType::Q6_K, DType::Q2_K};
  for (DType t : types) {
    if (!test::quant_ready(t)) {
      ADD_FAILURE() << "quant: " << dtype_name(t) << " not supported yet";
      continue;
    }
    SCOPED_TRACE(std::string(dtype_name(t)));
    const int64_t K = 256, N = 5;
    Harness h;
    Value* x = h.input_f32("x", {2, 3, K}, 1);
    std::vector<float> w;
    h.b.output(h.b.mul_mat(x, h.weight("w", t, {N, K}, 2, &w)), "y");
    expect_near(h.run(), naive_matmul(h.f32_inputs["x"], w, 6, N, K), 1e-6, 1e-5);
  }
}

TEST(InterpreterOps, MulMatBatchBroadcastIsGqa) {
  // x [B=2, Hq=4, M=3, K=8] against w [2, Hkv=2, N=5, K]: query head h reads kv head h / 2.
  Harness h;
  Value* x = h.input_f32("x", {2, 4, 3, 8}, 3);
  Value* w = h.input_f32("w", {2, 2, 5, 8}, 4);
  h.b.output(h.b.mul_mat(x, w), "y");
  std::vector<float> got = h.run();
  const auto& xv = h.f32_inputs["x"];
  const auto& wv = h.f32_inputs["w"];
  std::vector<float> want(2 * 4 * 3 * 5);
  for (int b = 0; b < 2; ++b)
    for (int hq = 0; hq < 4; ++hq)
      for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 5; ++n) {
          double s = 0;
          for (int k = 0; k < 8; ++k)
            s += double(xv[size_t(((b * 4 + hq) * 3 + m) * 8 + k)]) *
                 wv[size_t(((b * 2 + hq / 2) * 5 + n) * 8 + k)];
          want[size_t(((b * 4 + hq) * 3 + m) * 5 + n)] = float(s);
        }
  expect_near(got, want);
}

TEST(InterpreterOps, GetRowsDequantizes) {
  Harness h;
  std::vector<float> table;
  Value* t = h.weight("t", DType::Q8_0, {6, 64}, 5, &table);
  Value* idx = h.input_i32("idx", {2, 2}, {5, 0, 3, 5});
  h.b.output(h.b.get_rows(t, idx), "y");
  std::vector<float> want;
  for (int r : {5, 0, 3, 5})
    want.insert(want.end(), table.begin() + r * 64, table.begin() + (r + 1) * 64);
  std::vector<float> got = h.run();
  EXPECT_EQ(h.interp->output_tensor("y")->type->str(), "f32[2, 2, 64]");
  expect_near(got, want, 0, 0);
}

TEST(InterpreterOps, GetRowsIndexOutOfRangeNamesTheNode) {
  Harness h;
  Value* t = h.weight("t", DType::F32, {6, 4}, 5);
  Value* idx = h.input_i32("idx", {2}, {1, 6});
  h.b.output(h.b.get_rows(t, idx), "y");
  ASSERT_TRUE(h.build().ok());
  Status st = h.interp->run();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("get_rows"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("index 6 at position 1 is outside the table's 6 rows"),
            std::string::npos)
      << st.message();
}

TEST(InterpreterOps, BinaryOpsBroadcast) {
  struct Case {
    ir::Op op;
    float (*f)(float, float);
  };
  const Case cases[] = {{ir::Op::Add, [](float a, float b) { return a + b; }},
                        {ir::Op::Sub, [](float a, float b) { return a - b; }},
                        {ir::Op::Mul, [](float a, float b) { return a * b; }},
                        {ir::Op::Div, [](float a, float b) { return a / b; }}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(ir::op_name(c.op)));
    Harness h;
    Value* a = h.input_f32("a", {2, 3, 4}, 6);
    Value* b = h.input_f32("b", {3, 1}, 7);
    h.b.output(h.b.op(c.op, {a, b}), "y");
    std::vector<float> got = h.run();
    const auto& av = h.f32_inputs["a"];
    const auto& bv = h.f32_inputs["b"];
    std::vector<float> want(24);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 4; ++k)
          want[size_t((i * 3 + j) * 4 + k)] = c.f(av[size_t((i * 3 + j) * 4 + k)], bv[size_t(j)]);
    expect_near(got, want, 0, 0);
  }
}

TEST(InterpreterOps, BinaryBroadcastsBothWaysWithF16Operand) {
  // a [3, 1] + b f16[1, 4] -> [3, 4]; b's values are read through f16.
  Harness h;
  Value* a = h.input_f32("a", {3, 1}, 8);
  std::vector<float> bv;
  Value* b = h.weight("b", DType::F16, {1, 4}, 9, &bv);
  h.b.output(h.b.add(a, b), "y");
  std::vector<float> got = h.run();
  std::vector<float> want(12);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      want[size_t(i * 4 + j)] = h.f32_inputs["a"][size_t(i)] + bv[size_t(j)];
  expect_near(got, want, 0, 0);
}

TEST(InterpreterOps, UnaryOps) {
  struct Case {
    const char* name;
    std::function<Value*(ir::Builder&, Value*)> make;
    std::function<double(double)> f;
  };
  const double c = std::sqrt(2.0 / std::numbers::pi);
  const Case cases[] = {
      {"scale", [](ir::Builder& b, Value* x) { return b.scale(x, 0.125); },
       [](double x) { return x * 0.125; }},
      {"silu", [](ir::Builder& b, Value* x) { return b.silu(x); },
       [](double x) { return x / (1 + std::exp(-x)); }},
      {"gelu_tanh", [](ir::Builder& b, Value* x) { return b.gelu(x, "tanh"); },
       [c](double x) { return 0.5 * x * (1 + std::tanh(c * (x + 0.044715 * x * x * x))); }},
      {"gelu_erf", [](ir::Builder& b, Value* x) { return b.gelu(x, "erf"); },
       [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {"tanh", [](ir::Builder& b, Value* x) { return b.tanh(x); },
       [](double x) { return std::tanh(x); }},
      {"exp", [](ir::Builder& b, Value* x) { return b.exp(x); },
       [](double x) { return std::exp(x); }},
  };
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    Harness h;
    Value* x = h.input_f32("x", {3, 7}, 10, 4.0f);
    h.b.output(cs.make(h.b, x), "y");
    std::vector<float> got = h.run();
    std::vector<float> want;
    for (float v : h.f32_inputs["x"]) want.push_back(float(cs.f(v)));
    expect_near(got, want, 1e-7, 1e-7);
  }
}

TEST(InterpreterOps, CastToAndFromF16AndQuant) {
  Harness h;
  Value* x = h.input_f32("x", {2, 64}, 11);
  Value* h16 = h.b.cast(x, DType::F16);
  Value* q8 = h.b.cast(x, DType::Q8_0);
  h.b.output(h16, "h");
  h.b.output(h.b.cast(h16, DType::F32), "h32");
  h.b.output(q8, "q");
  h.b.output(h.b.cast(q8, DType::F32), "q32");
  h.b.output(h.b.cast(q8, DType::BF16), "qbf");
  const auto& xv = h.f32_inputs["x"];
  expect_near(h.run("h32"), test::round_trip(DType::F16, xv), 0, 0);
  // The f16 output's bits are f32_to_f16 of each value.
  auto ht = h.interp->output_tensor("h");
  ASSERT_TRUE(ht.ok());
  for (size_t i = 0; i < xv.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, ht->bytes.data() + 2 * i, 2);
    ASSERT_EQ(bits, f32_to_f16(xv[i])) << i;
  }
  // The q8_0 output is the reference quantizer's bytes.
  std::vector<uint8_t> want(2 * 68);
  ASSERT_TRUE(quant::quantize_row(DType::Q8_0, xv.data(), want.data(), xv.size()).ok());
  auto qt = h.interp->output_tensor("q");
  ASSERT_TRUE(qt.ok());
  EXPECT_EQ(std::vector<uint8_t>(qt->bytes.begin(), qt->bytes.end()), want);
  expect_near(h.run("q32"), test::round_trip(DType::Q8_0, xv), 0, 0);
  std::vector<float> qbf = h.run("qbf");
  std::vector<float> want_bf;
  for (float v : test::round_trip(DType::Q8_0, xv)) want_bf.push_back(bf16_to_f32(f32_to_bf16(v)));
  expect_near(qbf, want_bf, 0, 0);
}

// Hand-computed rope: D = 4, n_dims = 4, base 100, position 2, freq_scale 0.5. The pair
// frequencies are 100^0 = 1 and 100^(-1/2) = 0.1, so theta = (1, 0.1) * 2 * 0.5 = (1, 0.1).
TEST(InterpreterOps, RopeNormalAndNeoxByHand) {
  for (const char* mode : {"normal", "neox"}) {
    SCOPED_TRACE(mode);
    Harness h;
    Value* x = h.input_f32("x", {1, 1, 1, 4}, 12);
    Value* pos = h.input_i32("pos", {1, 1}, {2});
    h.b.output(h.b.rope(x, pos, mode, 4, 100.0, 0.5), "y");
    std::vector<float> got = h.run();
    const auto& v = h.f32_inputs["x"];
    auto rot = [](double a, double b, double th) {
      return std::pair<float, float>(float(a * std::cos(th) - b * std::sin(th)),
                                     float(a * std::sin(th) + b * std::cos(th)));
    };
    std::vector<float> want(4);
    if (std::string(mode) == "normal") {  // pairs (0, 1) and (2, 3)
      std::tie(want[0], want[1]) = rot(v[0], v[1], 1.0);
      std::tie(want[2], want[3]) = rot(v[2], v[3], 0.1);
    } else {  // pairs (0, 2) and (1, 3)
      std::tie(want[0], want[2]) = rot(v[0], v[2], 1.0);
      std::tie(want[1], want[3]) = rot(v[1], v[3], 0.1);
    }
    expect_near(got, want, 1e-7, 1e-7);
  }
}

TEST(InterpreterOps, RopePartialDimsPassThroughAndPerPosition) {
  // x [B=2, T=3, H=2, D=8], n_dims = 4 (neox): elements 4..7 of each head pass through; each
  // (b, t) uses its own position, and every head of a position rotates alike.
  Harness h;
  Value* x = h.input_f32("x", {2, 3, 2, 8}, 13);
  Value* pos = h.input_i32("pos", {2, 3}, {0, 1, 2, 7, -1, 100});
  h.b.output(h.b.rope(x, pos, "neox", 4, 10000.0), "y");
  std::vector<float> got = h.run();
  const auto& v = h.f32_inputs["x"];
  const int p[6] = {0, 1, 2, 7, -1, 100};
  std::vector<float> want(v.size());
  for (int l = 0; l < 6; ++l)
    for (int hh = 0; hh < 2; ++hh) {
      const float* xr = v.data() + (l * 2 + hh) * 8;
      float* yr = want.data() + (l * 2 + hh) * 8;
      for (int i = 4; i < 8; ++i) yr[i] = xr[i];
      for (int i = 0; i < 2; ++i) {
        double th = p[l] * std::pow(10000.0, -2.0 * i / 4);
        yr[i] = float(xr[i] * std::cos(th) - xr[i + 2] * std::sin(th));
        yr[i + 2] = float(xr[i] * std::sin(th) + xr[i + 2] * std::cos(th));
      }
    }
  expect_near(got, want, 1e-7, 1e-7);
  // Position 0 is the identity.
  for (int i = 0; i < 16; ++i) EXPECT_EQ(got[size_t(i)], v[size_t(i)]);
}

TEST(InterpreterOps, RmsNormAndNorm) {
  Harness h;
  Value* x = h.input_f32("x", {3, 10}, 14, 3.0f);
  h.b.output(h.b.rms_norm(x, 1e-5), "rms");
  h.b.output(h.b.norm(x, 1e-5), "norm");
  std::vector<float> rms = h.run("rms");
  std::vector<float> nrm = h.run("norm");
  const auto& v = h.f32_inputs["x"];
  std::vector<float> want_rms, want_norm;
  for (int r = 0; r < 3; ++r) {
    double ss = 0, sum = 0;
    for (int i = 0; i < 10; ++i) {
      ss += double(v[size_t(r * 10 + i)]) * v[size_t(r * 10 + i)];
      sum += v[size_t(r * 10 + i)];
    }
    double mean = sum / 10, var = 0;
    for (int i = 0; i < 10; ++i)
      var += (v[size_t(r * 10 + i)] - mean) * (v[size_t(r * 10 + i)] - mean);
    for (int i = 0; i < 10; ++i) {
      want_rms.push_back(float(v[size_t(r * 10 + i)] / std::sqrt(ss / 10 + 1e-5)));
      want_norm.push_back(float((v[size_t(r * 10 + i)] - mean) / std::sqrt(var / 10 + 1e-5)));
    }
  }
  expect_near(rms, want_rms, 1e-7, 1e-7);
  expect_near(nrm, want_norm, 1e-7, 1e-7);
}

TEST(InterpreterOps, SoftmaxWithBroadcastMaskScaleAndSoftcap) {
  // x [B=2, H=3, T=2, N=5], mask [B, 1, T, N] with -inf entries, one row all -inf.
  for (double softcap : {0.0, 2.5}) {
    SCOPED_TRACE(softcap);
    Harness h;
    Value* x = h.input_f32("x", {2, 3, 2, 5}, 15, 4.0f);
    std::vector<float> mask(2 * 2 * 5);
    auto mr = test::random_floats(mask.size(), 16);
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = i % 3 == 1 ? -kInf : mr[i];
    for (int j = 0; j < 5; ++j) mask[size_t(1 * 10 + 1 * 5 + j)] = -kInf;  // b=1, t=1: all masked
    h.f32_inputs["m"] = mask;
    Value* m = h.b.input("m", {DType::F32, {2, 1, 2, 5}});
    h.b.output(h.b.softmax(x, m, 0.3, softcap), "y");
    std::vector<float> got = h.run();
    const auto& xv = h.f32_inputs["x"];
    std::vector<float> want(xv.size());
    for (int b = 0; b < 2; ++b)
      for (int hh = 0; hh < 3; ++hh)
        for (int t = 0; t < 2; ++t) {
          double z[5], mx = -INFINITY, sum = 0;
          for (int j = 0; j < 5; ++j) {
            double v = xv[size_t(((b * 3 + hh) * 2 + t) * 5 + j)];
            if (softcap > 0) v = softcap * std::tanh(v / softcap);
            z[j] = v * 0.3 + mask[size_t((b * 2 + t) * 5 + j)];
            mx = std::max(mx, z[j]);
          }
          for (int j = 0; j < 5; ++j) sum += std::isinf(mx) ? 0 : std::exp(z[j] - mx);
          for (int j = 0; j < 5; ++j)
            want[size_t(((b * 3 + hh) * 2 + t) * 5 + j)] =
                std::isinf(mx) ? 0.0f : float(std::exp(z[j] - mx) / sum);
        }
    expect_near(got, want, 1e-6, 1e-7);
    for (int hh = 0; hh < 3; ++hh)
      for (int j = 0; j < 5; ++j) EXPECT_EQ(got[size_t(((1 * 3 + hh) * 2 + 1) * 5 + j)], 0.0f);
  }
}

TEST(InterpreterOps, SoftmaxWithoutMaskSumsToOne) {
  Harness h;
  Value* x = h.input_f32("x", {4, 9}, 17, 10.0f);
  h.b.output(h.b.softmax(x, nullptr, 1.0), "y");
  std::vector<float> got = h.run();
  for (int r = 0; r < 4; ++r) {
    double s = 0;
    for (int j = 0; j < 9; ++j) s += got[size_t(r * 9 + j)];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(InterpreterOps, ArgmaxTakesTheFirstMaximum) {
  Harness h;
  h.f32_inputs["x"] = {1, 3, 3, 2, /**/ -kInf, -kInf, -kInf, -kInf, /**/ 0.5f, NAN, 0.7f, 0.7f};
  Value* x = h.b.input("x", {DType::F32, {3, 4}});
  h.b.output(h.b.argmax(x), "y");
  h.run();
  auto y = h.interp->output_tensor("y");
  ASSERT_TRUE(y.ok());
  ASSERT_EQ(y->type->str(), "i32[3]");
  const int32_t* v = reinterpret_cast<const int32_t*>(y->bytes.data());
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 0);
  EXPECT_EQ(v[2], 2);
  EXPECT_FALSE(h.interp->output("y").ok());  // not f32
}

TEST(InterpreterOps, ReshapeAndViewAlias) {
  Harness h;
  Value* x = h.input_f32("x", {4, 6}, 18);
  Value* r = h.b.reshape(x, {2, 12});
  Value* v = h.b.view(x, 7, {2, 5});
  h.b.output(h.b.scale(r, 1.0), "r");
  h.b.output(h.b.scale(v, 1.0), "v");
  std::vector<float> got_v = h.run("v");
  const auto& xv = h.f32_inputs["x"];
  EXPECT_EQ(got_v, std::vector<float>(xv.begin() + 7, xv.begin() + 17));
  EXPECT_EQ(h.run("r"), xv);
  // Free: the view's bytes are the input's.
  auto xb = h.interp->value(*x);
  auto vb = h.interp->value(*v);
  ASSERT_TRUE(xb.ok() && vb.ok());
  EXPECT_EQ(vb->bytes.data(), xb->bytes.data() + 7 * 4);
  EXPECT_EQ(h.interp->value(*r)->bytes.data(), xb->bytes.data());
}

TEST(InterpreterOps, PermuteSliceConcatFloat) {
  Harness h;
  Value* x = h.input_f32("x", {2, 3, 4}, 19);
  Value* y = h.input_f32("y", {2, 2, 4}, 20);
  h.b.output(h.b.permute(x, {2, 0, 1}), "p");
  h.b.output(h.b.slice(x, 1, 1, 2), "s1");
  h.b.output(h.b.slice(x, 2, 1, 2), "s2");
  h.b.output(h.b.concat({x, y, x}, 1), "c");
  const auto& xv = h.f32_inputs["x"];
  const auto& yv = h.f32_inputs["y"];
  auto X = [&](int i, int j, int k) { return xv[size_t((i * 3 + j) * 4 + k)]; };
  std::vector<float> p = h.run("p"), s1 = h.run("s1"), s2 = h.run("s2"), c = h.run("c");
  std::vector<float> wp, ws1, ws2, wc;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) wp.push_back(X(i, j, k));
  for (int i = 0; i < 2; ++i)
    for (int j = 1; j < 3; ++j)
      for (int k = 0; k < 4; ++k) ws1.push_back(X(i, j, k));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 1; k < 3; ++k) ws2.push_back(X(i, j, k));
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) wc.push_back(X(i, j, k));
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 4; ++k) wc.push_back(yv[size_t((i * 2 + j) * 4 + k)]);
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) wc.push_back(X(i, j, k));
  }
  EXPECT_EQ(p, wp);
  EXPECT_EQ(s1, ws1);
  EXPECT_EQ(s2, ws2);
  EXPECT_EQ(c, wc);
  EXPECT_EQ(h.interp->output_tensor("c")->type->str(), "f32[2, 8, 4]");
}

TEST(InterpreterOps, DataMovementOfQuantizedAndIntegerTensorsMovesBytes) {
  Harness h;
  Value* a = h.weight("a", DType::Q8_0, {2, 3, 32}, 21);
  Value* b = h.weight("b", DType::Q8_0, {2, 1, 32}, 22);
  Value* ids = h.input_i32("ids", {2, 3}, {1, 2, 3, 4, 5, 6});
  h.b.output(h.b.concat({a, b}, 1), "c");
  h.b.output(h.b.permute(a, {1, 0, 2}), "p");
  h.b.output(h.b.slice(a, 1, 2, 1), "s");
  h.b.output(h.b.permute(ids, {1, 0}), "ip");
  ASSERT_TRUE(h.build().ok());
  ASSERT_TRUE(h.interp->run().ok());
  auto ab = h.weights.get("a", {DType::Q8_0, {2, 3, 32}});
  auto bb = h.weights.get("b", {DType::Q8_0, {2, 1, 32}});
  ASSERT_TRUE(ab.ok() && bb.ok());
  const size_t row = 34;  // one q8_0 block per row
  auto rows_of = [&](std::span<const uint8_t> s, std::initializer_list<int> rows) {
    std::vector<uint8_t> out;
    for (int r : rows)
      out.insert(out.end(), s.begin() + r * long(row), s.begin() + (r + 1) * long(row));
    return out;
  };
  auto bytes = [&](const char* name) {
    auto t = h.interp->output_tensor(name);
    return std::vector<uint8_t>(t->bytes.begin(), t->bytes.end());
  };
  // concat along axis 1: per outer index, a's 3 rows then b's row.
  std::vector<uint8_t> want_c = rows_of(*ab, {0, 1, 2});
  auto b0 = rows_of(*bb, {0});
  want_c.insert(want_c.end(), b0.begin(), b0.end());
  auto a1 = rows_of(*ab, {3, 4, 5});
  want_c.insert(want_c.end(), a1.begin(), a1.end());
  auto b1 = rows_of(*bb, {1});
  want_c.insert(want_c.end(), b1.begin(), b1.end());
  EXPECT_EQ(bytes("c"), want_c);
  EXPECT_EQ(bytes("p"), rows_of(*ab, {0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(bytes("s"), rows_of(*ab, {2, 5}));
  auto ip = h.interp->output_tensor("ip");
  const int32_t* iv = reinterpret_cast<const int32_t*>(ip->bytes.data());
  EXPECT_EQ(std::vector<int32_t>(iv, iv + 6), (std::vector<int32_t>{1, 4, 2, 5, 3, 6}));
}

TEST(InterpreterOps, AttnMaskCausalWindowAndPadding) {
  Harness h;
  Value* pos = h.input_i32("pos", {2, 2}, {0, 3, 5, -1});
  h.b.output(h.b.attn_mask(pos, 6, 0), "full");
  h.b.output(h.b.attn_mask(pos, 6, 2), "win");
  const float N = -kInf;
  EXPECT_EQ(h.run("full"), (std::vector<float>{0, N, N, N, N, N,  //
                                               0, 0, 0, 0, N, N,  //
                                               0, 0, 0, 0, 0, 0,  //
                                               0, N, N, N, N, N}));
  EXPECT_EQ(h.run("win"), (std::vector<float>{0, N, N, N, N, N,  //
                                              N, N, 0, 0, N, N,  //
                                              N, N, N, N, 0, 0,  //
                                              0, N, N, N, N, N}));
}

}  // namespace
}  // namespace kiln
