// CPU code generation: hand-built regions of every kind, compiled with LLVM and run on random
// inputs at odd and even sizes on 1, 2 and 3 threads, compared with the reference interpreter
// running the same region (tests/cpu_codegen_test_util.h).
#include <gtest/gtest.h>

#include <string>

#include "codegen/cpu/microkernels.h"
#include "cpu_codegen_test_util.h"
#include "frontends/gguf/lower_common.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

using test::check_graph;
using test::CheckOptions;
using test::parse_graph;

// Replaces {KEY} by values.
std::string fill(std::string s, const std::map<std::string, std::string>& kv) {
  for (const auto& [k, v] : kv) {
    const std::string key = "{" + k + "}";
    for (size_t p; (p = s.find(key)) != std::string::npos;) s.replace(p, key.size(), v);
  }
  return s;
}
std::string str(int64_t v) {
  return std::to_string(v);
}

#define REQUIRE_LLVM() \
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";

test::CheckReport check_text(const std::string& text, CheckOptions o = {}) {
  auto tg = parse_graph(text);
  if (!tg.graph) return {};
  return check_graph(*tg.graph, tg.weights, o);
}

TEST(CpuCodegen, TargetNames) {
  auto t = cpu::Target::parse("aarch64");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->arch(), "aarch64");
  EXPECT_EQ(cpu::Target::parse("x86-64-v4")->cpu, "x86-64-v4");
  EXPECT_FALSE(cpu::Target::parse("riscv64-unknown-linux-gnu").ok());
  EXPECT_EQ(cpu::Target{}.str(), "host");
}

TEST(CpuCodegen, WithoutLlvmEveryEntryPointSaysSo) {
  if (cpu::llvm_available()) GTEST_SKIP() << "built with LLVM";
  ir::Graph g;
  auto p = cpu::jit_compile(g);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("without LLVM"), std::string::npos) << p.message();
  EXPECT_FALSE(cpu::emit_object(g, cpu::Target{}).ok());
}

TEST(CpuCodegen, ElementwiseBroadcast) {
  REQUIRE_LLVM();
  for (int64_t n : {37, 64, 600}) {
    const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[3, {N}]
  %y = input {name="y"} : f32[{N}]
  %z = input {name="z"} : f32[3, 1]
  %r0, %r1 = region %x, %y, %z {name="ew"} : f32[3, {N}], f32[3, {N}] {
    %a = arg {index=0} : f32[3, {N}]
    %b = arg {index=1} : f32[{N}]
    %c = arg {index=2} : f32[3, 1]
    %s = add %a, %b : f32[3, {N}]
    %m = mul %s, %c : f32[3, {N}]
    %q = silu %m : f32[3, {N}]
    %g = gelu %q {approx="tanh"} : f32[3, {N}]
    %e0 = gelu %s {approx="erf"} : f32[3, {N}]
    %e1 = gelu %m {approx="tanh_f16"} : f32[3, {N}]
    %e = add %e0, %e1 : f32[3, {N}]
    %d = div %g, %c : f32[3, {N}]
    %t = tanh %d : f32[3, {N}]
    %x2 = exp %t : f32[3, {N}]
    %w = sub %x2, %e : f32[3, {N}]
    %v = scale %w {scale=0.5} : f32[3, {N}]
    yield %v, %s
  }
  output %r0 {name="o0"}
  output %r1 {name="o1"}
})",
                               {{"N", str(n)}});
    auto rep = check_text(g);
    EXPECT_EQ(rep.regions, 3);
  }
}

TEST(CpuCodegen, DataMovement) {
  REQUIRE_LLVM();
  const std::string g = R"(graph t {
  %x = input {name="x"} : f32[2, 5, 6]
  %y = input {name="y"} : f32[2, 3, 6]
  %i = input {name="i"} : i32[4]
  %h = input {name="h"} : f16[7, 6]
  %r0, %r1, %r2 = region %x, %y, %i, %h {name="mv"} : f32[5, 2, 6], f32[2, 4, 6], f32[4, 6] {
    %a = arg {index=0} : f32[2, 5, 6]
    %b = arg {index=1} : f32[2, 3, 6]
    %c = arg {index=2} : i32[4]
    %t = arg {index=3} : f16[7, 6]
    %p = permute %a {perm=[1, 0, 2]} : f32[5, 2, 6]
    %q = concat %a, %b {axis=1} : f32[2, 8, 6]
    %s = slice %q {axis=1, start=3, size=4} : f32[2, 4, 6]
    %v = view %s {offset=6, shape=[2, 4, 3]} : f32[2, 4, 3]
    %u = reshape %s {shape=[2, 4, 6]} : f32[2, 4, 6]
    %g = get_rows %t, %c : f32[4, 6]
    %e = cast %g {to=f16} : f16[4, 6]
    %f = cast %e {to=f32} : f32[4, 6]
    yield %p, %u, %f
  }
  output %r0 {name="o0"}
  output %r1 {name="o1"}
  output %r2 {name="o2"}
})";
  CheckOptions o;
  o.ints["i"] = {3, 0, 6, 2};
  auto rep = check_text(g, o);
  EXPECT_EQ(rep.regions, 3);
}

