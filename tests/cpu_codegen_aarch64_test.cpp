// AArch64 object code under qemu-user: the regions of tiny models are emitted as one aarch64 object
// (NEON), linked into a small static harness (tests/aarch64/harness.c) with the cross toolchain,
// run under qemu-aarch64 on the interpreter's inputs of every region, and every result and KV
// cache compared with the interpreter on the host. Skips when qemu or the cross toolchain is
// missing (scripts/setup installs qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "cpu_codegen_test_util.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "frontends/gguf/make_model.h"
#include "passes/pass_manager.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

bool have(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

void write_bytes(const std::string& path, const void* p, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(p), std::streamsize(n));
}

// Runs the fused graph's regions under qemu; returns false when the harness could not be run.
void check_under_qemu(const std::string& name, const ir::Graph& g,
                      const runtime::WeightSource& weights, const test::CheckOptions& o,
                      const std::string& target) {
  auto ref = test::run_reference(g, weights, o);
  ASSERT_TRUE(ref);
  auto oc = cpu::emit_object(g, *cpu::Target::parse(target));
  ASSERT_TRUE(oc.ok()) << oc.message();
  const std::string dir = test::temp_dir() + "/" + name;
  ASSERT_EQ(0, std::system(("mkdir -p " + dir).c_str()));
  write_bytes(dir + "/kernels.o", oc->bytes.data(), oc->bytes.size());
  {
    std::ofstream t(dir + "/table.c");
    std::set<std::string> declared;
    t << "typedef void (*Fn)(const void*);\n";
    for (const auto& k : oc->kernels)
      if (declared.insert(k.symbol).second) t << "extern void " << k.symbol << "(const void*);\n";
    t << "Fn kiln_kernels[] = {";
    for (const auto& k : oc->kernels) t << k.symbol << ", ";
    t << "0};\nint kiln_num_kernels = " << oc->kernels.size() << ";\n";
  }
  const std::string cc = have("aarch64-linux-gnu-gcc") ? "aarch64-linux-gnu-gcc"
                                                       : "clang-19 --target=aarch64-linux-gnu";
  const std::string build = cc + " -O2 -static -o " + dir + "/harness " + KILN_SOURCE_DIR +
                            "/tests/aarch64/harness.c " + dir + "/table.c " + dir +
                            "/kernels.o -lm -lpthread 2>" + dir + "/build.log";
  ASSERT_EQ(0, std::system(build.c_str())) << test::read_file(dir + "/build.log");

  // Calls: operands from the interpreter, states in files the calls update in turn.
  std::ostringstream calls;
  std::map<const ir::Value*, std::string> state_file;
  for (auto& [sname, b] : ref->initial)
    write_bytes(dir + "/state_" + sname + ".bin", b.data(), b.size());
  struct Out {
    const ir::Value* v;
    std::string file;
    bool reads_state;
  };
  std::vector<Out> outs;
  size_t ki = 0;
  for (const auto& up : g.nodes()) {
    const ir::Node& n = *up;
    if (n.op == ir::Op::State)
      state_file[n.result()] = dir + "/state_" + n.attrs.s("name") + ".bin";
    if (n.op != ir::Op::Region) continue;
    const cpu::KernelInfo& k = oc->kernels[ki];
    const int nth = 1 + int(ki % 2);
    calls << "call " << ki << " " << nth << " " << k.scratch_bytes << " "
          << n.operands.size() + n.results.size() << "\n";
    bool reads_state = false;
    for (size_t i = 0; i < n.operands.size(); ++i) {
      const ir::Value* v = n.operands[i];
      const uint64_t bytes = v->type.bytes().value_or(0);
      if (state_file.count(v)) {
        calls << "inout " << state_file[v] << " " << bytes << "\n";
        reads_state = true;
        continue;
      }
      auto tv = ref->in->value(*v);
      ASSERT_TRUE(tv.ok()) << tv.message();
      const std::string f = dir + "/r" + std::to_string(ki) + "_in" + std::to_string(i) + ".bin";
      write_bytes(f, tv->bytes.data(), tv->bytes.size());
      calls << "in " << f << " " << bytes << "\n";
    }
    for (size_t r = 0; r < n.results.size(); ++r) {
      auto a = passes::alias_of(n, int(r));
      if (a) {
        calls << "alias " << a->operand << " " << a->offset << "\n";
        if (state_file.count(n.operand(a->operand)))
          state_file[n.results[r]] = state_file[n.operand(a->operand)];
        continue;
      }
      const std::string f = dir + "/r" + std::to_string(ki) + "_out" + std::to_string(r) + ".bin";
      calls << "out " << f << " " << n.results[r]->type.bytes().value_or(0) << "\n";
      outs.push_back({n.results[r], f, reads_state});
    }
    ++ki;
  }
  {
    std::ofstream c(dir + "/calls.txt");
    c << calls.str();
  }
  const std::string run = "qemu-aarch64 " + dir + "/harness " + dir + " >" + dir + "/run.log 2>&1";
  ASSERT_EQ(0, std::system(run.c_str())) << test::read_file(dir + "/run.log");

  for (const Out& out : outs) {
    std::vector<uint8_t> got = test::read_bytes(out.file);
    auto want = ref->in->value(*out.v);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got.size(), want->bytes.size());
    if (is_integer(out.v->type.dtype)) {
      EXPECT_EQ(got, std::vector<uint8_t>(want->bytes.begin(), want->bytes.end())) << out.file;
      continue;
    }
    size_t at = 0;
    const double e = test::rel_error(test::as_f32(out.v->type, got.data()),
                                     test::as_f32(out.v->type, want->bytes.data()), &at);
    EXPECT_LE(e, out.reads_state ? o.state_tol : o.tol)
        << name << ": " << out.file << " (" << out.v->type.str() << ") at element " << at;
  }
  for (auto& [sname, b] : ref->initial) {
    std::vector<uint8_t> got = test::read_bytes(dir + "/state_" + sname + ".bin");
    auto want = ref->states.find(sname);
    ASSERT_TRUE(want.ok());
    const double tol = want->type->dtype == DType::F32 ? o.tol : o.state_tol;
    size_t at = 0;
    const double e = test::rel_error(test::as_f32(*want->type, got.data()),
                                     test::as_f32(*want->type, want->bytes.data()), &at);
    EXPECT_LE(e, tol) << name << ": state " << sname << " at element " << at;
  }
}

