// The CUDA attention kernel in ggml's order (codegen/cuda/emit_attention.cpp, act=f16, no softcap,
// head dim % 16 == 0) on the CPU emulator: bit-identical to the reference interpreter's
// ggml_attention_row (runtime/interp_attention.cpp) for one token in the batch (vec_dot_f16's
// order) and several (tinyBLAS's), grouped heads, head dims with and without vec_dot_f16's f64
// tail (80) or with no 64-lane chain at all (32), Gemma 3's 256-wide heads, sliding windows whose
// first key is not aligned to 16 or 64 cells, padding rows, positions past the cache, f16 / bf16 /
// f32 caches, contexts long enough for the scores to leave shared memory, and a decode batch with
// one real row among padding rows (vec_dot_f16's order: the kernel picks by the real token count).
// With NVRTC: the same kernels compile for sm_80 and sm_90 without spills.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"
#include "ir/half.h"
#include "ir/parser.h"
#include "runtime/cuda_emulator.h"
#include "runtime/cuda_executor.h"
#include "runtime/cuda_kernel_check.h"
#include "runtime/interpreter.h"
#include "runtime/weights.h"

namespace kiln {
namespace {

struct Case {
  const char* kv;
  int64_t B, T, HQ, HKV, D, C, window;
  int position;  // of the first token (row t: position + t)
  double scale = 0.125;
  const char* expect = "ggml order";  // in the kernel's summary
  int real_rows = 0;  // > 0: only the first `real_rows` batch rows are real, the rest padding
};

std::string attention_graph(const Case& c) {
  auto s = [](int64_t v) { return std::to_string(v); };
  const std::string q = "f32[" + s(c.B) + ", " + s(c.T) + ", " + s(c.HQ) + ", " + s(c.D) + "]";
  const std::string cache =
      std::string(c.kv) + "[2, " + s(c.C) + ", " + s(c.HKV) + ", " + s(c.D) + "]";
  const std::string pos = "i32[" + s(c.B) + ", " + s(c.T) + "]", seq = "i32[" + s(c.B) + "]";
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.17g", c.scale);
  return "graph t {\n"
         "  %q = input {name=\"q\"} : " +
         q +
         "\n"
         "  %pos = input {name=\"pos\"} : " +
         pos +
         "\n"
         "  %seq = input {name=\"seq\"} : " +
         seq +
         "\n"
         "  %ck = state {name=\"ck\"} : " +
         cache +
         "\n"
         "  %cv = state {name=\"cv\"} : " +
         cache +
         "\n"
         "  %r = region %q, %ck, %cv, %pos, %seq {name=\"attn\"} : " +
         q +
         " {\n"
         "    %a0 = arg {index=0} : " +
         q +
         "\n"
         "    %a1 = arg {index=1} : " +
         cache +
         "\n"
         "    %a2 = arg {index=2} : " +
         cache +
         "\n"
         "    %a3 = arg {index=3} : " +
         pos +
         "\n"
         "    %a4 = arg {index=4} : " +
         seq +
         "\n"
         "    %y = attention %a0, %a1, %a2, %a3, %a4 {scale=" +
         scale + ", window=" + s(c.window) + ", act=f16} : " + q +
         "\n"
         "    yield %y\n"
         "  }\n"
         "  output %r {name=\"y\"}\n"
         "}\n";
}

const Case kCases[] = {
    // kv     B  T  HQ HKV  D    C     win  position
    {"f16", 1, 1, 6, 2, 64, 512, 0, 300},           // SmolLM2-like decode: 4 threads per output
    {"f16", 1, 1, 4, 1, 256, 1024, 512, 900},       // Gemma 3 window: first key 389
    {"f16", 1, 1, 4, 1, 256, 1024, 0, 1000, 1.0},   // Gemma 3 global, peaked softmax
    {"f16", 1, 1, 4, 2, 80, 512, 0, 200},           // vec_dot_f16's f64 tail
    {"f16", 1, 1, 4, 2, 32, 256, 0, 100},           // no 64-lane chain: all tail
    {"f16", 1, 1, 4, 2, 128, 8192, 0, 8000},        // long context, scores in shared memory
    {"f16", 1, 1, 2, 1, 64, 16384, 0, 12000},       // longer: scores in scratch
    {"f16", 1, 1, 4, 2, 64, 64, 8, 100},            // past the cache with a window: no key
    {"f16", 1, 1, 4, 2, 64, 64, 0, 100},            // past the cache: every key
    {"f16", 1, 1, 4, 2, 64, 512, 0, -1},            // a padding row: key 0
    {"bf16", 1, 1, 4, 2, 64, 256, 0, 150},          // bf16 cache
    {"f32", 1, 1, 4, 2, 64, 256, 0, 150},           // f32 cache
    {"f16", 1, 3, 6, 2, 64, 512, 0, -1},            // prefill with padding rows (-1, 0, 1)
    {"f16", 1, 4, 4, 2, 128, 512, 37, 90},          // prefill, window 37 (first key 54)
    {"f16", 1, 5, 4, 1, 256, 1024, 512, 700, 1.0},  // prefill, Gemma 3 window
    {"f16", 1, 2, 4, 2, 80, 512, 0, 333},           // prefill, D = 80
    {"f16", 2, 1, 6, 2, 64, 512, 0, 250},           // two sequences, one token each: tinyBLAS
    {"f16", 2, 1, 6, 2, 64, 512, 0, 400},           // the same, past 256 keys: split blocks
    {"f16", 1, 48, 2, 1, 32, 12288, 0, 11000, 0.125, "scores in scratch"},  // long prefill
    // A decode step of several sequences, all but one stopped (padding rows): one real token, so
    // vec_dot_f16's order, as llama.cpp's batch of that one token.
    {"f16", 4, 1, 6, 2, 64, 512, 0, 200, 0.125, "by real tokens", 1},
    {"f16", 4, 1, 4, 1, 256, 1024, 512, 700, 1.0, "by real tokens", 1},  // Gemma 3 window
    {"f16", 2, 1, 6, 2, 64, 512, 0, 400, 0.125, "by real tokens", 1},    // split blocks
    {"f16", 4, 1, 6, 2, 80, 512, 0, 300, 0.125, "by real tokens", 2},    // two real: tinyBLAS
    // Outside the interpreter's exact path: the flash kernel (within tolerance, checked below).
    {"f16", 1, 1, 4, 2, 72, 256, 0, 100, 0.125, "splits"},
};

TEST(CudaAttentionExact, BitIdenticalToTheInterpreterOnTheEmulator) {
  auto dev = runtime::make_emulated_device();
  for (const Case& c : kCases) {
    const std::string text = attention_graph(c);
    SCOPED_TRACE(std::string(c.kv) + " B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) +
                 " D=" + std::to_string(c.D) + " C=" + std::to_string(c.C) +
                 " window=" + std::to_string(c.window) + " pos=" + std::to_string(c.position));
    auto g = ir::parse(text);
    ASSERT_TRUE(g.ok()) << g.message();
    auto p = cuda::generate(**g);
    ASSERT_TRUE(p.ok()) << p.message();
    ASSERT_EQ(p->kernels_by_region.size(), 1u);
    EXPECT_NE(p->kernels_by_region[0].summary.find(c.expect), std::string::npos)
        << p->kernels_by_region[0].summary;
    runtime::MemoryWeights w;
    runtime::KernelCheckOptions o;
    o.position = c.position;
    o.real_rows = c.real_rows;
    o.seed = 11;
    auto rep = runtime::check_kernels(*dev, **g, w, o);
    ASSERT_TRUE(rep.ok()) << rep.message();
    ASSERT_EQ(rep->regions.size(), 1u);
    const runtime::RegionCheck& rc = rep->regions[0];
    EXPECT_EQ(rc.kind, "attention");
    EXPECT_TRUE(rc.ok) << rc.err << " " << rc.note;
    // Bit for bit, but for the flash kernel ("splits"): that one only within tolerance.
    if (std::string(c.expect) != "splits") {
      EXPECT_EQ(rc.err, 0.0);
    }
  }
}

// Decode with split blocks (past 256 keys) and one block (up to 256) launched again and again on
// one scratch buffer, as a captured graph does: each launch equal to the interpreter, and the
// per-unit counters back at zero after every launch.
TEST(CudaAttentionExact, SplitBlocksLeaveTheirScratchReusable) {
  const Case c{"f16", 1, 1, 6, 2, 64, 1024, 0, 0};
  auto g = ir::parse(attention_graph(c));
  ASSERT_TRUE(g.ok()) << g.message();
  auto p = cuda::generate(**g);
  ASSERT_TRUE(p.ok()) << p.message();
  const cuda::KernelSpec& ks = p->kernels_by_region[0];
  ASSERT_GT(ks.grid[1], 1u) << ks.summary;
  ASSERT_GT(ks.scratch_bytes, 0u);
  const uint64_t counters = uint64_t(c.HQ) * 16;  // 4 per unit, at the end of the scratch

  auto dev = runtime::make_emulated_device();
  auto image = runtime::build_module_image(*p, *dev);
  ASSERT_TRUE(image.ok()) << image.message();
  auto mod = dev->load_module(*image);
  ASSERT_TRUE(mod.ok()) << mod.message();
  auto fn = dev->function(*mod, ks.entry);
  ASSERT_TRUE(fn.ok()) << fn.message();

  runtime::MemoryWeights w;
  runtime::StateStore states;
  auto interp = runtime::Interpreter::create(**g, w, states);
  ASSERT_TRUE(interp.ok()) << interp.message();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t cache_elems = 2 * c.C * c.HKV * c.D, q_elems = c.HQ * c.D;
  std::vector<runtime::DevPtr> bufs;
  auto alloc = [&](size_t bytes) {
    auto ptr = dev->alloc(bytes);
    EXPECT_TRUE(ptr.ok());
    bufs.push_back(ptr.ok() ? *ptr : 0);
    return bufs.back();
  };
  const runtime::DevPtr dq = alloc(size_t(q_elems) * 4), dk = alloc(size_t(cache_elems) * 2),
                        dv = alloc(size_t(cache_elems) * 2), dpos = alloc(4), dseq = alloc(4),
                        dy = alloc(size_t(q_elems) * 4), dscratch = alloc(ks.scratch_bytes);
  ASSERT_TRUE(dev->memset_async(dscratch, 0, ks.scratch_bytes).ok());
  for (const char* name : {"ck", "cv"}) {
    const ir::TensorType t{DType::F16, {2, c.C, c.HKV, c.D}};
    auto st = states.get(name, t);
    ASSERT_TRUE(st.ok()) << st.message();
    std::vector<uint16_t> h(static_cast<size_t>(cache_elems));
    for (uint16_t& x : h) x = f32_to_f16(u(rng));
    std::memcpy(st->data, h.data(), h.size() * 2);
    ASSERT_TRUE(dev->upload(name[1] == 'k' ? dk : dv, h.data(), h.size() * 2).ok());
  }
  std::vector<void*> args = {reinterpret_cast<void*>(dq),      reinterpret_cast<void*>(dk),
                             reinterpret_cast<void*>(dv),      reinterpret_cast<void*>(dpos),
                             reinterpret_cast<void*>(dseq),    reinterpret_cast<void*>(dy),
                             reinterpret_cast<void*>(dscratch)};
  args.resize(cuda::kMaxArgs, nullptr);
  for (int32_t pos : {700, 100, 1023, 300, 2000, 257, 256, 513}) {
    SCOPED_TRACE("pos " + std::to_string(pos));
    std::vector<float> q(static_cast<size_t>(q_elems));
    for (float& x : q) x = u(rng);
    const int32_t seq = 1;
    ASSERT_TRUE((*interp)->set_input("q", std::span<const float>(q)).ok());
    ASSERT_TRUE((*interp)->set_input("pos", std::span<const int32_t>(&pos, 1)).ok());
    ASSERT_TRUE((*interp)->set_input("seq", std::span<const int32_t>(&seq, 1)).ok());
    ASSERT_TRUE((*interp)->run().ok());
    auto want = (*interp)->output("y");
    ASSERT_TRUE(want.ok()) << want.message();
    ASSERT_TRUE(dev->upload(dq, q.data(), q.size() * 4).ok());
    ASSERT_TRUE(dev->upload(dpos, &pos, 4).ok());
    ASSERT_TRUE(dev->upload(dseq, &seq, 4).ok());
    runtime::LaunchDims d;
    std::copy(ks.grid, ks.grid + 3, d.grid);
    d.block = ks.block;
    ASSERT_TRUE(dev->launch(*fn, d, args.data(), sizeof(void*) * args.size(), false).ok());
    ASSERT_TRUE(dev->synchronize().ok());
    std::vector<float> got(static_cast<size_t>(q_elems));
    ASSERT_TRUE(dev->download(got.data(), dy, got.size() * 4).ok());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], (*want)[i]) << i;
    std::vector<uint8_t> cnt(counters);
    ASSERT_TRUE(dev->download(cnt.data(), dscratch + ks.scratch_bytes - counters, counters).ok());
    for (uint8_t b : cnt) ASSERT_EQ(b, 0);
  }
  for (runtime::DevPtr b : bufs) dev->free(b);
}

TEST(CudaAttentionExact, CompilesForSm80AndSm90WithoutSpills) {
  if (Status st = cuda::nvrtc_status(); !st.ok()) GTEST_SKIP() << st.message();
  for (const Case& c : kCases) {
    auto g = ir::parse(attention_graph(c));
    ASSERT_TRUE(g.ok()) << g.message();
    auto p = cuda::generate(**g);
    ASSERT_TRUE(p.ok()) << p.message();
    cuda::CompileOptions co;
    co.cache = false;
    auto m = cuda::compile_module(p->source, p->graph_name, co);
    ASSERT_TRUE(m.ok()) << m.message();
    for (const cuda::KernelResources& r : m->resources) {
      EXPECT_EQ(r.spill_stores, 0) << r.entry << " sm_" << r.arch << " D=" << c.D;
      EXPECT_LE(r.registers, 255) << r.entry;
      std::printf("%s D=%lld B=%lld T=%lld C=%lld sm_%d: %d registers, %d B stack, %d B spilled\n",
                  c.kv, (long long)c.D, (long long)c.B, (long long)c.T, (long long)c.C, r.arch,
                  r.registers, r.stack, r.spill_stores);
    }
  }
}

}  // namespace
}  // namespace kiln
