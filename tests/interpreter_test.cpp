// The reference interpreter as a whole: inputs and outputs, errors, regions, derived constants,
// GGUF-backed weights, and a tiny llama-like model run end to end.
#include <cmath>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"
#include "ir/parser.h"
#include "tests/interpreter_test_util.h"

namespace kiln {
namespace {

using ir::Value;
using runtime::Interpreter;
using test::expect_near;
using test::Harness;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Inputs, outputs and errors

TEST(Interpreter, InputErrorsSayWhatIsWrong) {
  Harness h;
  Value* x = h.input_f32("x", {2, 3}, 1);
  Value* idx = h.input_i32("idx", {2}, {0, 1});
  h.b.output(h.b.get_rows(x, idx), "y");
  ASSERT_TRUE(h.build().ok());
  Interpreter& it = *h.interp;
  EXPECT_EQ(it.input_names(), (std::vector<std::string>{"x", "idx"}));
  EXPECT_EQ(it.output_names(), (std::vector<std::string>{"y"}));
  EXPECT_EQ(it.input_type("idx")->str(), "i32[2]");

  Status st = it.set_input("tokens", std::vector<int32_t>{1});
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "input 'tokens': graph t has no such input (it has: x, idx)"))
      << st.message();
  st = it.set_input("idx", std::vector<float>{1, 2});
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "input 'idx' is i32[2], given f32 values")) << st.message();
  st = it.set_input("idx", std::vector<int32_t>{1, 2, 3});
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "input 'idx' is i32[2] (8 bytes), given 12 bytes"))
      << st.message();
  EXPECT_FALSE(it.output("y").ok());  // not run yet
  EXPECT_TRUE(contains(it.output("y").message(), "has not run"));
  ASSERT_TRUE(it.run().ok());
  EXPECT_TRUE(it.output("y").ok());
  EXPECT_TRUE(
      contains(it.output("logits").message(), "output 'logits': graph t has no such output"));
}

TEST(Interpreter, RunFailsWhenAnInputWasNotSet) {
  Harness h;
  Value* x = h.b.input("x", {DType::F32, {2}});
  h.b.output(h.b.silu(x), "y");
  ASSERT_TRUE(h.build().ok());
  Status st = h.interp->run();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "input 'x' was not set")) << st.message();
}

TEST(Interpreter, WeightErrorsNameTheWeightAndBothTypes) {
  Harness h;
  Value* x = h.input_f32("x", {1, 32}, 2);
  ASSERT_TRUE(h.weights.add_f32("w", DType::Q8_0, {4, 32}, test::random_floats(128, 3)).ok());
  h.b.output(h.b.mul_mat(x, h.b.weight("w", {DType::F16, {4, 32}})), "y");
  Status st = h.build();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(),
                       "weight 'w': the graph declares f16[4, 32] but memory holds "
                       "q8_0[4, 32]"))
      << st.message();

  Harness h2;
  h2.b.output(h2.b.silu(h2.b.weight("missing", {DType::F32, {2}})), "y");
  st = h2.build();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "weight 'missing'")) << st.message();
}

TEST(Interpreter, StateTypeMustAgreeAcrossGraphs) {
  Harness a("a"), b("b");
  b.states = a.states;
  a.b.output(a.b.cast(a.b.state("cache_k.0", {DType::F16, {1, 4, 1, 32}}), DType::F32), "y");
  b.b.output(b.b.cast(b.b.state("cache_k.0", {DType::Q8_0, {1, 4, 1, 32}}), DType::F32), "y");
  ASSERT_TRUE(a.build().ok());
  Status st = b.build();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(),
                       "state 'cache_k.0': declared q8_0[1, 4, 1, 32] here but "
                       "f16[1, 4, 1, 32]"))
      << st.message();
}

TEST(Interpreter, StatesStartZeroedAndResetZeroesThem) {
  Harness h;
  Value* c = h.b.state("c", {DType::F32, {1, 2, 1, 4}});
  Value* x = h.input_f32("x", {1, 1, 1, 4}, 4);
  Value* pos = h.input_i32("pos", {1, 1}, {1});
  Value* seq = h.input_i32("seq", {1}, {0});
  h.b.output(h.b.scale(h.b.kv_write(c, x, pos, seq), 1.0), "y");
  std::vector<float> y = h.run();
  EXPECT_EQ(std::vector<float>(y.begin(), y.begin() + 4), std::vector<float>(4, 0.0f));
  EXPECT_EQ(std::vector<float>(y.begin() + 4, y.end()), h.f32_inputs["x"]);
  EXPECT_EQ(h.states->size(), 1u);
  EXPECT_EQ(h.states->bytes(), 32u);
  h.states->reset();
  auto st = h.states->find("c");
  ASSERT_TRUE(st.ok());
  for (uint8_t byte : st->bytes) ASSERT_EQ(byte, 0);
  EXPECT_FALSE(h.states->find("nope").ok());
}