TEST(CpuCodegen, NormsSoftmaxArgmax) {
  REQUIRE_LLVM();
  for (int64_t n : {33, 64, 576}) {
    const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[3, {N}]
  %m = input {name="m"} : f32[{N}]
  %w = weight {name="w"} : f32[{N}]
  %r0, %r1, %r2, %r3 = region %x, %w, %m {name="red"} : f32[3, {N}], f32[3, {N}], f32[3, {N}], i32[3] {
    %a = arg {index=0} : f32[3, {N}]
    %b = arg {index=1} : f32[{N}]
    %k = arg {index=2} : f32[{N}]
    %n = rms_norm %a {eps=1e-06} : f32[3, {N}]
    %y = mul %n, %b : f32[3, {N}]
    %h = add %y, %a : f32[3, {N}]
    %n2 = norm %h {eps=1e-05} : f32[3, {N}]
    %s = softmax %h, %k {scale=0.3, softcap=2.0} : f32[3, {N}]
    %am = argmax %n2 : i32[3]
    yield %h, %n2, %s, %am
  }
  output %r0 {name="o0"}
  output %r1 {name="o1"}
  output %r2 {name="o2"}
  output %r3 {name="o3"}
})",
                               {{"N", str(n)}});
    auto rep = check_text(g);
    EXPECT_EQ(rep.regions, 3);
  }
}

// rms_norm prologue, product, bias and residual epilogue: every weight type, library path (f32
// activations, tight) and microkernel path (8-bit activations) for every ISA this CPU runs.
TEST(CpuCodegen, ContractionEveryWeightType) {
  REQUIRE_LLVM();
  const DType types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,   DType::Q4_1,
                         DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,   DType::Q3_K,
                         DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};
  for (DType t : types) {
    const int64_t K = dtype_info(t).block_elems == 256 ? 512 : 96;
    std::vector<DType> acts{DType::F32};
    if (lower::ggml_act_type(t) != DType::F32) acts.push_back(lower::ggml_act_type(t));
    for (DType act : acts) {
      for (int64_t M : {1, 5}) {
        for (int64_t N : {45, 128}) {
          const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[{M}, {K}]
  %nw = weight {name="nw"} : f32[{K}]
  %w = weight {name="w"} : {T}[{N}, {K}]
  %b = weight {name="b"} : f32[{N}]
  %res = input {name="res"} : f32[{M}, {N}]
  %r = region %x, %nw, %w, %b, %res {name="mm"} : f32[{M}, {N}] {
    %a0 = arg {index=0} : f32[{M}, {K}]
    %a1 = arg {index=1} : f32[{K}]
    %a2 = arg {index=2} : {T}[{N}, {K}]
    %a3 = arg {index=3} : f32[{N}]
    %a4 = arg {index=4} : f32[{M}, {N}]
    %n = rms_norm %a0 {eps=1e-05} : f32[{M}, {K}]
    %h = mul %n, %a1 : f32[{M}, {K}]
    %y = mul_mat %h, %a2 {act={A}} : f32[{M}, {N}]
    %yb = add %y, %a3 : f32[{M}, {N}]
    %z = add %yb, %a4 : f32[{M}, {N}]
    yield %z
  }
  output %r {name="y"}
})",
                                     {{"M", str(M)},
                                      {"N", str(N)},
                                      {"K", str(K)},
                                      {"T", std::string(dtype_name(t))},
                                      {"A", std::string(dtype_name(act))}});
          SCOPED_TRACE(std::string(dtype_name(t)) + " act=" + std::string(dtype_name(act)) +
                       " M=" + str(M) + " N=" + str(N));
          CheckOptions lib;
          lib.codegen.microkernels = false;
          lib.threads = {1, 3};
          check_text(g, lib);
          if (mk::supported(t) && act == mk::act_type(t)) {
            for (int isa = 0; isa < mk::kNumIsas; ++isa) {
              if (!mk::isa_available(mk::Isa(isa))) continue;
              CheckOptions o;
              o.threads = {2};
              o.quant_tol = 1e-4;  // the interpreter rounds activations the same way
              o.mk = *cpu::microkernel_table(mk::Isa(isa));
              SCOPED_TRACE(mk::isa_name(mk::Isa(isa)));
              check_text(g, o);
            }
          }
        }
      }
    }
  }
}