struct Case {
  const char* preset;
  DType quant;
  const char* target;
};

class Aarch64 : public ::testing::TestWithParam<Case> {};

TEST_P(Aarch64, TinyModelRegionsUnderQemu) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  if (!have("qemu-aarch64"))
    GTEST_SKIP() << "qemu-aarch64 missing (scripts/setup installs qemu-user)";
  if (!have("aarch64-linux-gnu-gcc") && !have("clang-19"))
    GTEST_SKIP() << "no aarch64 cross compiler (scripts/setup installs gcc-aarch64-linux-gnu)";
  const Case c = GetParam();
  const gguf::ModelPreset* p = gguf::find_preset(c.preset);
  ASSERT_TRUE(p);
  gguf::MakeModelOptions mo;
  mo.quant = c.quant;
  mo.seed = 11;
  mo.threads = 2;
  auto w = gguf::make_model(*p, mo);
  ASSERT_TRUE(w.ok()) << w.message();
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(w->to_bytes(&bytes).ok());
  auto file = gguf::GgufFile::parse(bytes, std::string(c.preset) + ".gguf");
  ASSERT_TRUE(file.ok());
  runtime::GgufWeights weights(**file);
  for (int tokens : {1, 4}) {
    lower::GraphSpec spec;
    spec.tokens = tokens;
    spec.ctx = 32;
    auto g = lower::lower_gguf(**file, spec);
    ASSERT_TRUE(g.ok()) << g.message();
    passes::PassContext ctx;
    ASSERT_TRUE(passes::run_pipeline("default", **g, ctx).ok());
    int64_t vocab = 0;
    for (const auto& n : (*g)->nodes())
      if (n->op == ir::Op::Weight && n->attrs.s("name") == "token_embd.weight")
        vocab = n->result()->type.dim(0);
    test::CheckOptions o;
    std::mt19937 rng(3);
    std::vector<int32_t> tok, pos;
    for (int t = 0; t < tokens; ++t) {
      tok.push_back(int32_t(rng() % uint32_t(vocab)));
      pos.push_back(6 + t);
    }
    o.ints["tokens"] = tok;
    o.ints["pos"] = pos;
    o.ints["seq"] = {0};
    o.ints["rows"] = {tokens - 1};
    std::string name = std::string(c.preset) + "_" + std::string(dtype_name(c.quant)) + "_" +
                       c.target + "_t" + std::to_string(tokens);
    for (char& ch : name)
      if (ch == '+') ch = '_';
    SCOPED_TRACE(name);
    check_under_qemu(name, **g, weights, o, c.target);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, Aarch64,
                         ::testing::Values(Case{"tiny-llama", DType::Q4_0, "aarch64"},
                                           Case{"tiny-qwen3", DType::Q4_K, "aarch64"},
                                           Case{"tiny-gemma3", DType::Q8_0, "aarch64+sve"}),
                         [](const auto& info) {
                           std::string s = std::string(info.param.preset) + "_" +
                                           std::string(dtype_name(info.param.quant));
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace kiln