// ---------------------------------------------------------------------------------------------
// Regions

constexpr const char* kUnfused = R"(graph unfused {
  %x = input {name="x"} : f32[4, 64]
  %w = weight {name="w"} : f32[64]
  %m = weight {name="m"} : q8_0[64, 64]
  %0 = rms_norm %x {eps=1e-06} : f32[4, 64]
  %normed = mul %0, %w : f32[4, 64]
  %2 = mul_mat %normed, %m : f32[4, 64]
  %3 = silu %2 : f32[4, 64]
  %4 = reshape %3 {shape=[4, 1, 64]} : f32[4, 1, 64]
  %5 = add %4, %x : f32[4, 4, 64]
  output %5 {name="y"}
  output %normed {name="normed"}
}
)";

// The same ops in regions: one with two results, one nested inside another, one that yields a
// view of its argument.
constexpr const char* kFused = R"(graph fused {
  %x = input {name="x"} : f32[4, 64]
  %w = weight {name="w"} : f32[64]
  %m = weight {name="m"} : q8_0[64, 64]
  %n, %g = region %x, %w, %m {name="norm_matmul"} : f32[4, 64], f32[4, 64] {
    %0 = arg {index=0} : f32[4, 64]
    %1 = arg {index=1} : f32[64]
    %2 = arg {index=2} : q8_0[64, 64]
    %inner = region %0, %1 {name="norm"} : f32[4, 64] {
      %3 = arg {index=0} : f32[4, 64]
      %4 = arg {index=1} : f32[64]
      %5 = rms_norm %3 {eps=1e-06} : f32[4, 64]
      %body_mul = mul %5, %4 : f32[4, 64]
      yield %body_mul
    }
    %6 = mul_mat %inner, %2 : f32[4, 64]
    %7 = silu %6 : f32[4, 64]
    yield %inner, %7
  }
  %r = region %g {name="view"} : f32[4, 1, 64] {
    %8 = arg {index=0} : f32[4, 64]
    %9 = reshape %8 {shape=[4, 1, 64]} : f32[4, 1, 64]
    yield %9
  }
  %y = region %r, %x {name="residual"} : f32[4, 4, 64] {
    %10 = arg {index=0} : f32[4, 1, 64]
    %11 = arg {index=1} : f32[4, 64]
    %12 = add %10, %11 : f32[4, 4, 64]
    yield %12
  }
  output %y {name="y"}
  output %n {name="normed"}
}
)";

TEST(Interpreter, RegionGraphEqualsItsUnfusedGraph) {
  runtime::MemoryWeights w;
  ASSERT_TRUE(w.add_f32("w", DType::F32, {64}, test::random_floats(64, 5)).ok());
  ASSERT_TRUE(w.add_f32("m", DType::Q8_0, {64, 64}, test::random_floats(64 * 64, 6)).ok());
  std::vector<float> x = test::random_floats(256, 7, 3.0f);
  std::vector<std::vector<float>> results;
  std::vector<std::unique_ptr<ir::Graph>> graphs;
  std::vector<std::unique_ptr<Interpreter>> its;
  runtime::StateStore states;
  for (const char* text : {kUnfused, kFused}) {
    auto g = ir::parse(text);
    ASSERT_TRUE(g.ok()) << g.message();
    auto it = Interpreter::create(**g, w, states);
    ASSERT_TRUE(it.ok()) << it.message();
    ASSERT_TRUE((*it)->set_input("x", x).ok());
    ASSERT_TRUE((*it)->run().ok());
    for (const char* out : {"y", "normed"}) {
      auto y = (*it)->output(out);
      ASSERT_TRUE(y.ok()) << y.message();
      results.emplace_back(y->begin(), y->end());
    }
    graphs.push_back(std::move(*g));
    its.push_back(std::move(*it));
  }
  EXPECT_EQ(results[0], results[2]);  // same kernels, same order: bit for bit
  EXPECT_EQ(results[1], results[3]);
  // A value inside a (nested) region body can be read after the run.
  const ir::Graph& fused = *graphs[1];
  const ir::Node* outer = fused.nodes()[3].get();
  ASSERT_EQ(outer->op, ir::Op::Region);
  const ir::Graph& inner_body = *outer->body->nodes()[3]->body;
  const ir::Value* body_mul = inner_body.find_value("body_mul");
  ASSERT_NE(body_mul, nullptr);
  auto v = its[1]->value(*body_mul);
  ASSERT_TRUE(v.ok()) << v.message();
  auto vf = runtime::to_f32(*v);
  EXPECT_EQ(*vf, results[1]);
  auto unfused_mul = its[0]->value("normed");
  ASSERT_TRUE(unfused_mul.ok()) << unfused_mul.message();
  EXPECT_EQ(*runtime::to_f32(*unfused_mul), results[1]);
}

