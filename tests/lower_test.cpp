#include <gtest/gtest.h>

#include "frontends/gguf/gguf_writer.h"
#include "frontends/gguf/lower.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/support/test_support.h"

namespace kiln::lower {
namespace {

int count_ops(const ir::Graph& g, ir::Op op) {
  return int(g.nodes_of(op).size());
}

void check_model(const std::string& path, int layers, int64_t vocab) {
  auto f = gguf::GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  for (const char* which : {"decode", "prefill:16"}) {
    auto spec = parse_graph_spec(which, 1, 256);
    ASSERT_TRUE(spec.ok());
    auto g = lower_gguf(**f, *spec);
    ASSERT_TRUE(g.ok()) << g.message();
    EXPECT_TRUE(ir::verify(**g).ok());
    EXPECT_EQ(count_ops(**g, ir::Op::Attention), layers);
    EXPECT_EQ(count_ops(**g, ir::Op::KvWrite), 2 * layers);
    auto outs = (*g)->nodes_of(ir::Op::Output);
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_EQ(outs[0]->operand(0)->type.str(), "f32[1, " + std::to_string(vocab) + "]");
  }
}

TEST(Lower, SmolLM2) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  check_model(path, 30, 49152);
}

TEST(Lower, Gemma3SlidingWindowPattern) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  check_model(path, 18, 262144);
  auto f = gguf::GgufFile::open(path);
  auto g = lower_gguf(**f, GraphSpec{});
  ASSERT_TRUE(g.ok()) << g.message();
  int global = 0;
  for (ir::Node* n : (*g)->nodes_of(ir::Op::Attention)) global += n->attrs.i("window") == 0;
  EXPECT_EQ(global, 3);  // layers 5, 11, 17
}

TEST(Lower, BatchedDecodeAndAllLogits) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto f = gguf::GgufFile::open(path);
  GraphSpec s;
  s.batch = 4;
  s.ctx = 128;
  auto g = lower_gguf(**f, s);
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ((*g)->nodes_of(ir::Op::Output)[0]->operand(0)->type.str(), "f32[4, 49152]");
  s.batch = 1;
  s.tokens = 8;
  s.all_logits = true;
  g = lower_gguf(**f, s);
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ((*g)->nodes_of(ir::Op::Output)[0]->operand(0)->type.str(), "f32[8, 49152]");
}

TEST(Lower, UnsupportedArchitectureListsTheSupportedOnes) {
  gguf::GgufWriter w;
  w.metadata().set("general.architecture", gguf::Value::of_string("mamba"));
  auto bytes = w.to_bytes();
  auto f = gguf::GgufFile::parse(bytes, "m.gguf");
  ASSERT_TRUE(f.ok());
  auto g = lower_gguf(**f, GraphSpec{});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(
      g.message(),
      "m.gguf: architecture 'mamba' is not supported (supported: llama, qwen2, qwen3, gemma3)");
}

TEST(Lower, MissingKeyIsNamed) {
  gguf::GgufWriter w;
  w.metadata().set("general.architecture", gguf::Value::of_string("llama"));
  w.metadata().set("llama.embedding_length", gguf::Value::of_u32(64));
  auto bytes = w.to_bytes();
  auto f = gguf::GgufFile::parse(bytes, "m.gguf");
  ASSERT_TRUE(f.ok());
  auto g = lower_gguf(**f, GraphSpec{});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.message(), "missing key llama.block_count");
}

TEST(Lower, GraphSpecParsing) {
  EXPECT_EQ(parse_graph_spec("prefill:128", 1, 0)->tokens, 128);
  EXPECT_FALSE(parse_graph_spec("prefill:x", 1, 0).ok());
  EXPECT_FALSE(parse_graph_spec("train", 1, 0).ok());
  EXPECT_EQ(parse_graph_spec("decode", 4, 0)->name(), "decode_b4");
}

}  // namespace
}  // namespace kiln::lower
