// Helpers for the reference interpreter's tests: a graph under construction with its in-memory
// weights, inputs and states, run in one call.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/quant.h"
#include "ir/builder.h"
#include "runtime/interpreter.h"
#include "tests/support/test_support.h"

namespace kiln::test {

// Values of a quantized (or f16) tensor after the round trip through its type: what a kernel
// reading the tensor sees.
inline std::vector<float> round_trip(DType t, const std::vector<float>& v) {
  if (t == DType::F32) return v;
  std::vector<uint8_t> bytes(v.size() * 4 + 64);
  std::vector<float> out(v.size());
  EXPECT_TRUE(quant::quantize_row(t, v.data(), bytes.data(), v.size()).ok());
  EXPECT_TRUE(quant::dequantize_row(t, bytes.data(), out.data(), v.size()).ok());
  return out;
}

// Whether the quant library handles a type both ways yet (another module; skip when it does not).
inline bool quant_ready(DType t) {
  return quant::can_quantize(t) && quant::can_dequantize(t);
}

class Harness {
 public:
  explicit Harness(const std::string& name = "t") : g(name), b(g) {}

  // An f32 input with random values in [-scale, scale] (kept for the run).
  ir::Value* input_f32(const std::string& name, ir::Shape shape, uint32_t seed,
                       float scale = 1.0f) {
    ir::TensorType t{DType::F32, shape};
    f32_inputs[name] = random_floats(size_t(t.numel()), seed, scale);
    return b.input(name, t);
  }
  ir::Value* input_i32(const std::string& name, ir::Shape shape, std::vector<int32_t> values) {
    i32_inputs[name] = std::move(values);
    return b.input(name, {DType::I32, std::move(shape)});
  }
  // A weight of dtype t made from random f32 values; returns the values the kernels see.
  ir::Value* weight(const std::string& name, DType t, ir::Shape shape, uint32_t seed,
                    std::vector<float>* seen = nullptr, float scale = 1.0f) {
    std::vector<float> v = random_floats(size_t(ir::TensorType{t, shape}.numel()), seed, scale);
    Status st = weights.add_f32(name, t, shape, v);
    EXPECT_TRUE(st.ok()) << st.message();
    if (seen) *seen = round_trip(t, v);
    return b.weight(name, {t, std::move(shape)});
  }

  // Creates the interpreter and sets the inputs.
  Status build(runtime::ConstantCache* constants = nullptr) {
    if (!b.ok()) return b.status();
    auto it = runtime::Interpreter::create(g, weights, *states, constants);
    if (!it.ok()) return it.status();
    interp = std::move(*it);
    for (auto& [name, v] : f32_inputs) KILN_RETURN_IF_ERROR(interp->set_input(name, v));
    for (auto& [name, v] : i32_inputs) KILN_RETURN_IF_ERROR(interp->set_input(name, v));
    return Status::Ok();
  }
  // Builds (once) and runs; returns output `name` as f32 values (dequantized if need be).
  std::vector<float> run(const std::string& name = "y") {
    if (!interp) {
      Status st = build();
      EXPECT_TRUE(st.ok()) << st.message();
      if (!st.ok()) return {};
    }
    Status st = interp->run();
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) return {};
    auto t = interp->output_tensor(name);
    EXPECT_TRUE(t.ok()) << t.message();
    if (!t.ok()) return {};
    auto v = runtime::to_f32(*t);
    EXPECT_TRUE(v.ok()) << v.message();
    return v.ok() ? *v : std::vector<float>{};
  }

  ir::Graph g;
  ir::Builder b;
  runtime::MemoryWeights weights;
  std::shared_ptr<runtime::StateStore> states = std::make_shared<runtime::StateStore>();
  std::map<std::string, std::vector<float>> f32_inputs;
  std::map<std::string, std::vector<int32_t>> i32_inputs;
  std::unique_ptr<runtime::Interpreter> interp;
};

// |a - b| <= atol + rtol * |b| elementwise, with the first offending index in the message.
inline void expect_near(const std::vector<float>& got, const std::vector<float>& want,
                        double rtol = 1e-6, double atol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    ASSERT_LE(std::abs(double(got[i]) - double(want[i])), atol + rtol * std::abs(double(want[i])))
        << "at " << i << ": got " << got[i] << ", want " << want[i];
  }
}

}  // namespace kiln::test