// ---------------------------------------------------------------------------------------------
// Derived constants

TEST(Interpreter, DerivedConstantsAreEvaluatedOnce) {
  Harness h;
  Value* x = h.input_f32("x", {3, 64}, 8);
  std::vector<float> wq, wk;
  Value* q = h.weight("wq", DType::Q8_0, {32, 64}, 9, &wq);
  Value* k = h.weight("wk", DType::Q8_0, {16, 64}, 10, &wk);
  Value* qk = h.b.concat({q, k}, 0);  // what merge-parallel-matmuls builds
  h.b.output(h.b.mul_mat(x, qk), "y");
  h.b.output(h.b.mul_mat(x, h.b.reshape(qk, {48, 64})), "y2");  // a view of a constant: free
  runtime::ConstantCache cache;
  ASSERT_TRUE(h.build(&cache).ok());
  EXPECT_EQ(cache.evaluations(), 1);
  EXPECT_EQ(cache.bytes(), 48u * 68u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h.interp->run().ok());
  EXPECT_EQ(cache.evaluations(), 1);
  // Same values as the two separate matmuls.
  std::vector<float> y = h.run("y");
  std::vector<float> y2 = h.run("y2");
  EXPECT_EQ(y, y2);
  const auto& xv = h.f32_inputs["x"];
  for (int i = 0; i < 3; ++i)
    for (int n = 0; n < 48; ++n) {
      const float* wr = n < 32 ? &wq[size_t(n * 64)] : &wk[size_t((n - 32) * 64)];
      double s = 0;
      for (int kk = 0; kk < 64; ++kk) s += double(xv[size_t(i * 64 + kk)]) * wr[kk];
      ASSERT_EQ(y[size_t(i * 48 + n)], float(s)) << i << ", " << n;
    }
  // The concatenated bytes are the two weights' rows, whole.
  auto qkv = h.interp->value(*qk);
  ASSERT_TRUE(qkv.ok());
  auto qb = h.weights.get("wq", {DType::Q8_0, {32, 64}});
  auto kb = h.weights.get("wk", {DType::Q8_0, {16, 64}});
  std::vector<uint8_t> want(qb->begin(), qb->end());
  want.insert(want.end(), kb->begin(), kb->end());
  EXPECT_EQ(std::vector<uint8_t>(qkv->bytes.begin(), qkv->bytes.end()), want);

  // A second interpreter over the same graph and cache evaluates nothing.
  auto again = Interpreter::create(h.g, h.weights, *h.states, &cache);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(cache.evaluations(), 1);
  // Without a shared cache, an interpreter keeps its own.
  auto own = Interpreter::create(h.g, h.weights, *h.states);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ((*own)->constants().evaluations(), 1);
}

