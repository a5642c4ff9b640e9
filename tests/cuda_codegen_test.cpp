// The CUDA code generator without a GPU: every fused region of both real models (decode and
// prefill graphs) becomes CUDA C++ that NVRTC compiles for sm_80 and sm_90 (ptxas runs inside
// NVRTC for the cubins; the PTX also goes through the toolkit's ptxas binary when there is one),
// and the disk cache returns the same cubins for the same source.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "codegen/cuda/compile_graph.h"
#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "passes/pass_manager.h"
#include "runtime/cuda_driver.h"
#include "support/test_support.h"

// NVRTC (dlopen'ed, not instrumented) keeps process-lifetime allocations that LeakSanitizer would
// report as leaks of this test; they are not kiln's.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libnvrtc\nleak:libnvrtc-builtins\n";
}

namespace kiln {
namespace {

std::unique_ptr<ir::Graph> fused_graph(const gguf::GgufFile& file, int tokens) {
  lower::GraphSpec spec;
  spec.tokens = tokens;
  spec.ctx = 256;
  auto g = lower::lower_gguf(file, spec);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return nullptr;
  passes::PassContext ctx;
  Status st =
      passes::run_pipeline("canonicalize,merge-parallel-matmuls,fuse,plan-memory", **g, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  return std::move(*g);
}

// Compiles the graph of `tokens` per sequence (1: decode) of a model for sm_80 and sm_90.
void compile_model(const std::string& path, int tokens) {
  if (Status st = cuda::nvrtc_status(); !st.ok()) GTEST_SKIP() << st.message();
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  const std::string ptxas = cuda::find_ptxas();
  {
    SCOPED_TRACE("tokens " + std::to_string(tokens));
    auto g = fused_graph(**file, tokens);
    ASSERT_TRUE(g);
    auto p = cuda::generate(*g);
    ASSERT_TRUE(p.ok()) << p.message();
    size_t regions = 0;
    for (const auto& n : g->nodes()) regions += n->op == ir::Op::Region;
    EXPECT_EQ(p->kernels_by_region.size(), regions);
    EXPECT_GT(p->distinct, 2u);
    cuda::CompileOptions co;
    co.cache = false;  // really compile
    auto m = cuda::compile_module(p->source, p->graph_name, co);
    ASSERT_TRUE(m.ok()) << m.message();
    for (int arch : {80, 90}) {
      ASSERT_TRUE(m->cubins.count(arch)) << arch;
      EXPECT_GT(m->cubins.at(arch).size(), 1000u);
    }
    EXPECT_NE(m->ptx.find(".entry"), std::string::npos);
    // ptxas reported every kernel function for both architectures.
    std::set<std::pair<std::string, int>> reported;
    int max_regs = 0;
    for (const cuda::KernelResources& r : m->resources) {
      reported.insert({r.entry, r.arch});
      EXPECT_GT(r.registers, 0) << r.entry;
      EXPECT_LE(r.registers, 255) << r.entry;
      // Decode mat-vecs keep up to 8 rows' loads in flight per lane: that must fit in registers.
      EXPECT_EQ(r.spill_stores, 0) << r.entry << " sm_" << r.arch;
      max_regs = std::max(max_regs, r.registers);
    }
    std::printf("%zu kernels, at most %d registers\n", m->resources.size(), max_regs);
    for (const cuda::KernelSpec& k : p->kernels_by_region)
      for (int arch : {80, 90}) EXPECT_TRUE(reported.count({k.entry, arch})) << k.entry << arch;
    if (!ptxas.empty()) {
      auto log = cuda::run_ptxas(ptxas, m->ptx, 90);
      EXPECT_TRUE(log.ok()) << log.message();
    }
  }
}

TEST(CudaCodegenModels, SmolLM2DecodeCompilesForSm80AndSm90) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  compile_model(path, 1);
}
TEST(CudaCodegenModels, SmolLM2PrefillCompilesForSm80AndSm90) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  compile_model(path, 16);
}
TEST(CudaCodegenModels, Gemma3DecodeCompilesForSm80AndSm90) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  compile_model(path, 1);
}
TEST(CudaCodegenModels, Gemma3PrefillCompilesForSm80AndSm90) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  compile_model(path, 16);
}

TEST(CudaCodegen, ReadableSourceNamesEveryRegion) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  auto g = fused_graph(**file, 1);
  ASSERT_TRUE(g);
  auto text = cuda::emit_cuda(*g);
  ASSERT_TRUE(text.ok()) << text.message();
  auto p = cuda::generate(*g);
  ASSERT_TRUE(p.ok());
  for (const cuda::KernelSpec& k : p->kernels_by_region) {
    EXPECT_NE(text->find("//   " + k.name + " -> " + k.entry), std::string::npos) << k.name;
    EXPECT_NE(text->find(" " + k.entry + "(const KilnArgs"), std::string::npos) << k.entry;
  }
  // The decode graph of a 30-layer model: at most 5 kernels per layer plus the head.
  EXPECT_LE(p->kernels_by_region.size(), size_t(30 * 5 + 3));
  EXPECT_TRUE(p->has_sample);
}

