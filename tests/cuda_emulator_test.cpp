// The CUDA backend's device-side logic on the CPU emulator (runtime/cuda_emulator.h): the
// generated kernels (their host flavor, same source) against the reference interpreter on random
// inputs, the executor's argument binding, arena offsets, KV cache and CUDA-graph capture/replay,
// and kiln-gpu-check's whole flow. Also: without libcuda, one clear line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "frontends/gguf/make_model.h"
#include "passes/pass_manager.h"
#include "runtime/constant_store.h"
#include "runtime/cuda_check.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_emulator.h"
#include "runtime/cuda_executor.h"
#include "runtime/cuda_kernel_check.h"
#include "runtime/interpreter.h"
#include "support/test_support.h"
#include "support/tiny_model.h"

// NVRTC (dlopen'ed, not instrumented) keeps process-lifetime allocations that LeakSanitizer would
// report as leaks of this test; they are not kiln's.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libnvrtc\nleak:libnvrtc-builtins\n";
}

namespace kiln {
namespace {

using test::TinyModel;

TinyModel make(const std::string& preset, DType quant) {
  return test::make_tiny_model(preset, quant, 5, /*write=*/true);
}

struct Built {
  lower::GraphSpec spec;
  std::unique_ptr<ir::Graph> graph;
  passes::MemoryPlan plan;
};

Built build(const gguf::GgufFile& file, int tokens, int batch = 1) {
  Built b;
  b.spec.tokens = tokens;
  b.spec.batch = batch;
  b.spec.ctx = 64;
  auto g = lower::lower_gguf(file, b.spec);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return b;
  passes::PassContext ctx;
  Status st =
      passes::run_pipeline("canonicalize,merge-parallel-matmuls,fuse,plan-memory", **g, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ctx.plan.has_value());
  b.graph = std::move(*g);
  if (ctx.plan) b.plan = std::move(*ctx.plan);
  return b;
}

// The interpreter reproduces ggml's Q4_K kernels only for row counts in whole groups of 8 (what
// llama.cpp repacks); the tiny presets' vocabularies are not, so their Q4_K logits are summed
// in double there and differ from the kernels' f32 by ~1e-7.
bool inexact_logits(const runtime::RegionCheck& rc) {
  return rc.region.rfind("logits", 0) == 0 && rc.err < 1e-6;
}

void expect_kernels_match(const std::string& preset, DType quant, int tokens, int real = 0,
                          int batch = 1, int real_rows = 0, int position = 11) {
  TinyModel m = make(preset, quant);
  ASSERT_TRUE(m.file);
  auto dev = runtime::make_emulated_device();
  runtime::GgufWeights weights(*m.file);
  {
    SCOPED_TRACE(preset + " tokens " + std::to_string(tokens) + " real " + std::to_string(real));
    Built b = build(*m.file, tokens, batch);
    ASSERT_TRUE(b.graph);
    runtime::KernelCheckOptions o;
    o.real_rows = real_rows;
    o.seed = 3 + uint32_t(tokens);
    o.position = position;
    o.real_tokens = real;
    auto rep = runtime::check_kernels(*dev, *b.graph, weights, o);
    ASSERT_TRUE(rep.ok()) << rep.message();
    for (const runtime::RegionCheck& rc : rep->regions) {
      EXPECT_TRUE(rc.ok) << rc.region << " " << rc.entry << " " << rc.kind << ": " << rc.err << " "
                         << rc.note;
      // The kernels round as the interpreter does (ggml's order, docs/cuda.md): bit for bit.
      if (!inexact_logits(rc)) {
        EXPECT_EQ(rc.err, 0.0) << rc.region << " " << rc.kind << " " << rc.note;
      }
    }
    EXPECT_FALSE(rep->regions.empty());
    EXPECT_FALSE(rep->states.empty());  // the KV write was checked too
    EXPECT_TRUE(rep->ok()) << rep->summary();
  }
}

// Decode (1 token) and prefill (5 tokens) graphs, one test each so each stays short.
TEST(CudaEmulator, TinyLlamaQ4_0DecodeKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-llama", DType::Q4_0, 1);
}
TEST(CudaEmulator, TinyLlamaQ4_0PrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-llama", DType::Q4_0, 5);
}
TEST(CudaEmulator, TinyQwen3Q6_KDecodeKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-qwen3", DType::Q6_K, 1);
}
TEST(CudaEmulator, TinyQwen3Q6_KPrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-qwen3", DType::Q6_K, 5);
}
TEST(CudaEmulator, TinyGemma3Q4_KDecodeKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-gemma3", DType::Q4_K, 1);
}
TEST(CudaEmulator, TinyGemma3Q4_KPrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-gemma3", DType::Q4_K, 5);
}
// A prompt shorter than its bucket: ggml picks its K-quant kernels by the real token count (5
// of 12: Q6_K's vector kernel, not the tiled one; 6 of 8: Q4_K's gemm for rows 0-3 only), and
// the kernels read that count at run time.
TEST(CudaEmulator, TinyQwen3Q6_KPaddedPrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-qwen3", DType::Q6_K, 12, 5);
}
TEST(CudaEmulator, TinyGemma3Q4_KPaddedPrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-gemma3", DType::Q4_K, 8, 6);
}
// A decode batch of three with two stopped sequences (padding rows): one real token, so
// attention sums in ggml_vec_dot_f16's order, read from the token-count cell at run time. At
// position 50: over fewer than 16 cells the two orders' value sums would agree.
TEST(CudaEmulator, TinyQwen3Q8_0DecodeBatchWithStoppedRowsMatchesTheInterpreter) {
  expect_kernels_match("tiny-qwen3", DType::Q8_0, 1, 0, 3, 1, 50);
}
TEST(CudaEmulator, TinyQwen2Q8_0DecodeKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-qwen2", DType::Q8_0, 1);
}
TEST(CudaEmulator, TinyQwen2Q8_0PrefillKernelsMatchTheInterpreter) {
  expect_kernels_match("tiny-qwen2", DType::Q8_0, 5);
}

// The interpreter and a CUDA executor (on the emulator) over the same decode graph of a tiny
// model: one step runs both on the same inputs.
struct DecodeRig {
  TinyModel m;
  std::unique_ptr<runtime::CudaDevice> dev = runtime::make_emulated_device();
  std::unique_ptr<runtime::GgufWeights> weights;
  Built ref;  // the interpreter's graph, which it references
  runtime::StateStore states;
  std::unique_ptr<runtime::Interpreter> interp;
  std::unique_ptr<runtime::ConstantStore> host_constants;
  std::unique_ptr<runtime::DeviceConstants> constants;
  std::unique_ptr<runtime::DeviceStates> dstates;
  std::unique_ptr<runtime::CudaExecutor> exec;