TEST(Interpreter, ConstantChainsAndConstantRegions) {
  // cast(concat(w1, w2)) and a region over weights only are constants too.
  Harness h;
  Value* x = h.input_f32("x", {2, 32}, 11);
  Value* w1 = h.weight("w1", DType::F16, {4, 32}, 12);
  Value* w2 = h.weight("w2", DType::F16, {4, 32}, 13);
  Value* c = h.b.cast(h.b.concat({w1, w2}, 0), DType::Q8_0);
  h.b.output(h.b.mul_mat(x, c), "y");
  ASSERT_TRUE(h.build().ok());
  EXPECT_EQ(h.interp->constants().evaluations(), 2);
  std::vector<float> y1 = h.run();
  std::vector<float> y2 = h.run();
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(h.interp->constants().evaluations(), 2);

  auto g = ir::parse(R"(graph cr {
  %x = input {name="x"} : f32[2, 32]
  %w = weight {name="w"} : f32[4, 32]
  %c = region %w {name="prep"} : f32[4, 32] {
    %0 = arg {index=0} : f32[4, 32]
    %1 = scale %0 {scale=2.0} : f32[4, 32]
    yield %1
  }
  %y = mul_mat %x, %c : f32[2, 4]
  output %y {name="y"}
}
)");
  ASSERT_TRUE(g.ok()) << g.message();
  runtime::MemoryWeights w;
  ASSERT_TRUE(w.add_f32("w", DType::F32, {4, 32}, test::random_floats(128, 14)).ok());
  runtime::StateStore states;
  auto it = Interpreter::create(**g, w, states);
  ASSERT_TRUE(it.ok()) << it.message();
  EXPECT_EQ((*it)->constants().evaluations(), 1);
  ASSERT_TRUE((*it)->set_input("x", test::random_floats(64, 15)).ok());
  ASSERT_TRUE((*it)->run().ok());
  auto cv = (*it)->value("c");
  ASSERT_TRUE(cv.ok()) << cv.message();
  std::vector<float> want = test::random_floats(128, 14);
  for (float& v : want) v *= 2;
  EXPECT_EQ(*runtime::to_f32(*cv), want);
}

// ---------------------------------------------------------------------------------------------
// GGUF weights