// A merged q/k/v product: q and k rotated (rope on whole heads inside each tile), k and v stored
// into f16 / q8_0 caches at positions read at run time, q yielded.
TEST(CpuCodegen, ContractionQkvRopeKvWrite) {
  REQUIRE_LLVM();
  for (const char* kv : {"f16", "q8_0", "f32"}) {
    for (int64_t T : {1, 3}) {
      for (const char* act : {"f32", "q8_0"}) {
        const int64_t H = 4, Hkv = 2, D = 32, K = 64;
        const int64_t NQ = H * D, NK = Hkv * D, N = NQ + 2 * NK;
        const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[1, {T}, {K}]
  %pos = input {name="pos"} : i32[1, {T}]
  %seq = input {name="seq"} : i32[1]
  %w = weight {name="w"} : q8_0[{N}, {K}]
  %ck = state {name="ck"} : {KV}[2, 16, {HKV}, {D}]
  %cv = state {name="cv"} : {KV}[2, 16, {HKV}, {D}]
  %q, %k2, %v2 = region %x, %w, %pos, %ck, %cv, %seq {name="qkv"} : f32[1, {T}, {H}, {D}], {KV}[2, 16, {HKV}, {D}], {KV}[2, 16, {HKV}, {D}] {
    %a0 = arg {index=0} : f32[1, {T}, {K}]
    %a1 = arg {index=1} : q8_0[{N}, {K}]
    %a2 = arg {index=2} : i32[1, {T}]
    %a3 = arg {index=3} : {KV}[2, 16, {HKV}, {D}]
    %a4 = arg {index=4} : {KV}[2, 16, {HKV}, {D}]
    %a5 = arg {index=5} : i32[1]
    %y = mul_mat %a0, %a1 {act={ACT}} : f32[1, {T}, {N}]
    %qs = slice %y {axis=2, start=0, size={NQ}} : f32[1, {T}, {NQ}]
    %ks = slice %y {axis=2, start={NQ}, size={NK}} : f32[1, {T}, {NK}]
    %vs = slice %y {axis=2, start={NQV}, size={NK}} : f32[1, {T}, {NK}]
    %q4 = reshape %qs {shape=[1, {T}, {H}, {D}]} : f32[1, {T}, {H}, {D}]
    %k4 = reshape %ks {shape=[1, {T}, {HKV}, {D}]} : f32[1, {T}, {HKV}, {D}]
    %v4 = reshape %vs {shape=[1, {T}, {HKV}, {D}]} : f32[1, {T}, {HKV}, {D}]
    %qr = rope %q4, %a2 {mode="neox", n_dims={D}, freq_base=10000.0} : f32[1, {T}, {H}, {D}]
    %kr = rope %k4, %a2 {mode="normal", n_dims=16, freq_base=500000.0, freq_scale=0.5} : f32[1, {T}, {HKV}, {D}]
    %kw = kv_write %a3, %kr, %a2, %a5 : {KV}[2, 16, {HKV}, {D}]
    %vw = kv_write %a4, %v4, %a2, %a5 : {KV}[2, 16, {HKV}, {D}]
    yield %qr, %kw, %vw
  }
  output %q {name="q"}
})",
                                   {{"T", str(T)},
                                    {"K", str(K)},
                                    {"N", str(N)},
                                    {"NQ", str(NQ)},
                                    {"NK", str(NK)},
                                    {"NQV", str(NQ + NK)},
                                    {"H", str(H)},
                                    {"HKV", str(Hkv)},
                                    {"D", str(D)},
                                    {"KV", kv},
                                    {"ACT", act}});
        SCOPED_TRACE(std::string(kv) + " T=" + str(T) + " act=" + act);
        CheckOptions o;
        o.ints["pos"] = T == 1 ? std::vector<int32_t>{9} : std::vector<int32_t>{4, 5, -1};
        o.ints["seq"] = {1};
        o.codegen.microkernels = false;
        check_text(g, o);
        o.codegen.microkernels = true;
        check_text(g, o);
      }
    }
  }
}

// A merged gate/up product: silu(gate) * up reads two column ranges of the same product.
TEST(CpuCodegen, ContractionGateUp) {
  REQUIRE_LLVM();
  for (int64_t M : {1, 4}) {
    const int64_t K = 64, F = 96;
    const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[{M}, {K}]
  %w = weight {name="w"} : q4_0[{F2}, {K}]
  %r = region %x, %w {name="ffn"} : f32[{M}, {F}] {
    %a0 = arg {index=0} : f32[{M}, {K}]
    %a1 = arg {index=1} : q4_0[{F2}, {K}]
    %y = mul_mat %a0, %a1 {act=q8_0} : f32[{M}, {F2}]
    %g = slice %y {axis=1, start=0, size={F}} : f32[{M}, {F}]
    %u = slice %y {axis=1, start={F}, size={F}} : f32[{M}, {F}]
    %s = silu %g : f32[{M}, {F}]
    %p = mul %s, %u : f32[{M}, {F}]
    yield %p
  }
  output %r {name="y"}
})",
                               {{"M", str(M)}, {"K", str(K)}, {"F", str(F)}, {"F2", str(2 * F)}});
    CheckOptions o;
    o.codegen.microkernels = false;
    check_text(g, o);
    o.codegen.microkernels = true;
    check_text(g, o);
  }
}

