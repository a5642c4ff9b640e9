// The KV cache and attention in the reference interpreter: kv_write into states, attention equal
// to its decomposition into primitive ops (built here by hand), and to a naive loop.
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/half.h"
#include "tests/interpreter_test_util.h"

namespace kiln {
namespace {

using ir::Value;
using test::expect_near;
using test::Harness;

// docs/ir.md's decomposition of `attention`: get_rows on the caches by seq, permute, mul_mat,
// attn_mask, softmax, mul_mat, permute.
Value* decomposed_attention(ir::Builder& b, Value* q, Value* kc, Value* vc, Value* pos, Value* seq,
                            double scale, int64_t window, double softcap) {
  const int64_t B = q->type.dim(0), T = q->type.dim(1);
  const int64_t S = kc->type.dim(0), C = kc->type.dim(1), Hkv = kc->type.dim(2);
  const int64_t D = kc->type.dim(3), Dv = vc->type.dim(3);
  Value* k = b.get_rows(b.reshape(kc, {S, C * Hkv * D}), seq);  // [B, C*Hkv*D]
  k = b.permute(b.reshape(k, {B, C, Hkv, D}), {0, 2, 1, 3});    // [B, Hkv, C, D]
  Value* s = b.mul_mat(b.permute(q, {0, 2, 1, 3}), k);          // [B, Hq, T, C]
  Value* mask = b.reshape(b.attn_mask(pos, C, window), {B, 1, T, C});
  Value* p = b.softmax(s, mask, scale, softcap);                 // [B, Hq, T, C]
  Value* v = b.get_rows(b.reshape(vc, {S, C * Hkv * Dv}), seq);  // [B, C*Hkv*Dv]
  v = b.permute(b.reshape(v, {B, C, Hkv, Dv}), {0, 2, 3, 1});    // [B, Hkv, Dv, C]
  return b.permute(b.mul_mat(p, v), {0, 2, 1, 3});               // [B, T, Hq, Dv]
}

std::vector<uint8_t> to_f16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h = f32_to_f16(v[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

// A naive attention over f32 caches, straight from docs/ir.md.
std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& kc,
                                   const std::vector<float>& vc, const std::vector<int32_t>& pos,
                                   const std::vector<int32_t>& seq, int64_t B, int64_t T,
                                   int64_t Hq, int64_t D, int64_t C, int64_t Hkv, int64_t Dv,
                                   double scale, int64_t window, double softcap) {
  std::vector<float> y(size_t(B * T * Hq * Dv));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t p = pos[size_t(b * T + t)], kvh = h / (Hq / Hkv), s = seq[size_t(b)];
        std::vector<double> z(size_t(C), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < C; ++j) {
          bool vis = p < 0 ? j == 0 : (j <= p && (window == 0 || p - j < window));
          if (!vis) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += double(q[size_t(((b * T + t) * Hq + h) * D + d)]) *
                   kc[size_t(((s * C + j) * Hkv + kvh) * D + d)];
          if (softcap > 0) dot = softcap * std::tanh(dot / softcap);
          z[size_t(j)] = dot * scale;
          mx = std::max(mx, z[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < C; ++j) sum += std::isinf(mx) ? 0 : std::exp(z[size_t(j)] - mx);
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < C; ++j)
            if (!std::isinf(mx))
              acc += std::exp(z[size_t(j)] - mx) / sum *
                     vc[size_t(((s * C + j) * Hkv + kvh) * Dv + d)];
          y[size_t(((b * T + t) * Hq + h) * Dv + d)] = float(acc);
        }
      }
  return y;
}

TEST(InterpreterAttention, EqualsDecompositionAndNaive) {
  const int64_t B = 2, T = 3, Hq = 4, Hkv = 2, D = 16, Dv = 8, S = 3, C = 8;
  const std::vector<int32_t> pos = {3, 4, 5, 6, 7, -1};  // row 1: last token is padding
  const std::vector<int32_t> seq = {2, 0};
  for (int64_t window : {0, 3})
    for (double softcap : {0.0, 1.5}) {
      SCOPED_TRACE("window " + std::to_string(window) + " softcap " + std::to_string(softcap));
      Harness h;
      Value* q = h.input_f32("q", {B, T, Hq, D}, 30, 2.0f);
      std::vector<float> kv = test::random_floats(size_t(S * C * Hkv * D), 31, 2.0f);
      std::vector<float> vv = test::random_floats(size_t(S * C * Hkv * Dv), 32);
      Value* kc = h.b.input("kc", {DType::F16, {S, C, Hkv, D}});
      Value* vc = h.b.input("vc", {DType::F16, {S, C, Hkv, Dv}});
      Value* p = h.input_i32("pos", {B, T}, pos);
      Value* sq = h.input_i32("seq", {B}, seq);
      const double scale = 1.0 / std::sqrt(double(D));
      h.b.output(h.b.attention(q, kc, vc, p, sq, scale, window, softcap), "direct");
      h.b.output(decomposed_attention(h.b, q, kc, vc, p, sq, scale, window, softcap), "decomposed");
      ASSERT_TRUE(h.build().ok()) << h.b.status().message();
      ASSERT_TRUE(h.interp->set_input_bytes("kc", to_f16_bytes(kv)).ok());
      ASSERT_TRUE(h.interp->set_input_bytes("vc", to_f16_bytes(vv)).ok());
      std::vector<float> direct = h.run("direct");
      std::vector<float> decomposed = h.run("decomposed");
      expect_near(direct, decomposed, 1e-6, 1e-7);
      std::vector<float> naive = naive_attention(
          h.f32_inputs["q"], test::round_trip(DType::F16, kv), test::round_trip(DType::F16, vv),
          pos, seq, B, T, Hq, D, C, Hkv, Dv, scale, window, softcap);
      expect_near(direct, naive, 1e-5, 1e-6);
    }
}

// llama.cpp's batch holds only real tokens, and ggml picks its f16 products by their count
// (ggml_vec_dot_f16 for one, tinyBLAS for more). So act=f16 attention of one real token among
// padding rows (position -1) is the one-token graph's result bit for bit, and a second real token
// changes the order (the two differ in some last bit on random data).
TEST(InterpreterAttention, PaddingRowsDoNotChangeTheProductOrder) {
  const int64_t Hq = 4, Hkv = 2, D = 64, C = 512, P = 300;
  std::vector<float> kv = test::random_floats(size_t(C * Hkv * D), 41, 2.0f);
  std::vector<float> vv = test::random_floats(size_t(C * Hkv * D), 42);
  std::vector<float> q1 = test::random_floats(size_t(Hq * D), 43, 2.0f);
  auto run = [&](std::vector<int32_t> pos) {
    const int64_t T = int64_t(pos.size());
    Harness h;
    std::vector<float> q(size_t(T * Hq * D), 0.5f);
    std::copy(q1.begin(), q1.end(), q.begin());  // row 0 is the same query in every run
    h.f32_inputs["q"] = q;
    Value* qv = h.b.input("q", {DType::F32, {1, T, Hq, D}});
    Value* kc = h.b.input("kc", {DType::F16, {1, C, Hkv, D}});
    Value* vc = h.b.input("vc", {DType::F16, {1, C, Hkv, D}});
    Value* p = h.input_i32("pos", {1, T}, pos);
    Value* sq = h.input_i32("seq", {1}, {0});
    h.b.output(h.b.attention(qv, kc, vc, p, sq, 0.125, 0, 0.0, DType::F16), "y");
    EXPECT_TRUE(h.build().ok()) << h.b.status().message();
    EXPECT_TRUE(h.interp->set_input_bytes("kc", to_f16_bytes(kv)).ok());
    EXPECT_TRUE(h.interp->set_input_bytes("vc", to_f16_bytes(vv)).ok());
    std::vector<float> y = h.run("y");
    y.resize(size_t(Hq * D));  // row 0
    return y;
  };
  const std::vector<float> alone = run({P});
  ASSERT_EQ(alone.size(), size_t(Hq * D));
  EXPECT_EQ(run({P, -1, -1}), alone);
  EXPECT_NE(run({P, P + 1}), alone);  // two real tokens: tinyBLAS's order
}

TEST(InterpreterAttention, ReadsOnlyVisibleKeys) {
  // Cache rows no query can see (before the window, after the last position, other slots) hold
  // NaN: the result must not notice.
  const int64_t S = 2, C = 10, H = 2, D = 8, W = 3;
  const std::vector<int32_t> pos = {5, 6};  // visible: keys 3..6
  Harness h;
  Value* q = h.input_f32("q", {1, 2, H, D}, 42);
  std::vector<float> kv = test::random_floats(size_t(S * C * H * D), 43);
  std::vector<float> vv = test::random_floats(size_t(S * C * H * D), 44);
  std::vector<float> kn = kv, vn = vv;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t j = 0; j < C; ++j)
      if (s != 1 || j < 3 || j > 6)
        for (int64_t i = 0; i < H * D; ++i) {
          kn[size_t((s * C + j) * H * D + i)] = NAN;
          vn[size_t((s * C + j) * H * D + i)] = NAN;
        }
  h.f32_inputs["kc"] = kv;
  h.f32_inputs["vc"] = vv;
  h.f32_inputs["kn"] = kn;
  h.f32_inputs["vn"] = vn;
  ir::TensorType cache{DType::F32, {S, C, H, D}};
  Value* kc = h.b.input("kc", cache);
  Value* vc = h.b.input("vc", cache);
  Value* knan = h.b.input("kn", cache);
  Value* vnan = h.b.input("vn", cache);
  Value* p = h.input_i32("pos", {1, 2}, pos);
  Value* sq = h.input_i32("seq", {1}, {1});
  h.b.output(h.b.attention(q, kc, vc, p, sq, 0.3, W), "clean");
  h.b.output(h.b.attention(q, knan, vnan, p, sq, 0.3, W), "poisoned");
  std::vector<float> clean = h.run("clean");
  std::vector<float> poisoned = h.run("poisoned");
  for (float v : poisoned) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(clean, poisoned);
}

TEST(InterpreterAttention, QuantizedCacheReadsDequantizedRows) {
  // attention over a q8_0 cache equals attention over the f32 cache of its dequantized values.
  const int64_t B = 1, T = 2, Hq = 2, Hkv = 1, D = 32, S = 1, C = 4;
  Harness h;
  Value* q = h.input_f32("q", {B, T, Hq, D}, 33);
  std::vector<float> kv_seen, vv_seen;
  Value* kq = h.weight("kq", DType::Q8_0, {S, C, Hkv, D}, 34, &kv_seen);
  Value* vq = h.weight("vq", DType::Q8_0, {S, C, Hkv, D}, 35, &vv_seen);
  ASSERT_TRUE(h.weights.add_f32("kf", DType::F32, {S, C, Hkv, D}, kv_seen).ok());
  ASSERT_TRUE(h.weights.add_f32("vf", DType::F32, {S, C, Hkv, D}, vv_seen).ok());
  Value* kf = h.b.weight("kf", {DType::F32, {S, C, Hkv, D}});
  Value* vf = h.b.weight("vf", {DType::F32, {S, C, Hkv, D}});
  Value* p = h.input_i32("pos", {B, T}, {1, 2});
  Value* sq = h.input_i32("seq", {B}, {0});
  h.b.output(h.b.attention(q, kq, vq, p, sq, 0.2), "q8");
  h.b.output(h.b.attention(q, kf, vf, p, sq, 0.2), "f32");
  expect_near(h.run("q8"), h.run("f32"), 0, 0);
}

// kv_write into an f16 state: written rows hold f16(x), positions < 0 or >= C are skipped, the
// state persists across runs.
TEST(InterpreterAttention, KvWriteSkipsPaddingAndPersists) {
  const int64_t S = 2, C = 4, H = 2, D = 8, B = 2, T = 2;
  Harness h;
  Value* cache = h.b.state("cache", {DType::F16, {S, C, H, D}});
  Value* x = h.input_f32("x", {B, T, H, D}, 36);
  Value* pos = h.input_i32("pos", {B, T}, {0, 1, 4, -1});
  Value* seq = h.input_i32("seq", {B}, {1, 0});
  h.b.output(h.b.cast(h.b.kv_write(cache, x, pos, seq), DType::F32), "y");
  std::vector<float> got = h.run();
  std::vector<float> want(size_t(S * C * H * D), 0.0f);
  auto put = [&](const std::vector<float>& xv, int b, int t, int s, int p) {
    for (int i = 0; i < H * D; ++i)
      want[size_t((s * C + p) * H * D + i)] =
          test::round_trip(DType::F16, {xv[size_t((b * T + t) * H * D + i)]})[0];
  };
  std::vector<float> x1 = h.f32_inputs["x"];
  put(x1, 0, 0, 1, 0);
  put(x1, 0, 1, 1, 1);  // b = 1: positions 4 (== C) and -1 are skipped
  expect_near(got, want, 0, 0);

  // Second run: new values, the earlier rows stay.
  std::vector<float> x2 = test::random_floats(x1.size(), 37);
  ASSERT_TRUE(h.interp->set_input("x", x2).ok());
  ASSERT_TRUE(h.interp->set_input("pos", std::vector<int32_t>{2, -5, 3, 0}).ok());
  got = h.run();
  put(x2, 0, 0, 1, 2);
  put(x2, 1, 0, 0, 3);
  put(x2, 1, 1, 0, 0);
  expect_near(got, want, 0, 0);
  // The store holds the same bytes.
  auto st = h.states->find("cache");
  ASSERT_TRUE(st.ok());
  auto vals = runtime::to_f32(*st);
  ASSERT_TRUE(vals.ok());
  EXPECT_EQ(*vals, want);
}

TEST(InterpreterAttention, KvWriteQuantizesQ8_0Rows) {
  Harness h;
  Value* cache = h.b.state("cache", {DType::Q8_0, {1, 3, 2, 32}});
  Value* x = h.input_f32("x", {1, 1, 2, 32}, 38);
  Value* pos = h.input_i32("pos", {1, 1}, {2});
  Value* seq = h.input_i32("seq", {1}, {0});
  h.b.output(h.b.cast(h.b.kv_write(cache, x, pos, seq), DType::F32), "y");
  h.run();
  auto st = h.states->find("cache");
  ASSERT_TRUE(st.ok());
  std::vector<uint8_t> want(2 * 34);
  ASSERT_TRUE(quant::quantize_row(DType::Q8_0, h.f32_inputs["x"].data(), want.data(), 64).ok());
  const size_t slot = 2 * 34;
  EXPECT_EQ(std::vector<uint8_t>(st->bytes.begin() + 2 * long(slot), st->bytes.end()), want);
  for (size_t i = 0; i < 2 * slot; ++i) ASSERT_EQ(st->bytes[i], 0) << i;  // untouched: zeros
}

TEST(InterpreterAttention, KvWriteBadSequenceSlotIsAnError) {
  Harness h;
  Value* cache = h.b.state("cache", {DType::F32, {2, 4, 1, 4}});
  Value* x = h.input_f32("x", {1, 1, 1, 4}, 39);
  Value* pos = h.input_i32("pos", {1, 1}, {0});
  Value* seq = h.input_i32("seq", {1}, {2});
  h.b.output(h.b.kv_write(cache, x, pos, seq), "y");
  ASSERT_TRUE(h.build().ok());
  Status st = h.interp->run();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("kv_write"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("sequence slot 2 of batch row 0 is outside the cache's 2 slots"),
            std::string::npos)
      << st.message();
}

TEST(InterpreterAttention, KvWriteRefusesAReadOnlyCache) {
  Harness h;
  Value* cache = h.weight("cache", DType::F32, {1, 4, 1, 4}, 40);
  Value* x = h.input_f32("x", {1, 1, 1, 4}, 41);
  Value* pos = h.input_i32("pos", {1, 1}, {0});
  Value* seq = h.input_i32("seq", {1}, {0});
  h.b.output(h.b.kv_write(cache, x, pos, seq), "y");
  ASSERT_TRUE(h.build().ok());
  Status st = h.interp->run();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("read-only"), std::string::npos) << st.message();
}