TEST(CudaCodegen, DiskCacheReturnsTheSameCubins) {
  if (Status st = cuda::nvrtc_status(); !st.ok()) GTEST_SKIP() << st.message();
  const std::string src =
      "extern \"C\" __global__ void kl_scale(float* x, float s) { x[threadIdx.x] *= s; }\n";
  cuda::CompileOptions co;
  co.archs = {80};
  co.cache_dir = test::temp_dir() + "/cuda-cache";
  auto a = cuda::compile_module(src, "scale", co);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_FALSE(a->from_cache);
  auto b = cuda::compile_module(src, "scale", co);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_TRUE(b->from_cache);
  EXPECT_EQ(a->cubins.at(80), b->cubins.at(80));
  EXPECT_EQ(a->ptx, b->ptx);
  EXPECT_EQ(a->key, b->key);
  // Another source is another key.
  auto c = cuda::compile_module(src + "// changed\n", "scale", co);
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_FALSE(c->from_cache);
  EXPECT_NE(c->key, a->key);
}

TEST(CudaCodegen, CompileErrorsCarryNvrtcsLog) {
  if (Status st = cuda::nvrtc_status(); !st.ok()) GTEST_SKIP() << st.message();
  cuda::CompileOptions co;
  co.archs = {80};
  co.cache = false;
  auto r =
      cuda::compile_module("extern \"C\" __global__ void k() { undefined_name(); }\n", "bad", co);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("undefined_name"), std::string::npos) << r.message();
}

TEST(CudaCodegen, ParsesPtxasReport) {
  const std::string log =
      "ptxas info    : Compiling entry function 'kl_a' for 'sm_90'\n"
      "ptxas info    : Function properties for kl_a\n"
      "    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem\n";
  auto r = cuda::parse_ptxas_log(log, 90);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].entry, "kl_a");
  EXPECT_EQ(r[0].registers, 40);
  EXPECT_EQ(r[0].stack, 8);
  EXPECT_EQ(r[0].spill_stores, 4);
  EXPECT_EQ(r[0].spill_loads, 12);
  EXPECT_EQ(r[0].smem, 2048);
}

TEST(CudaCodegen, ParsesCudaTargets) {
  EXPECT_EQ(*cuda::parse_cuda_target("cuda"), (std::vector<int>{80, 90}));
  EXPECT_EQ(*cuda::parse_cuda_target("cuda:sm_90"), (std::vector<int>{90}));
  EXPECT_EQ(*cuda::parse_cuda_target("cuda:sm_80,sm_90"), (std::vector<int>{80, 90}));
  for (const char* bad : {"cpu", "cuda:", "cuda:90", "cuda:sm_", "cuda:sm_9x", "cuda:sm_90,"})
    EXPECT_FALSE(cuda::parse_cuda_target(bad).ok()) << bad;
}

// What `kiln compile --target cuda:...` stores: the program and its code for the asked archs.
TEST(CudaCodegen, CompileGraphGivesPtxAndCubins) {
  if (Status st = cuda::nvrtc_status(); !st.ok()) GTEST_SKIP() << st.message();
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  auto g = fused_graph(**file, 1);
  ASSERT_TRUE(g);
  cuda::CompileOptions co;
  co.archs = {90};
  co.cache_dir = test::temp_dir() + "/cuda-cache-graph";
  auto b = cuda::compile_graph(*g, co);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(b->module.cubins.size(), 1u);
  EXPECT_TRUE(b->module.cubins.count(90));
  EXPECT_FALSE(b->module.ptx.empty());
  EXPECT_FALSE(b->program.kernels_by_region.empty());
  EXPECT_FALSE(b->module.key.empty());
}

// `kiln run --device cuda` on a machine without a GPU: one line naming the reason, exit non-zero;
// `--device auto` says so in one line and runs on the CPU.
TEST(CudaCli, DeviceCudaWithoutGpuFailsWithOneLine) {
  if (runtime::cuda_status().ok()) GTEST_SKIP() << "a CUDA device is present";
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto r = test::run_kiln("run " + path + " -p hi -n 1 --ctx 64 --device cuda");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto a = test::run_kiln("run " + path + " -p hi -n 1 --ctx 64 --device auto --backend interp -q");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("running on the CPU"), std::string::npos) << a.err;
}

TEST(CudaCli, IrEmitCudaPrintsTheModule) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto r = test::run_kiln("ir " + path + " --ctx 64 --emit cuda");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("__global__"), std::string::npos);
  EXPECT_NE(r.out.find("blk29.k4"), std::string::npos);
  auto bad = test::run_kiln("ir " + path + " --emit ptx");
  EXPECT_NE(bad.exit_code, 0);
}

}  // namespace
}  // namespace kiln