// Epilogues that cannot run inside product tiles (a softmax over a whole output row, a permute,
// an argmax) put the product in memory first: two phases with a barrier.
TEST(CpuCodegen, ContractionFallbackEpilogue) {
  REQUIRE_LLVM();
  const std::string g = R"(graph t {
  %x = input {name="x"} : f32[3, 64]
  %w = weight {name="w"} : f16[300, 64]
  %r0, %r1, %r2 = region %x, %w {name="fb"} : f32[3, 300], f32[300, 3], i32[3] {
    %a0 = arg {index=0} : f32[3, 64]
    %a1 = arg {index=1} : f16[300, 64]
    %y = mul_mat %a0, %a1 : f32[3, 300]
    %s = softmax %y {scale=0.125} : f32[3, 300]
    %t = permute %y {perm=[1, 0]} : f32[300, 3]
    %m = argmax %y : i32[3]
    yield %s, %t, %m
  }
  output %r0 {name="s"}
  output %r1 {name="t"}
  output %r2 {name="m"}
})";
  check_text(g);
}

// Per-head norm (Qwen3 / Gemma 3 q/k norm) then rope, inside the tiles of the projection.
TEST(CpuCodegen, ContractionHeadNormRope) {
  REQUIRE_LLVM();
  const std::string g = R"(graph t {
  %x = input {name="x"} : f32[1, 2, 64]
  %pos = input {name="pos"} : i32[1, 2]
  %w = weight {name="w"} : f32[192, 64]
  %nw = weight {name="nw"} : f32[64]
  %r = region %x, %w, %nw, %pos {name="qn"} : f32[1, 2, 3, 64] {
    %a0 = arg {index=0} : f32[1, 2, 64]
    %a1 = arg {index=1} : f32[192, 64]
    %a2 = arg {index=2} : f32[64]
    %a3 = arg {index=3} : i32[1, 2]
    %y = mul_mat %a0, %a1 : f32[1, 2, 192]
    %q = reshape %y {shape=[1, 2, 3, 64]} : f32[1, 2, 3, 64]
    %n = rms_norm %q {eps=1e-06} : f32[1, 2, 3, 64]
    %m = mul %n, %a2 : f32[1, 2, 3, 64]
    %r = rope %m, %a3 {mode="neox", n_dims=64, freq_base=1000000.0} : f32[1, 2, 3, 64]
    yield %r
  }
  output %r {name="q"}
})";
  CheckOptions o;
  o.ints["pos"] = {17, 4000};
  check_text(g, o);
}

// The token embedding: get_rows of a quantized table, scaled (Gemma), on odd sizes.
TEST(CpuCodegen, EmbeddingGather) {
  REQUIRE_LLVM();
  for (const char* t : {"q4_0", "q6_k", "f16", "q8_0"}) {
    const int64_t C = std::string(t) == "q6_k" ? 256 : 96;
    const std::string g = fill(R"(graph t {
  %tok = input {name="tok"} : i32[1, 3]
  %e = weight {name="e"} : {T}[11, {C}]
  %r = region %e, %tok {name="emb"} : f32[1, 3, {C}] {
    %a0 = arg {index=0} : {T}[11, {C}]
    %a1 = arg {index=1} : i32[1, 3]
    %g = get_rows %a0, %a1 : f32[1, 3, {C}]
    %s = scale %g {scale=25.3} : f32[1, 3, {C}]
    yield %s
  }
  output %r {name="h"}
})",
                               {{"T", t}, {"C", str(C)}});
    CheckOptions o;
    o.ints["tok"] = {10, 0, 7};
    check_text(g, o);
  }
}