// Decode-style use: a kv_write feeding attention through its result, over a state shared by two
// graphs (a "prefill" of 3 tokens and a "decode" of 1) in one store.
TEST(InterpreterAttention, StateSharedByPrefillAndDecodeGraphs) {
  const int64_t S = 1, C = 8, H = 2, D = 16;
  auto states = std::make_shared<runtime::StateStore>();
  auto layer = [&](Harness& h, int64_t T, uint32_t seed) {
    h.states = states;
    Value* kc = h.b.state("cache_k.0", {DType::F16, {S, C, H, D}});
    Value* vc = h.b.state("cache_v.0", {DType::F16, {S, C, H, D}});
    Value* k = h.input_f32("k", {1, T, H, D}, seed);
    Value* v = h.input_f32("v", {1, T, H, D}, seed + 1);
    Value* q = h.input_f32("q", {1, T, H, D}, seed + 2);
    std::vector<int32_t> p(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) p[size_t(t)] = int32_t(t);
    Value* pos = h.input_i32("pos", {1, T}, p);
    Value* seq = h.input_i32("seq", {1}, {0});
    Value* kw = h.b.kv_write(kc, k, pos, seq);
    Value* vw = h.b.kv_write(vc, v, pos, seq);
    h.b.output(h.b.attention(q, kw, vw, pos, seq, 0.25), "y");
  };
  Harness prefill("prefill"), decode("decode"), all("all");
  layer(prefill, 3, 50);
  layer(decode, 1, 60);
  prefill.run();
  decode.i32_inputs["pos"] = {3};
  std::vector<float> got = decode.run();

  // The same 4 tokens in one graph over a fresh store.
  states = std::make_shared<runtime::StateStore>();
  layer(all, 4, 70);
  for (const char* name : {"k", "v", "q"}) {
    std::vector<float> v = prefill.f32_inputs[name];
    v.insert(v.end(), decode.f32_inputs[name].begin(), decode.f32_inputs[name].end());
    all.f32_inputs[name] = v;
  }
  std::vector<float> want = all.run();
  ASSERT_EQ(want.size(), 4 * got.size());
  expect_near(got, std::vector<float>(want.end() - long(got.size()), want.end()), 0, 0);
}

}  // namespace
}  // namespace kiln
