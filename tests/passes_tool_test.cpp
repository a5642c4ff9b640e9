// `kiln ir`: IR text in (--parse) or a model, passes, text/dot/json out, --stats, --dump-after,
// and malformed IR as an error with its line and column.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/test_support.h"

namespace kiln {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = test::temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char* kLayer = R"(graph tiny {
  %x = input {name="x"} : f32[1, 64]
  %nw = weight {name="blk.0.ffn_norm.weight"} : f32[64]
  %wg = weight {name="blk.0.ffn_gate.weight"} : q8_0[128, 64]
  %wu = weight {name="blk.0.ffn_up.weight"} : q8_0[128, 64]
  %n = rms_norm %x {eps=1e-05} : f32[1, 64]
  %h = mul %n, %nw : f32[1, 64]
  %g = mul_mat %h, %wg {act=f32} : f32[1, 128]
  %u = mul_mat %h, %wu {act=f32} : f32[1, 128]
  %s = silu %g : f32[1, 128]
  %a = mul %s, %u : f32[1, 128]
  output %a {name="act"}
}
)";

TEST(IrTool, ParsesPrintsAndRunsPasses) {
  std::string path = write_temp("tiny.kir", kLayer);
  auto r = test::run_kiln("ir --parse " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kLayer);  // no passes for --parse by default: the text normalized

  r = test::run_kiln("ir --parse " + path + " --passes default");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("region"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("{name=\"act.k0\"}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("// plan arena="), std::string::npos) << r.out;

  // The output is valid input.
  std::string fused = write_temp("fused.kir", r.out);
  auto again = test::run_kiln("ir --parse " + fused);
  ASSERT_EQ(again.exit_code, 0) << again.err;
}

TEST(IrTool, StatsDumpsAndFormats) {
  std::string path = write_temp("tiny2.kir", kLayer);
  auto r = test::run_kiln("ir --parse " + path + " --passes default --stats");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kernels: 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("arena:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lower bound"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FLOPs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pass times: canonicalize"), std::string::npos) << r.out;

  r = test::run_kiln("ir --parse " + path +
                     " --passes canonicalize,merge-parallel-matmuls,fuse --dump-after all");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("// ---- after canonicalize ----"), std::string::npos);
  EXPECT_NE(r.out.find("// ---- after merge-parallel-matmuls ----"), std::string::npos);
  EXPECT_NE(r.out.find("// ---- after fuse ----"), std::string::npos);

  r = test::run_kiln("ir --parse " + path + " --passes fuse --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"graph\": \"tiny\"", 0), 0u) << r.out;
  r = test::run_kiln("ir --parse " + path + " --format dot");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("digraph", 0), 0u) << r.out;
}

TEST(IrTool, ErrorsNameWhereAndExitOne) {
  std::string bad = write_temp(
      "bad.kir", "graph g {\n  %x = input {name=\"x\"} : f32[2]\n  %y = silu %z : f32[2]\n}\n");
  auto r = test::run_kiln("ir --parse " + bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 3, column 13: value %z is not defined"), std::string::npos) << r.err;

  std::string path = write_temp("ok.kir", kLayer);
  r = test::run_kiln("ir --parse " + path + " --passes fuse,frobnicate");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown pass 'frobnicate'"), std::string::npos) << r.err;
  r = test::run_kiln("ir --parse " + path + " --format xml");
  EXPECT_EQ(r.exit_code, 1);
  r = test::run_kiln("ir --parse " + test::temp_dir() + "/missing.kir");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  r = test::run_kiln("ir");
  EXPECT_EQ(r.exit_code, 1);
}

TEST(IrTool, ModelStats) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto r = test::run_kiln("ir " + path + " --stats");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("30 layers, 5..5 kernels per layer"), std::string::npos) << r.out;
  r = test::run_kiln("ir " + path +
                     " --graph prefill:32 --batch 2 --ctx 256 --passes none --stats");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("per token (64 tokens per run)"), std::string::npos) << r.out;
  r = test::run_kiln("ir " + path + " --graph prefill:x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("prefill"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kiln