// Attention over f16 / q8_0 / f32 caches: grouped-query heads, a sliding window, softcap,
// padding rows, decode positions long enough to split the key range over threads.
TEST(CpuCodegen, Attention) {
  REQUIRE_LLVM();
  struct Case {
    const char* kv;
    int64_t T, window;
    double softcap;
    std::vector<int32_t> pos;
    const char* act = "f32";
  };
  const Case cases[] = {{"f16", 1, 0, 0.0, {300}},        {"q8_0", 1, 0, 0.0, {511}},
                        {"f32", 1, 64, 0.0, {400}},       {"f16", 3, 0, 30.0, {5, 6, -1}},
                        {"f16", 4, 3, 0.0, {0, 1, 2, 3}}, {"bf16", 1, 0, 0.0, {7}},
                        {"f16", 1, 0, 0.0, {300}, "f16"}, {"f16", 3, 5, 20.0, {9, 10, -1}, "f16"}};
  for (const Case& c : cases) {
    const std::string g = fill(
        R"(graph t {
  %q = input {name="q"} : f32[1, {T}, 4, 64]
  %pos = input {name="pos"} : i32[1, {T}]
  %seq = input {name="seq"} : i32[1]
  %ck = state {name="ck"} : {KV}[2, 512, 2, 64]
  %cv = state {name="cv"} : {KV}[2, 512, 2, 64]
  %r = region %q, %ck, %cv, %pos, %seq {name="attn"} : f32[1, {T}, 4, 64] {
    %a0 = arg {index=0} : f32[1, {T}, 4, 64]
    %a1 = arg {index=1} : {KV}[2, 512, 2, 64]
    %a2 = arg {index=2} : {KV}[2, 512, 2, 64]
    %a3 = arg {index=3} : i32[1, {T}]
    %a4 = arg {index=4} : i32[1]
    %y = attention %a0, %a1, %a2, %a3, %a4 {scale=0.125, window={W}, softcap={SC}, act={ACT}} : f32[1, {T}, 4, 64]
    yield %y
  }
  output %r {name="y"}
})",
        {{"T", str(c.T)},
         {"KV", c.kv},
         {"W", str(c.window)},
         {"SC", std::to_string(c.softcap)},
         {"ACT", c.act}});
    SCOPED_TRACE(std::string(c.kv) + " T=" + str(c.T));
    CheckOptions o;
    o.ints["pos"] = c.pos;
    o.ints["seq"] = {1};
    check_text(g, o);
  }
}

// The ops other than products round exactly as ggml-cpu, i.e. as the interpreter (docs/parity.md):
// every result bit-identical on random inputs, 1-3 threads. rms_norm (and norm, as the
// interpreter) sums in double in order; softmax without softcap takes ggml's exp per 16 and the C
// library's expf for the tail (n = 37, 600); silu is ggml_v_silu over a wide range; rope takes
// cosf/sinf of the running f32 product at several positions, repeated ones included (the kernel
// caches one position's angles).
TEST(CpuCodegen, RowOpsRoundAsGgml) {
  REQUIRE_LLVM();
  for (int64_t n : {37, 64, 576, 600}) {
    const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[3, {N}]
  %m = input {name="m"} : f32[{N}]
  %r0, %r1, %r2, %r3, %r4 = region %x, %m {name="red"} : f32[3, {N}], f32[3, {N}], f32[3, {N}], f32[3, {N}], f32[3, {N}] {
    %a = arg {index=0} : f32[3, {N}]
    %k = arg {index=1} : f32[{N}]
    %w = scale %a {scale=300.0} : f32[3, {N}]
    %n = rms_norm %w {eps=1e-06} : f32[3, {N}]
    %s = softmax %w, %k {scale=0.03} : f32[3, {N}]
    %t = softmax %a : f32[3, {N}]
    %u = scale %a {scale=40.0} : f32[3, {N}]
    %v = silu %u : f32[3, {N}]
    %o = norm %u {eps=1e-05} : f32[3, {N}]
    yield %n, %s, %t, %v, %o
  }
  output %r0 {name="o0"}
  output %r1 {name="o1"}
  output %r2 {name="o2"}
  output %r3 {name="o3"}
  output %r4 {name="o4"}
})",
                               {{"N", str(n)}});
    const test::CheckReport rep = check_text(g);
    EXPECT_EQ(rep.regions, 3);
    EXPECT_EQ(rep.exact_regions, rep.regions) << "n=" << n;
  }
  for (const char* mode : {"normal", "neox"}) {
    const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[1, 5, 3, 64]
  %pos = input {name="pos"} : i32[1, 5]
  %r0, %r1 = region %x, %pos {name="rope"} : f32[1, 5, 3, 64], f32[1, 5, 3, 64] {
    %a = arg {index=0} : f32[1, 5, 3, 64]
    %p = arg {index=1} : i32[1, 5]
    %q = rope %a, %p {mode="{MODE}", n_dims=64, freq_base=10000.0} : f32[1, 5, 3, 64]
    %k = rope %a, %p {mode="{MODE}", n_dims=32, freq_base=1000000.0, freq_scale=0.25} : f32[1, 5, 3, 64]
    yield %q, %k
  }
  output %r0 {name="q"}
  output %r1 {name="k"}
})",
                               {{"MODE", mode}});
    CheckOptions o;
    o.ints["pos"] = {7, 7, 4000, 0, 123457};
    const test::CheckReport rep = check_text(g, o);
    EXPECT_EQ(rep.regions, 3);
    EXPECT_EQ(rep.exact_regions, rep.regions) << mode;
  }
}