  // Builds everything; a failure is a test failure and leaves `exec` null.
  DecodeRig(const std::string& preset, DType quant, int batch) : m(make(preset, quant)) {
    init(batch);
  }
  void init(int batch) {
    ASSERT_TRUE(m.file);
    weights = std::make_unique<runtime::GgufWeights>(*m.file);
    ref = build(*m.file, 1, batch);
    Built b = build(*m.file, 1, batch);
    ASSERT_TRUE(ref.graph && b.graph);
    auto in = runtime::Interpreter::create(*ref.graph, *weights, states);
    ASSERT_TRUE(in.ok()) << in.message();
    interp = std::move(*in);
    host_constants = std::make_unique<runtime::ConstantStore>(*weights);
    constants = std::make_unique<runtime::DeviceConstants>(*dev, *weights, *host_constants);
    dstates = std::make_unique<runtime::DeviceStates>(*dev);
    runtime::CudaContext cx{dev.get(), constants.get(), dstates.get(), {}};
    auto e = runtime::CudaExecutor::create(b.spec, std::move(b.graph), std::move(b.plan), cx);
    ASSERT_TRUE(e.ok()) << e.message();
    exec = std::move(*e);
  }

  // One step on both; the interpreter's logits, and the executor's relative error against them
  // (NaN when a run fails, which is a test failure too).
  std::vector<float> step(const std::vector<int32_t>& tokens, const std::vector<int32_t>& pos,
                          const std::vector<int32_t>& seq, double* err) {
    *err = std::nan("");
    for (auto* in : {&tokens, &pos, &seq}) {
      const char* name = in == &tokens ? "tokens" : in == &pos ? "pos" : "seq";
      EXPECT_TRUE(interp->set_input(name, *in).ok()) << name;
      EXPECT_TRUE(exec->set_input(name, *in).ok()) << name;
    }
    EXPECT_TRUE(interp->run().ok());
    auto want = interp->output("logits");
    EXPECT_TRUE(want.ok());
    Status st = exec->run();
    EXPECT_TRUE(st.ok()) << st.message();
    auto got = exec->output("logits");
    EXPECT_TRUE(got.ok()) << got.message();
    if (!want.ok() || !got.ok() || !st.ok() || got->size() != want->size()) return {};
    *err = runtime::relative_error({got->begin(), got->end()}, {want->begin(), want->end()});
    return {want->begin(), want->end()};
  }
};

// The first greatest of row r's `vocab` logits.
int32_t argmax_row(const std::vector<float>& logits, size_t r, size_t vocab) {
  size_t best = 0;
  for (size_t i = 1; i < vocab; ++i)
    if (logits[r * vocab + i] > logits[r * vocab + best]) best = i;
  return int32_t(best);
}

// Decode on the executor (graph captured once, replayed) against the interpreter, token by
// token, with the device argmax and the fed-back token.
TEST(CudaEmulator, ExecutorDecodeMatchesInterpreterAndReplaysOneGraph) {
  DecodeRig rig("tiny-llama", DType::Q8_0, 1);
  ASSERT_TRUE(rig.exec);
  auto& e = *rig.exec;
  auto& dev = rig.dev;
  const runtime::EmulatorStats before = runtime::emulator_stats(*dev);
  int32_t tok = 42;
  const int steps = 6;
  for (int s = 0; s < steps; ++s) {
    double err = 0;
    const std::vector<float> want = rig.step({tok}, {s}, {0}, &err);
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(err, 0.0) << "step " << s;  // rounded as the interpreter, bit for bit
    const int32_t best = argmax_row(want, 0, want.size());
    auto toks = e.tokens();
    ASSERT_TRUE(toks.ok()) << toks.message();
    EXPECT_EQ((*toks)[0], best) << "device argmax, step " << s;
    tok = best;
  }
  EXPECT_EQ(e.replay().captures(), 1);
  EXPECT_EQ(e.replay().replays(), steps);
  const runtime::EmulatorStats after = runtime::emulator_stats(*dev);
  EXPECT_EQ(after.captures - before.captures, 1);
  EXPECT_EQ(after.graph_launches - before.graph_launches, steps);
  EXPECT_EQ(after.launches - before.launches, int64_t(steps * e.launches_per_run()));

  // Feedback: the sample kernel writes the token and advances pos on the device.
  ASSERT_TRUE(e.set_feedback(true).ok());
  auto first = e.step();
  ASSERT_TRUE(first.ok()) << first.message();
  ASSERT_TRUE(e.step().ok());
  EXPECT_EQ(e.replay().captures(), 1);  // the feedback graph, captured once

  // --no-cuda-graph: direct launches, no more captures.
  e.set_cuda_graph(false);
  const runtime::EmulatorStats mid = runtime::emulator_stats(*dev);
  ASSERT_TRUE(e.step().ok());
  const runtime::EmulatorStats end = runtime::emulator_stats(*dev);
  EXPECT_EQ(end.captures, mid.captures);
  EXPECT_EQ(end.graph_launches, mid.graph_launches);
  EXPECT_EQ(end.launches - mid.launches, int64_t(e.launches_per_run()));
}

// A decode batch of two sequences on the executor, the graph replayed: after step 2 sequence 1
// stops and runs as a padding row (position -1), so the step has one real token, which the
// executor writes to the token-count cell the kernels read, without capturing the graph again.
// Logits equal the interpreter's batch bit for bit. (The tiny model's logits do not show which
// order attention took: its f16 probabilities and q8 activations absorb a last-bit difference.
// The kernel checks above and tests/cuda_attention_exact_test.cpp compare attention itself.)
TEST(CudaEmulator, ExecutorDecodeBatchCountsOnlyLiveSequences) {
  DecodeRig rig("tiny-qwen3", DType::Q8_0, 2);
  ASSERT_TRUE(rig.exec);
  auto& e = *rig.exec;
  std::vector<int32_t> tok{42, 7};
  const int steps = 5;
  for (int s = 0; s < steps; ++s) {
    // From position 40 (the cache rows before it are zeros on both sides): with a few cells,
    // each lane of the products would hold at most one and the two orders would agree.
    double err = 0;
    const std::vector<float> want = rig.step(tok, {40 + s, s < 2 ? 40 + s : -1}, {0, 1}, &err);
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(err, 0.0) << "step " << s;
    for (size_t r = 0; r < 2; ++r) tok[r] = argmax_row(want, r, want.size() / 2);
  }
  EXPECT_EQ(e.replay().captures(), 1);
  EXPECT_EQ(e.replay().replays(), steps);
}

TEST(CudaEmulator, GpuCheckFlowPassesOnTheEmulator) {
  TinyModel m = make("tiny-qwen3", DType::Q8_0);
  ASSERT_TRUE(m.file);
  std::vector<std::string> args = {"kiln-gpu-check",
                                   "--emulate",
                                   "--no-bench",
                                   "--steps",
                                   "4",
                                   "--ctx",
                                   "64",
                                   "--prefill",
                                   "4",
                                   "--check-prefill",
                                   "3",
                                   "--decode-steps",
                                   "3",
                                   m.path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  testing::internal::CaptureStdout();
  const int rc = runtime::gpu_check_main(int(argv.size()), argv.data());
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("decode vs CPU: 4 steps"), std::string::npos) << out;
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
}

TEST(CudaDriver, MissingLibraryIsOneClearLine) {
  Status st = runtime::cuda_status("/nonexistent/libcuda.so.1");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent/libcuda.so.1"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << st.message();
  const std::string line = runtime::cuda_fallback_message(st);
  EXPECT_NE(line.find("running on the CPU"), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace kiln