TEST(Interpreter, GgufWeightsMapShapesAndCheckTypes) {
  gguf::GgufWriter wr;
  std::vector<float> wv = test::random_floats(3 * 64, 16);
  std::vector<uint8_t> wq(3 * 68);
  ASSERT_TRUE(quant::quantize_row(DType::Q8_0, wv.data(), wq.data(), wv.size()).ok());
  ASSERT_TRUE(wr.add_tensor_owned("blk.0.w", DType::Q8_0, {64, 3}, wq).ok());
  std::vector<float> nv = test::random_floats(64, 17);
  std::vector<uint8_t> nb(reinterpret_cast<const uint8_t*>(nv.data()),
                          reinterpret_cast<const uint8_t*>(nv.data()) + 256);
  ASSERT_TRUE(wr.add_tensor_owned("blk.0.norm", DType::F32, {64}, nb).ok());
  std::vector<uint8_t> file_bytes;
  ASSERT_TRUE(wr.to_bytes(&file_bytes).ok());
  auto file = gguf::GgufFile::parse(file_bytes);
  ASSERT_TRUE(file.ok()) << file.message();
  runtime::GgufWeights weights(**file);

  // ggml dims [64, 3] are IR shape [3, 64]; leading 1s are ignored.
  auto w = weights.get("blk.0.w", {DType::Q8_0, {3, 64}});
  ASSERT_TRUE(w.ok()) << w.message();
  EXPECT_EQ(w->data(), (*file)->data(*(*file)->find_tensor("blk.0.w")));  // not a copy
  EXPECT_TRUE(weights.get("blk.0.norm", {DType::F32, {1, 64}}).ok());
  auto bad = weights.get("blk.0.w", {DType::F16, {3, 64}});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.message(), "weight 'blk.0.w': the graph declares f16[3, 64] but "))
      << bad.message();
  EXPECT_TRUE(contains(bad.message(), "holds q8_0[3, 64] (ggml dims [64, 3])")) << bad.message();
  EXPECT_FALSE(weights.get("blk.0.w", {DType::Q8_0, {64, 3}}).ok());
  EXPECT_FALSE(weights.get("nope", {DType::F32, {1}}).ok());

  // And through a graph.
  Harness h;
  Value* x = h.input_f32("x", {2, 64}, 18);
  Value* n = h.b.weight("blk.0.norm", {DType::F32, {64}});
  h.b.output(
      h.b.mul_mat(h.b.mul(h.b.rms_norm(x, 1e-6), n), h.b.weight("blk.0.w", {DType::Q8_0, {3, 64}})),
      "y");
  auto it = Interpreter::create(h.g, weights, *h.states);
  ASSERT_TRUE(it.ok()) << it.message();
  ASSERT_TRUE((*it)->set_input("x", h.f32_inputs["x"]).ok());
  ASSERT_TRUE((*it)->run().ok());
  auto y = (*it)->output("y");
  ASSERT_TRUE(y.ok());
  std::vector<float> wseen = test::round_trip(DType::Q8_0, wv);
  const auto& xv = h.f32_inputs["x"];
  for (int r = 0; r < 2; ++r) {
    double ss = 0;
    for (int i = 0; i < 64; ++i) ss += double(xv[size_t(r * 64 + i)]) * xv[size_t(r * 64 + i)];
    const double s = 1 / std::sqrt(ss / 64 + 1e-6);
    for (int o = 0; o < 3; ++o) {
      double acc = 0;
      for (int i = 0; i < 64; ++i)
        acc += double(float(float(xv[size_t(r * 64 + i)] * s) * nv[size_t(i)])) *
               wseen[size_t(o * 64 + i)];
      EXPECT_NEAR((*y)[size_t(r * 3 + o)], acc, 1e-5);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A tiny llama-like model, built by hand

struct TinyLlama {
  static constexpr int64_t V = 64, E = 64, Hq = 4, Hkv = 2, D = 16, F = 128, C = 16;

  runtime::MemoryWeights weights;
  TinyLlama() {
    uint32_t seed = 100;
    auto add = [&](const std::string& name, DType t, ir::Shape s, float scale) {
      int64_t n = 1;
      for (int64_t d : s) n *= d;
      EXPECT_TRUE(weights.add_f32(name, t, s, test::random_floats(size_t(n), seed++, scale)).ok());
    };
    add("token_embd.weight", DType::Q8_0, {V, E}, 1.0f);
    add("blk.0.attn_norm.weight", DType::F32, {E}, 1.0f);
    add("blk.0.attn_q.weight", DType::Q8_0, {Hq * D, E}, 0.25f);
    add("blk.0.attn_k.weight", DType::Q8_0, {Hkv * D, E}, 0.25f);
    add("blk.0.attn_v.weight", DType::Q8_0, {Hkv * D, E}, 0.25f);
    add("blk.0.attn_output.weight", DType::Q8_0, {E, Hq * D}, 0.25f);
    add("blk.0.ffn_norm.weight", DType::F32, {E}, 1.0f);
    add("blk.0.ffn_gate.weight", DType::Q8_0, {F, E}, 0.25f);
    add("blk.0.ffn_up.weight", DType::Q8_0, {F, E}, 0.25f);
    add("blk.0.ffn_down.weight", DType::Q8_0, {E, F}, 0.2f);
    add("output_norm.weight", DType::F32, {E}, 1.0f);
    add("output.weight", DType::Q8_0, {V, E}, 0.25f);
  }

  // The decode (T = 1) or prefill graph for B sequences of T tokens; logits of `rows`.
  std::unique_ptr<ir::Graph> graph(int64_t B, int64_t T, int64_t R) {
    auto g = std::make_unique<ir::Graph>(T == 1 ? "decode" : "prefill");
    ir::Builder b(*g);
    auto w = [&](const std::string& name, DType t, ir::Shape s) { return b.weight(name, {t, s}); };
    Value* tokens = b.input("tokens", {DType::I32, {B, T}});
    Value* pos = b.input("pos", {DType::I32, {B, T}});
    Value* seq = b.input("seq", {DType::I32, {B}});
    Value* rows = b.input("rows", {DType::I32, {R}});
    Value* x = b.get_rows(w("token_embd.weight", DType::Q8_0, {V, E}), tokens);  // [B, T, E]
    Value* h = b.mul(b.rms_norm(x, 1e-5), w("blk.0.attn_norm.weight", DType::F32, {E}));
    Value* q =
        b.reshape(b.mul_mat(h, w("blk.0.attn_q.weight", DType::Q8_0, {Hq * D, E})), {B, T, Hq, D});
    Value* k = b.reshape(b.mul_mat(h, w("blk.0.attn_k.weight", DType::Q8_0, {Hkv * D, E})),
                         {B, T, Hkv, D});
    Value* v = b.reshape(b.mul_mat(h, w("blk.0.attn_v.weight", DType::Q8_0, {Hkv * D, E})),
                         {B, T, Hkv, D});
    q = b.rope(q, pos, "normal", D, 10000.0);
    k = b.rope(k, pos, "normal", D, 10000.0);
    Value* kc = b.kv_write(b.state("cache_k.0", {DType::F16, {2, C, Hkv, D}}), k, pos, seq);
    Value* vc = b.kv_write(b.state("cache_v.0", {DType::F16, {2, C, Hkv, D}}), v, pos, seq);
    Value* a =
        b.reshape(b.attention(q, kc, vc, pos, seq, 1.0 / std::sqrt(double(D))), {B, T, Hq * D});
    x = b.add(x, b.mul_mat(a, w("blk.0.attn_output.weight", DType::Q8_0, {E, Hq * D})));
    h = b.mul(b.rms_norm(x, 1e-5), w("blk.0.ffn_norm.weight", DType::F32, {E}));
    Value* gate = b.silu(b.mul_mat(h, w("blk.0.ffn_gate.weight", DType::Q8_0, {F, E})));
    Value* up = b.mul_mat(h, w("blk.0.ffn_up.weight", DType::Q8_0, {F, E}));
    x = b.add(x, b.mul_mat(b.mul(gate, up), w("blk.0.ffn_down.weight", DType::Q8_0, {E, F})));
    x = b.get_rows(b.reshape(x, {B * T, E}), rows);
    x = b.mul(b.rms_norm(x, 1e-5), w("output_norm.weight", DType::F32, {E}));
    b.output(b.mul_mat(x, w("output.weight", DType::Q8_0, {V, E})), "logits");
    EXPECT_TRUE(b.ok()) << b.status().message();
    return g;
  }
};

TEST(Interpreter, TinyLlamaDecodesAndMatchesPrefill) {
  TinyLlama m;
  runtime::StateStore states;
  auto decode_graph = m.graph(1, 1, 1);
  auto decode = Interpreter::create(*decode_graph, m.weights, states);
  ASSERT_TRUE(decode.ok()) << decode.message();
  Interpreter& d = **decode;
  const std::vector<int32_t> tokens = {5, 17, 5};
  std::vector<std::vector<float>> logits;
  for (int32_t step = 0; step < 3; ++step) {
    ASSERT_TRUE(d.set_input("tokens", std::vector<int32_t>{tokens[size_t(step)]}).ok());
    ASSERT_TRUE(d.set_input("pos", std::vector<int32_t>{step}).ok());
    ASSERT_TRUE(d.set_input("seq", std::vector<int32_t>{1}).ok());
    ASSERT_TRUE(d.set_input("rows", std::vector<int32_t>{0}).ok());
    Status st = d.run();
    ASSERT_TRUE(st.ok()) << st.message();
    auto l = d.output("logits");
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->size(), size_t(TinyLlama::V));
    for (float v : *l) ASSERT_TRUE(std::isfinite(v));
    logits.emplace_back(l->begin(), l->end());
  }
  // The same token at another position (with other keys before it) gives other logits.
  EXPECT_NE(logits[0], logits[2]);

  // A prefill of the three tokens over a fresh cache gives the last step's logits, and leaves
  // the same cache behind: a decode step after it equals a fourth decode step.
  runtime::StateStore fresh;
  auto prefill_graph = m.graph(1, 4, 1);
  auto prefill = Interpreter::create(*prefill_graph, m.weights, fresh);
  ASSERT_TRUE(prefill.ok()) << prefill.message();
  Interpreter& p = **prefill;
  ASSERT_TRUE(p.set_input("tokens", std::vector<int32_t>{5, 17, 5, 0}).ok());
  ASSERT_TRUE(p.set_input("pos", std::vector<int32_t>{0, 1, 2, -1}).ok());  // one padding token
  ASSERT_TRUE(p.set_input("seq", std::vector<int32_t>{1}).ok());
  ASSERT_TRUE(p.set_input("rows", std::vector<int32_t>{2}).ok());
  ASSERT_TRUE(p.run().ok());
  expect_near(std::vector<float>(p.output("logits")->begin(), p.output("logits")->end()), logits[2],
              1e-5, 1e-5);

  auto decode2 = Interpreter::create(*decode_graph, m.weights, fresh);
  ASSERT_TRUE(decode2.ok());
  for (Interpreter* it : {&d, decode2->get()}) {
    ASSERT_TRUE(it->set_input("tokens", std::vector<int32_t>{9}).ok());
    ASSERT_TRUE(it->set_input("pos", std::vector<int32_t>{3}).ok());
    ASSERT_TRUE(it->set_input("seq", std::vector<int32_t>{1}).ok());
    ASSERT_TRUE(it->set_input("rows", std::vector<int32_t>{0}).ok());
    ASSERT_TRUE(it->run().ok());
  }
  expect_near(std::vector<float>(d.output("logits")->begin(), d.output("logits")->end()),
              std::vector<float>((*decode2)->output("logits")->begin(),
                                 (*decode2)->output("logits")->end()),
              1e-5, 1e-5);
}

}  // namespace
}  // namespace kiln