// ggml-cpu's GELU table for every f16 input (NaNs aside): the tanh formula at f16(x), rounded to
// f16, as the interpreter computes it.
TEST(CpuCodegen, GeluF16TableRoundsAsGgml) {
  REQUIRE_LLVM();
  const std::string text = R"(graph t {
  %h = weight {name="h"} : f16[65536]
  %r = region %h {name="gelu"} : f32[65536] {
    %a = arg {index=0} : f16[65536]
    %x = cast %a {to=f32} : f32[65536]
    %y = gelu %x {approx="tanh_f16"} : f32[65536]
    yield %y
  }
  output %r {name="y"}
})";
  auto g = ir::parse(text);
  ASSERT_TRUE(g.ok()) << g.message();
  std::vector<uint8_t> bytes(65536 * 2);
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = (i & 0x7c00u) == 0x7c00u && (i & 0x3ffu) ? 0 : uint16_t(i);  // no NaN
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  runtime::MemoryWeights w;
  ASSERT_TRUE(w.add("h", ir::TensorType{DType::F16, {65536}}, bytes).ok());
  CheckOptions o;
  o.threads = {2};
  const test::CheckReport rep = test::check_graph(**g, w, o);
  EXPECT_EQ(rep.regions, 1);
  EXPECT_EQ(rep.exact_regions, rep.regions);
}

// Attention with act=f16, no softcap and D % 16 == 0 is llama.cpp's CPU attention bit for bit:
// one token (ggml_vec_dot_f16's order) and several (tinyBLAS's), windows whose first key is not
// aligned to the 16 / 64 lanes, padding rows, a head size that leaves vec_dot_f16 a tail
// (D = 80), grouped heads, an f16 and a q8_0 cache.
TEST(CpuCodegen, AttentionRoundsAsGgml) {
  REQUIRE_LLVM();
  struct Case {
    const char* kv;
    int64_t T, window, D, Hq;
    std::vector<int32_t> pos;
  };
  const Case cases[] = {{"f16", 1, 0, 64, 6, {300}},         {"f16", 1, 0, 64, 4, {5}},
                        {"f16", 1, 100, 64, 4, {450}},       {"f16", 1, 0, 80, 4, {200}},
                        {"f16", 3, 0, 64, 6, {77, 200, -1}}, {"f16", 2, 37, 80, 4, {90, 91}},
                        {"f16", 3, 0, 64, 6, {200, -1, -1}},  // one real token: vec_dot_f16
                        {"q8_0", 1, 0, 64, 4, {130}}};
  for (const Case& c : cases) {
    const std::string g = fill(
        R"(graph t {
  %q = input {name="q"} : f32[1, {T}, {HQ}, {D}]
  %pos = input {name="pos"} : i32[1, {T}]
  %seq = input {name="seq"} : i32[1]
  %ck = state {name="ck"} : {KV}[2, 512, 2, {D}]
  %cv = state {name="cv"} : {KV}[2, 512, 2, {D}]
  %r = region %q, %ck, %cv, %pos, %seq {name="attn"} : f32[1, {T}, {HQ}, {D}] {
    %a0 = arg {index=0} : f32[1, {T}, {HQ}, {D}]
    %a1 = arg {index=1} : {KV}[2, 512, 2, {D}]
    %a2 = arg {index=2} : {KV}[2, 512, 2, {D}]
    %a3 = arg {index=3} : i32[1, {T}]
    %a4 = arg {index=4} : i32[1]
    %y = attention %a0, %a1, %a2, %a3, %a4 {scale=0.125, window={W}, act=f16} : f32[1, {T}, {HQ}, {D}]
    yield %y
  }
  output %r {name="y"}
})",
        {{"T", str(c.T)}, {"KV", c.kv}, {"W", str(c.window)}, {"D", str(c.D)}, {"HQ", str(c.Hq)}});
    SCOPED_TRACE(std::string(c.kv) + " T=" + str(c.T) + " D=" + str(c.D) + " pos=" + str(c.pos[0]));
    CheckOptions o;
    o.ints["pos"] = c.pos;
    o.ints["seq"] = {1};
    const test::CheckReport rep = check_text(g, o);
    EXPECT_EQ(rep.regions, 3);
    EXPECT_EQ(rep.exact_regions, rep.regions);
  }
}

// One region holding a bare product y = x w^T of a (M x K) input and an (N x K) weight of type t,
// its activations quantized as the microkernels of t quantize them.
std::string bare_product(DType t, int64_t M, int64_t N, int64_t K) {
  return fill(R"(graph t {
  %x = input {name="x"} : f32[{M}, {K}]
  %w = weight {name="w"} : {T}[{N}, {K}]
  %r = region %x, %w {name="mm"} : f32[{M}, {N}] {
    %a0 = arg {index=0} : f32[{M}, {K}]
    %a1 = arg {index=1} : {T}[{N}, {K}]
    %y = mul_mat %a0, %a1 {act={A}} : f32[{M}, {N}]
    yield %y
  }
  output %r {name="y"}
})",
              {{"M", str(M)},
               {"N", str(N)},
               {"K", str(K)},
               {"T", std::string(dtype_name(t))},
               {"A", std::string(dtype_name(mk::act_type(t)))}});
}

