#include <gtest/gtest.h>

#include "ir/builder.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace kiln::ir {
namespace {

// A small attention-shaped graph touching most ops.
std::unique_ptr<Graph> sample_graph() {
  auto g = std::make_unique<Graph>("sample");
  Builder b(*g);
  Value* tok = b.input("tokens", {DType::I32, {1, 2}});
  Value* pos = b.input("pos", {DType::I32, {1, 2}});
  Value* seq = b.input("seq", {DType::I32, {1}});
  Value* emb = b.weight("token_embd.weight", {DType::Q8_0, {100, 64}});
  Value* wq = b.weight("blk.0.attn_q.weight", {DType::Q4_0, {64, 64}});
  Value* nw = b.weight("blk.0.attn_norm.weight", {DType::F32, {64}});
  Value* kc = b.state("cache_k.0", {DType::F16, {1, 16, 2, 32}});
  Value* x = b.named("x").get_rows(emb, tok);
  Value* h = b.mul(b.rms_norm(x, 1e-5), nw);
  Value* q = b.reshape(b.mul_mat(h, wq), {1, 2, 2, 32});
  q = b.rope(q, pos, "neox", 32, 10000.0);
  Value* kc2 = b.kv_write(kc, q, pos, seq);
  Value* a = b.attention(q, kc2, kc2, pos, seq, 0.125, 4);
  Value* y = b.gelu(b.scale(b.reshape(a, {1, 2, 64}), 0.5));
  b.output(b.argmax(y), "next");
  EXPECT_TRUE(b.ok()) << b.status().message();
  return g;
}

TEST(Ir, BuilderInfersTypesAndVerifies) {
  auto g = sample_graph();
  Status st = verify(*g);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(g->find_value("x")->type.str(), "f32[1, 2, 64]");
}

TEST(Ir, PrintParsePrintRoundTrips) {
  auto g = sample_graph();
  std::string text = print(*g);
  auto parsed = parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.message() << "\n" << text;
  EXPECT_EQ(print(**parsed), text);
}

TEST(Ir, BuilderReportsShapeErrorsOnce) {
  Graph g("bad");
  Builder b(g);
  Value* x = b.input("x", {DType::F32, {2, 3}});
  Value* w = b.weight("w", {DType::F32, {4, 5}});
  Value* y = b.mul_mat(x, w);  // inner dims differ
  EXPECT_EQ(y, nullptr);
  EXPECT_EQ(b.silu(y), nullptr);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("inner dimensions differ"), std::string::npos)
      << b.status().message();
}

TEST(Ir, RegionsRoundTrip) {
  const char* text = R"(graph r {
  %x = input {name="x"} : f32[4, 8]
  %w = weight {name="w"} : f32[8]
  %0 = region %x, %w {name="norm"} : f32[4, 8] {
    %1 = arg {index=0} : f32[4, 8]
    %2 = arg {index=1} : f32[8]
    %3 = rms_norm %1 {eps=1e-06} : f32[4, 8]
    %4 = mul %3, %2 : f32[4, 8]
    yield %4
  }
  output %0 {name="y"}
}
)";
  auto g = parse(text);
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(print(**g), text);
}

struct BadCase {
  const char* text;
  const char* error;  // expected substring
};

TEST(Ir, ParserErrorsNameLineAndColumn) {
  const BadCase cases[] = {
      {"", "line 1, column 1: expected 'graph'"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2]\n  %y = silu %z : f32[2]\n}",
       "line 3, column 13: value %z is not defined"},
      {"graph g {\n  %x = frobnicate : f32[2]\n}", "line 2, column 8: unknown op 'frobnicate'"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2]\n  %y = silu %x : f32[3]\n}",
       "line 3, column 3: declared type f32[3] but silu gives f32[2]"},
      {"graph g {\n  %x = input {name=\"x\"} : f99[2]\n}",
       "line 2, column 27: unknown dtype 'f99'"},
      {"graph g {\n  %x = input {nam=\"x\"} : f32[2]\n}", "unknown attribute 'nam'"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2]\n", "missing '}'"},
      {"graph g {\n  %x = input {name=\"x} : f32[2]\n}", "line 2, column 20: unterminated string"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[0]\n}", "dimensions must be positive"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2]\n  %x = silu %x : f32[2]\n}",
       "defined twice"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2, 3]\n  %y = reshape %x {shape=[7]} : "
       "f32[7]\n}",
       "cannot reshape"},
      {"graph g {\n  %x = input {name=\"x\"} : f32[2]\n  %y = arg {index=0} : f32[2]\n}",
       "arg outside a region"},
  };
  for (const BadCase& c : cases) {
    auto g = parse(c.text);
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_NE(g.message().find(c.error), std::string::npos)
        << "text:\n"
        << c.text << "\nerror: " << g.message() << "\nexpected: " << c.error;
  }
}

TEST(Ir, OpTableIsConsistent) {
  for (int i = 0; i < num_ops(); ++i) {
    const OpInfo& info = op_info(Op(i));
    EXPECT_EQ(op_from_name(info.name), Op(i));
    for (const AttrSpec& a : info.attrs) {
      if (!a.default_text || a.kind == AttrKind::Ints) continue;
      EXPECT_TRUE(parse_attr_literal(a.kind, *a.default_text).ok()) << info.name << "." << a.name;
    }
  }
}

}  // namespace
}  // namespace kiln::ir

namespace kiln::ir {
namespace {

TEST(Ir, DeadCodeKeepsRegionsWithSideEffects) {
  const char* text = R"(graph r {
  %c = state {name="cache"} : f16[1, 4, 1, 2]
  %x = input {name="x"} : f32[1, 1, 1, 2]
  %p = input {name="pos"} : i32[1, 1]
  %s = input {name="seq"} : i32[1]
  %0 = region %c, %x, %p, %s {name="store"} : f16[1, 4, 1, 2] {
    %1 = arg {index=0} : f16[1, 4, 1, 2]
    %2 = arg {index=1} : f32[1, 1, 1, 2]
    %3 = arg {index=2} : i32[1, 1]
    %4 = arg {index=3} : i32[1]
    %5 = kv_write %1, %2, %3, %4 : f16[1, 4, 1, 2]
    yield %5
  }
  %6 = silu %x : f32[1, 1, 1, 2]
}
)";
  auto g = parse(text);
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ((*g)->remove_dead_nodes(), 1);  // the unused silu, not the region
  EXPECT_EQ((*g)->nodes_of(Op::Region).size(), 1u);
}

}  // namespace
}  // namespace kiln::ir