// The microkernel path against a reference that quantizes activations exactly as it does
// (mk::kernels(type, scalar): ggml's x86 rounding, then the scalar product): tight.
TEST(CpuCodegen, MicrokernelPathMatchesQuantizedReference) {
  REQUIRE_LLVM();
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t K = dtype_info(t).block_elems == 256 ? 512 : 160, M = 3, N = 75;
    const std::string g = bare_product(t, M, N, K);
    auto tg = parse_graph(g);
    ASSERT_TRUE(tg.graph);
    for (bool packed : {false, true}) {
      cpu::Options opt;
      opt.packed_weights = packed;
      auto prog = cpu::jit_compile(*tg.graph, cpu::Target{}, opt);
      ASSERT_TRUE(prog.ok()) << prog.message();
      ASSERT_TRUE((*prog)->kernels()[0].uses_microkernels);
      EXPECT_EQ((*prog)->kernels()[0].packed_operands.size(), packed && mk::pack_pays(t) ? 1u : 0u);
      const ir::TensorType wt{t, {N, K}};
      auto wb = tg.weights.get("w", wt);
      ASSERT_TRUE(wb.ok());
      std::vector<float> x = test::random_floats(size_t(M * K), 9);
      auto ref_k = mk::kernels(t, mk::Isa::kScalar);
      ASSERT_TRUE(ref_k.ok());
      const size_t xq_row = (*ref_k)->act_bytes(int(K));
      std::vector<uint8_t> xq(xq_row * size_t(M));
      for (int64_t m = 0; m < M; ++m)
        (*ref_k)->quantize_act_ggml_x86(x.data() + m * K, xq.data() + size_t(m) * xq_row, int(K));
      std::vector<float> want(size_t(M * N));
      (*ref_k)->gemm(wb->data(), size_t(row_bytes(t, uint64_t(K)).value()), 0, int(N), xq.data(),
                     xq_row, int(M), want.data(), size_t(N), int(K));
      for (int isa = 0; isa < mk::kNumIsas; ++isa) {
        if (!mk::isa_available(mk::Isa(isa))) continue;
        for (int nth : {1, 2, 3}) {
          test::Buf xb(x.size() * 4), yb(want.size() * 4);
          std::memcpy(xb.data.get(), x.data(), x.size() * 4);
          const bool want_packed = !(*prog)->kernels()[0].packed_operands.empty();
          test::Buf wp = want_packed ? test::pack_weight(wt, wb->data()) : test::Buf(0);
          void* w = want_packed ? wp.data.get() : const_cast<uint8_t*>(wb->data());
          std::vector<void*> bufs{xb.data.get(), w, yb.data.get()};
          test::run_kernel((*prog)->function(0), (*prog)->kernels()[0], bufs, nth,
                           *cpu::microkernel_table(mk::Isa(isa)));
          std::vector<float> got(want.size());
          std::memcpy(got.data(), yb.data.get(), got.size() * 4);
          EXPECT_LE(test::rel_error(got, want), 2e-6)
              << dtype_name(t) << " " << mk::isa_name(mk::Isa(isa)) << " " << nth << " threads"
              << (packed ? " packed" : "");
        }
      }
    }
  }
}

// The packed products of the AVX-512 VNNI microkernels sum in ggml-cpu's orders
// (mk_jit_packed_ggml.cpp, mk_jit_packed_kquant.cpp), so they are bit-identical to the
// interpreter, which reproduces llama.cpp: decode (1 row), odd row counts that end in a one-row
// tile, and a partial group of 16 weight rows.
TEST(CpuCodegen, PackedProductsRoundAsGgml) {
  REQUIRE_LLVM();
  if (!mk::ggml_order())
    GTEST_SKIP() << "ggml's order is generated for AVX-512 VNNI only (and not with "
                    "KILN_MK_ORDER=fast)";
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    // Rows that take each of ggml's K-quant kernels: Q4_K's gemv (1, 2), gemm groups of four and
    // a gemv remainder (5, 9); Q6_K's vec_dot (< 8) and tiled (9).
    for (int64_t M : {1, 2, 5, 9}) {
      // llama.cpp repacks Q4_K (the order reproduced) only with a multiple of 8 rows.
      const bool kq = dtype_info(t).block_elems == 256;
      const int64_t K = kq ? 512 : 96, N = kq ? 40 : 45;
      const std::string g = fill(R"(graph t {
  %x = input {name="x"} : f32[{M}, {K}]
  %w = weight {name="w"} : {T}[{N}, {K}]
  %res = input {name="res"} : f32[{M}, {N}]
  %r = region %x, %w, %res {name="mm"} : f32[{M}, {N}] {
    %a0 = arg {index=0} : f32[{M}, {K}]
    %a1 = arg {index=1} : {T}[{N}, {K}]
    %a2 = arg {index=2} : f32[{M}, {N}]
    %y = mul_mat %a0, %a1 {act={A}} : f32[{M}, {N}]
    %z = add %y, %a2 : f32[{M}, {N}]
    yield %z
  }
  output %r {name="y"}
})",
                                 {{"M", str(M)},
                                  {"N", str(N)},
                                  {"K", str(K)},
                                  {"T", std::string(dtype_name(t))},
                                  {"A", std::string(dtype_name(mk::act_type(t)))}});
      CheckOptions o;
      o.mk = *cpu::microkernel_table(mk::Isa::kAvx512Vnni);
      const test::CheckReport rep = check_text(g, o);
      EXPECT_EQ(rep.regions, 3);  // one region, three thread counts
      EXPECT_EQ(rep.exact_regions, rep.regions) << dtype_name(t) << " M=" << M;
    }
  }
}

// A packed product stored as the region's result, with no prologue or epilogue: it gets a
// tiling of its own, whose tiles must start on groups of 16 weight rows (N = 48 was once cut
// into tiles of 12, and three of the four came out wrong).
TEST(CpuCodegen, PackedProductStoredWithoutEpilogue) {
  REQUIRE_LLVM();
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    for (int64_t N : {40, 48, 80, 96}) {
      const bool kq = dtype_info(t).block_elems == 256;
      const std::string g = bare_product(t, 2, N, kq ? 256 : 96);
      SCOPED_TRACE(std::string(dtype_name(t)) + " N=" + str(N));
      CheckOptions o;
      o.quant_tol = 1e-4;  // the interpreter rounds activations the same way
      const test::CheckReport rep = check_text(g, o);
      EXPECT_EQ(rep.regions, 3);
      if (mk::ggml_order() && (t != DType::Q4_K || N % 8 == 0)) {
        EXPECT_EQ(rep.exact_regions, rep.regions);
      }
    }
  }
}

// Ahead-of-time object code for the host and for x86-64-v3, loaded back (linking only) and run.
TEST(CpuCodegen, ObjectCodeLoadsAndRuns) {
  REQUIRE_LLVM();
  const std::string g = R"(graph t {
  %x = input {name="x"} : f32[2, 64]
  %w = weight {name="w"} : q4_0[96, 64]
  %nw = weight {name="nw"} : f32[64]
  %r = region %x, %nw, %w {name="mm"} : f32[2, 96] {
    %a0 = arg {index=0} : f32[2, 64]
    %a1 = arg {index=1} : f32[64]
    %a2 = arg {index=2} : q4_0[96, 64]
    %n = rms_norm %a0 {eps=1e-06} : f32[2, 64]
    %h = mul %n, %a1 : f32[2, 64]
    %y = mul_mat %h, %a2 : f32[2, 96]
    %s = silu %y : f32[2, 96]
    yield %s
  }
  output %r {name="y"}
})";
  auto tg = parse_graph(g);
  ASSERT_TRUE(tg.graph);
  for (const char* target : {"host", "x86-64-v3", "x86-64-v4"}) {
    auto t = cpu::Target::parse(target);
    ASSERT_TRUE(t.ok());
    auto oc = cpu::emit_object(*tg.graph, *t);
    ASSERT_TRUE(oc.ok()) << oc.message();
    EXPECT_GT(oc->bytes.size(), 0u);
    if (!cpu::missing_host_features(oc->required_features).empty()) continue;
    auto prog = cpu::load_object(*oc);
    ASSERT_TRUE(prog.ok()) << prog.message();
    CheckOptions o;
    test::check_graph(*tg.graph, tg.weights, o, prog->get());
  }
  auto v3 = cpu::target_features(*cpu::Target::parse("x86-64-v3"));
  ASSERT_TRUE(v3.ok());
  for (const char* f : {"avx2", "fma", "f16c"})
    EXPECT_NE(std::find(v3->begin(), v3->end(), f), v3->end()) << f;
  EXPECT_EQ(std::find(v3->begin(), v3->end(), "avx512f"), v3->end());
  auto arm = cpu::target_features(*cpu::Target::parse("aarch64"));
  ASSERT_TRUE(arm.ok());
  EXPECT_NE(std::find(arm->begin(), arm->end(), "neon"), arm->end());
  // Code that needs a feature this host lacks is refused, with the feature named.
  auto oc = cpu::emit_object(*tg.graph, cpu::Target{});
  ASSERT_TRUE(oc.ok());
  oc->required_features.push_back("kiln-test-feature");
  auto bad = cpu::load_object(*oc);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("kiln-test-feature"), std::string::npos) << bad.message();
  auto arm_oc = cpu::emit_object(*tg.graph, *cpu::Target::parse("aarch64"));
  ASSERT_TRUE(arm_oc.ok());
  EXPECT_FALSE(cpu::load_object(*arm_oc).ok());
}

}  // namespace
}  // namespace kiln
