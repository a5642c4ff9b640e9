// `kiln compile --target cuda:sm_80,sm_90` (runtime/artifact_cuda.h) on a tiny preset, with no
// GPU: every graph has PTX and a cubin per arch, and each is for the arch its name says (the PTX
// .target, the cubin's ELF e_machine and e_flags); a corrupted cubin is caught by its checksum;
// bad targets are errors; the stored graphs run on the CUDA emulator through the CUDA backend and
// match the interpreter with no NVRTC and no constant evaluation; the loader picks the cubin or
// PTX a device of a given compute capability needs; without a GPU, running the artifact is one
// clear line and a non-zero exit. On a GPU, the artifact's tokens equal the JIT CUDA path's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "codegen/cuda/nvrtc.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/make_model.h"
#include "frontends/gguf/model_presets.h"
#include "runtime/artifact_cuda.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_loader.h"
#include "runtime/artifact_records.h"
#include "runtime/artifact_writer.h"
#include "runtime/backend.h"
#include "runtime/cuda_backend.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_emulator.h"
#include "runtime/cuda_kernel_check.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"

// NVRTC (dlopen'ed, not instrumented) keeps process-lifetime allocations that LeakSanitizer would
// report as leaks of this test; they are not kiln's.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libnvrtc\nleak:libnvrtc-builtins\n";
}

namespace kiln::artifact {
namespace {

constexpr int kCtx = 64;

// Skips the test when this build or this machine cannot compile CUDA (no toolkit, no NVRTC).
#ifdef KILN_WITH_CUDA
#define KILN_REQUIRE_NVRTC() \
  if (Status nv = cuda::nvrtc_status(); !nv.ok()) GTEST_SKIP() << "no NVRTC: " << nv.message()
#else
#define KILN_REQUIRE_NVRTC() GTEST_SKIP() << "built without CUDA (KILN_WITH_CUDA is OFF)"
#endif

std::string tiny_gguf() {
  const std::string path = test::temp_dir() + "/tiny-llama-q4_0.gguf";
  if (std::filesystem::exists(path)) return path;
  gguf::MakeModelOptions mo;
  mo.quant = DType::Q4_0;
  mo.seed = 7;
  mo.threads = 1;
  auto w = gguf::make_model(*gguf::find_preset("tiny-llama"), mo);
  EXPECT_TRUE(w.ok()) << w.message();
  if (w.ok()) {
    EXPECT_TRUE(w->write(path).ok());
  }
  return path;
}

CompileOptions cuda_options(const std::string& target = "cuda:sm_80,sm_90") {
  CompileOptions o;
  o.target = target;
  o.ctx = kCtx;
  o.prefill_buckets = {8};
  return o;
}

// The artifact of tiny_gguf() for cuda:sm_80,sm_90, compiled once per test binary.
const std::string& tiny_artifact() {
  static const std::string path = [] {
    const std::string out = test::temp_dir() + "/tiny-cuda.kiln";
    auto r = compile_artifact(tiny_gguf(), out, cuda_options());
    EXPECT_TRUE(r.ok()) << r.message();
    return out;
  }();
  return path;
}

uint16_t le16(const uint8_t* p) {
  return uint16_t(p[0] | p[1] << 8);
}
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

TEST(ArtifactCuda, EveryGraphHasPtxAndACubinPerArch) {
  KILN_REQUIRE_NVRTC();
  auto a = Artifact::open(tiny_artifact());
  ASSERT_TRUE(a.ok()) << a.message();
  const ArtifactView& v = (*a)->view();
  EXPECT_TRUE((*a)->is_cuda());
  EXPECT_EQ(v.header.get("target"), "cuda:sm_80,sm_90");
  EXPECT_EQ(v.header.get("target.arch"), "cuda");
  EXPECT_EQ(v.header.get("target.cuda_archs"), "sm_80,sm_90");
  const std::vector<std::string> graphs = (*a)->graph_names();
  ASSERT_EQ(graphs, (std::vector<std::string>{"decode_b1", "prefill_t8_b1"}));
  for (const std::string& g : graphs) {
    SCOPED_TRACE(g);
    for (SectionKind k : {SectionKind::kGraphSpec, SectionKind::kGraphIr, SectionKind::kGraphPlan})
      EXPECT_TRUE(v.find(k, g)) << section_kind_name(k);
    // No CPU code in a CUDA artifact.
    EXPECT_FALSE(v.find(SectionKind::kGraphObject, g));
    EXPECT_FALSE(v.find(SectionKind::kGraphKernels, g));
    const SectionEntry* k = v.find(SectionKind::kCudaKernels, g);
    ASSERT_TRUE(k);
    auto rec = decode_cuda_kernels(v.text(*k));
    ASSERT_TRUE(rec.ok()) << rec.message();
    EXPECT_GT(rec->launches, 2);
    for (int arch : {80, 90}) {
      const std::string name = g + ".sm_" + std::to_string(arch);
      SCOPED_TRACE(name);
      const SectionEntry* ptx = v.find(SectionKind::kCudaPtx, name);
      ASSERT_TRUE(ptx);
      const std::string_view text = v.text(*ptx);
      EXPECT_NE(text.find(".target sm_" + std::to_string(arch)), std::string_view::npos);
      EXPECT_NE(text.find(".entry"), std::string_view::npos);
      auto pa = ptx_arch(text);
      ASSERT_TRUE(pa.ok()) << pa.message();
      EXPECT_EQ(*pa, arch);

      const SectionEntry* cubin = v.find(SectionKind::kCudaCubin, name);
      ASSERT_TRUE(cubin);
      const std::span<const uint8_t> b = v.data(*cubin);
      ASSERT_GE(b.size(), 64u);
      EXPECT_EQ(std::memcmp(b.data(),
                            "\x7f"
                            "ELF",
                            4),
                0);
      EXPECT_EQ(b[4], 2);                   // ELFCLASS64
      EXPECT_EQ(le16(b.data() + 18), 190);  // e_machine EM_CUDA
      // The SM version in e_flags: bits 8-15 from ELF ABI version 8 (CUDA 12.8+), else 0-7.
      const uint32_t flags = le32(b.data() + 48);
      EXPECT_EQ(b[8] >= 8 ? (flags >> 8) & 0xff : flags & 0xff, uint32_t(arch));
      auto ca = cubin_arch(b);
      ASSERT_TRUE(ca.ok()) << ca.message();
      EXPECT_EQ(*ca, arch);
    }
  }
  // The derived constants (merged q/k/v, gate/up) are stored for binding; the GGUF is embedded.
  const SectionEntry* c = v.find(SectionKind::kConstants);
  ASSERT_TRUE(c);
  auto stored = decode_constants(v.data(*c));
  ASSERT_TRUE(stored.ok()) << stored.message();
  EXPECT_FALSE(stored->empty());
  for (const StoredConstant& s : *stored) {
    EXPECT_EQ(s.key.find("@mk-packed"), std::string::npos) << s.key;
  }
  EXPECT_TRUE(v.find(SectionKind::kWeights));
}

TEST(ArtifactCuda, SameInputsGiveTheSameBytes) {
  KILN_REQUIRE_NVRTC();
  const std::string again = test::temp_dir() + "/tiny-cuda-again.kiln";
  auto r = compile_artifact(tiny_gguf(), again, cuda_options());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->cuda_archs, (std::vector<int>{80, 90}));
  EXPECT_TRUE(test::read_bytes(again) == test::read_bytes(tiny_artifact()));
}

TEST(ArtifactCuda, CorruptedCubinIsCaughtByTheChecksum) {
  KILN_REQUIRE_NVRTC();
  std::vector<uint8_t> bytes = test::read_bytes(tiny_artifact());
  auto a = Artifact::from_bytes(bytes, "t.kiln");
  ASSERT_TRUE(a.ok()) << a.message();
  const SectionEntry* s = (*a)->view().find(SectionKind::kCudaCubin, "decode_b1.sm_90");
  ASSERT_TRUE(s);
  const uint64_t at = s->offset + s->size / 2;
  a->reset();
  bytes[at] ^= 0x40;
  auto bad = Artifact::from_bytes(bytes, "t.kiln");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("cuda.cubin 'decode_b1.sm_90': checksum mismatch"),
            std::string::npos)
      << bad.message();

  // And from the command line: one line, non-zero.
  const std::string path = test::temp_dir() + "/corrupt-cuda.kiln";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  const test::CommandResult r = test::run_kiln("run " + path + " -p hi -n 1 --device cuda");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(ArtifactCuda, BadTargetsAreErrors) {
  // Checked before any work: no NVRTC needed.
  const std::string out = test::temp_dir() + "/never.kiln";
  for (const char* target :
       {"cuda:sm_7x", "cuda:", "cuda:sm_80,", "cuda:90", "cuda:sm_75", "cuda:sm_", "cuda:sm_80;"}) {
    const std::string t = target;
    SCOPED_TRACE(t);
    auto r = compile_artifact(tiny_gguf(), out, cuda_options(t));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("target '" + t + "'"), std::string::npos) << r.message();
  }
  CompileOptions q8 = cuda_options("cuda:sm_90");
  q8.kv_type = DType::Q8_0;
  auto r = compile_artifact(tiny_gguf(), out, q8);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("f16"), std::string::npos) << r.message();
  EXPECT_FALSE(std::filesystem::exists(out));

  const test::CommandResult c =
      test::run_kiln("compile " + tiny_gguf() + " -o " + out + " --target cuda:sm_7x");
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("'sm_7x' is not an architecture like sm_90"), std::string::npos) << c.err;
}

// The weights and the CUDA backend over the artifact's stored graphs, on `dev`.
struct Opened {
  std::unique_ptr<Artifact> artifact;
  std::unique_ptr<gguf::GgufFile> weights;
  std::unique_ptr<runtime::Backend> backend;
};
Opened open_on(const std::string& path, std::unique_ptr<runtime::CudaDevice> dev,
               const ParseOptions& po = {}) {
  Opened o;
  auto a = Artifact::open(path, po);  // mapped: the stored constants are bound in place
  EXPECT_TRUE(a.ok()) << a.message();
  if (!a.ok()) return o;
  o.artifact = std::move(*a);
  auto w = gguf::GgufFile::parse(
      o.artifact->view().data(*o.artifact->view().find(SectionKind::kWeights)), "weights");
  EXPECT_TRUE(w.ok()) << w.message();
  if (!w.ok()) return o;
  o.weights = std::move(*w);
  runtime::BackendOptions bo;
  bo.ctx = o.artifact->ctx();
  auto b = runtime::make_cuda_backend(
      *o.weights, bo, {}, std::make_unique<CudaArtifactSource>(*o.artifact), std::move(dev));
  EXPECT_TRUE(b.ok()) << b.message();
  if (b.ok()) o.backend = std::move(*b);
  return o;
}

// Runs `g` with tokens at positions [pos, pos + n) and returns its logits.
std::vector<float> run_graph(runtime::Backend& b, int tokens, const std::vector<int32_t>& ids,
                             int pos) {
  lower::GraphSpec spec;
  spec.tokens = tokens;
  auto g = b.graph(spec);
  EXPECT_TRUE(g.ok()) << g.message();
  if (!g.ok()) return {};
  std::vector<int32_t> p(ids.size()), seq{0}, rows{int32_t(ids.size()) - 1};
  for (size_t i = 0; i < p.size(); ++i) p[i] = pos + int32_t(i);
  EXPECT_TRUE((*g)->set_input("tokens", ids).ok());
  EXPECT_TRUE((*g)->set_input("pos", p).ok());
  EXPECT_TRUE((*g)->set_input("seq", seq).ok());
  if ((*g)->has_input("rows")) {
    EXPECT_TRUE((*g)->set_input("rows", rows).ok());
  }
  Status st = (*g)->run();
  EXPECT_TRUE(st.ok()) << st.message();
  auto out = (*g)->output("logits");
  EXPECT_TRUE(out.ok()) << out.message();
  return out.ok() ? std::vector<float>(out->begin(), out->end()) : std::vector<float>{};
}

// The stored IR, plan and constants through the CUDA backend and executor on the emulator (its
// kernels are the host flavor of the same generated source, whose hash the artifact stores): a
// prefill of 8 tokens then 4 decode steps, each against the interpreter on the same weights.
TEST(ArtifactCuda, StoredGraphsRunOnTheEmulatorAndMatchTheInterpreter) {
  KILN_REQUIRE_NVRTC();
  Opened o = open_on(tiny_artifact(), runtime::make_emulated_device());
  ASSERT_TRUE(o.backend);
  runtime::BackendOptions bo;
  bo.ctx = kCtx;
  auto interp = runtime::make_interpreter_backend(*o.weights, bo);
  ASSERT_TRUE(interp.ok()) << interp.message();

  std::vector<int32_t> prompt = {3, 17, 42, 5, 99, 12, 7, 64};
  std::vector<float> got = run_graph(*o.backend, 8, prompt, 0);
  std::vector<float> want = run_graph(**interp, 8, prompt, 0);
  ASSERT_FALSE(want.empty());
  EXPECT_LT(runtime::relative_error(got, want), 5e-3) << "prefill";
  for (int step = 0; step < 4; ++step) {
    const int32_t next = int32_t(std::max_element(want.begin(), want.end()) - want.begin());
    got = run_graph(*o.backend, 1, {next}, 8 + step);
    want = run_graph(**interp, 1, {next}, 8 + step);
    ASSERT_FALSE(want.empty());
    EXPECT_LT(runtime::relative_error(got, want), 5e-3) << "decode step " << step;
  }
  const runtime::BackendStats s = o.backend->stats();
  EXPECT_EQ(s.graphs, 2);
  EXPECT_EQ(s.compile_seconds, 0);       // no NVRTC
  EXPECT_EQ(s.constant_evaluations, 0);  // the stored derived constants were bound instead
  EXPECT_GT(s.constants_mapped, 0);
}

// A kernel table that is not the one the stored code was compiled from (another kiln's
// generator) is refused, not launched with mismatched arguments.
TEST(ArtifactCuda, ChangedKernelHashIsRefused) {
  KILN_REQUIRE_NVRTC();
  std::vector<uint8_t> bytes = test::read_bytes(tiny_artifact());
  {
    auto a = Artifact::from_bytes(bytes, "t.kiln");
    ASSERT_TRUE(a.ok()) << a.message();
    const SectionEntry* k = (*a)->view().find(SectionKind::kCudaKernels, "decode_b1");
    ASSERT_TRUE(k);
    const std::string_view text = (*a)->view().text(*k);
    const size_t at = text.find("source_fnv1a=") + 13;
    ASSERT_NE(at, std::string_view::npos);
    uint8_t& c = bytes[k->offset + at];
    c = c == '0' ? '1' : '0';
  }
  const std::string path = test::temp_dir() + "/stale-kernels.kiln";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ParseOptions po;
  po.verify_sections = false;  // so that the edit, not the checksum, is what is refused
  Opened o = open_on(path, runtime::make_emulated_device(), po);
  ASSERT_TRUE(o.backend);
  lower::GraphSpec spec;
  auto g = o.backend->graph(spec);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("recompile the artifact"), std::string::npos) << g.message();
}

// A device that only reports an arch: what CudaArtifactSource picks for it.
class ArchOnlyDevice : public runtime::CudaDevice {
 public:
  explicit ArchOnlyDevice(int cc) : cc_(cc) {}
  std::string name() const override { return "arch-only"; }
  int compute_capability() const override { return cc_; }
  Result<runtime::DevPtr> alloc(size_t) override { return no(); }
  void free(runtime::DevPtr) override {}
  Result<void*> alloc_host(size_t) override { return no(); }
  void free_host(void*) override {}
  Status upload(runtime::DevPtr, const void*, size_t) override { return no(); }
  Status download(void*, runtime::DevPtr, size_t) override { return no(); }
  Status upload_async(runtime::DevPtr, const void*, size_t) override { return no(); }
  Status download_async(void*, runtime::DevPtr, size_t) override { return no(); }
  Status memset_async(runtime::DevPtr, uint8_t, size_t) override { return no(); }
  Result<int> load_module(const runtime::ModuleImage&) override { return no(); }
  Result<void*> function(int, const std::string&) override { return no(); }
  Status launch(void*, const runtime::LaunchDims&, const void*, size_t, bool) override {
    return no();
  }
  Status begin_capture() override { return no(); }
  Result<int> end_capture() override { return no(); }
  Status launch_graph(int) override { return no(); }
  void destroy_graph(int) override {}
  Status synchronize() override { return no(); }
  Result<int> record_event() override { return no(); }
  Result<double> elapsed_ms(int, int) override { return no(); }
  void destroy_event(int) override {}

 private:
  static Error no() { return make_error("arch-only device"); }
  int cc_;
};

int or_zero(const Result<int>& r) {
  return r.ok() ? *r : 0;
}

TEST(ArtifactCuda, LoaderPicksTheCubinOrPtxForTheDeviceArch) {
  KILN_REQUIRE_NVRTC();
  auto a = Artifact::open(tiny_artifact());
  ASSERT_TRUE(a.ok()) << a.message();
  CudaArtifactSource src(**a);
  lower::GraphSpec spec;
  spec.ctx = kCtx;
  struct Case {
    int cc;
    int cubin;  // 0: none (PTX)
    int ptx;    // the PTX's arch when no cubin fits
    bool pdl;
  };
  // sm_90 and sm_80 run their cubins; sm_86/sm_89 the sm_80 cubin (same major, lower minor),
  // without PDL; sm_100/sm_120 JIT the sm_90 PTX (which has griddepcontrol).
  for (const Case& c : {Case{90, 90, 0, true}, Case{80, 80, 0, false}, Case{86, 80, 0, false},
                        Case{89, 80, 0, false}, Case{100, 0, 90, true}, Case{120, 0, 90, true}}) {
    SCOPED_TRACE("sm_" + std::to_string(c.cc));
    auto g = src.graph(spec, ArchOnlyDevice(c.cc));
    ASSERT_TRUE(g.ok()) << g.message();
    const runtime::ModuleImage& m = g->image;
    EXPECT_TRUE(m.emulation_source.empty());
    if (c.cubin) {
      ASSERT_EQ(m.cubins.size(), 1u);
      EXPECT_EQ(m.cubins.begin()->first, c.cubin);
      EXPECT_EQ(or_zero(cubin_arch(m.cubins.begin()->second)), c.cubin);
      EXPECT_TRUE(m.ptx.empty());
    } else {
      EXPECT_TRUE(m.cubins.empty());
      EXPECT_EQ(or_zero(ptx_arch(m.ptx)), c.ptx);
    }
    EXPECT_EQ(g->pdl, c.pdl);
  }
  auto old = src.graph(spec, ArchOnlyDevice(75));
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.message().find("this GPU is sm_75"), std::string::npos) << old.message();
}

// `kiln inspect` lists the code sections with their sizes and the arch each names.
TEST(ArtifactCuda, InspectListsCodeSectionsAndArchs) {
  KILN_REQUIRE_NVRTC();
  const std::string path = tiny_artifact();
  test::CommandResult r = test::run_kiln("inspect " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"target.cuda_archs    sm_80,sm_90", "cuda.kernels   decode_b1",
                           "cuda.ptx       decode_b1.sm_80", "cuda.cubin     prefill_t8_b1.sm_90",
                           "code for sm_80,sm_90"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  r = test::run_kiln("inspect --json " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["cuda"]["archs"], nlohmann::json::array({"sm_80", "sm_90"}));
  for (const char* g : {"decode_b1", "prefill_t8_b1"}) {
    const nlohmann::json& gj = j["cuda"]["graphs"][g];
    EXPECT_GT(int(gj["launches"]), 2) << g;
    for (const char* arch : {"sm_80", "sm_90"}) {
      EXPECT_EQ(gj["ptx"][arch]["target"], arch) << g;
      EXPECT_EQ(gj["cubin"][arch]["elf_arch"], arch) << g;
      EXPECT_GT(uint64_t(gj["cubin"][arch]["bytes"]), 1000u) << g;
    }
  }
}

// Without libcuda or a GPU (CI), every way of running the artifact is one line and exit 1. On a
// GPU: the artifact gives the JIT CUDA path's greedy tokens.
TEST(ArtifactCuda, RunsOnlyWhereThereIsAGpu) {
  KILN_REQUIRE_NVRTC();
  const std::string path = tiny_artifact();
  if (!runtime::cuda_status().ok()) {
    for (const char* dev : {"", " --device cuda", " --device auto", " --device cpu"}) {
      SCOPED_TRACE(dev);
      const test::CommandResult r = test::run_kiln("run " + path + " -p hi -n 2" + dev);
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_NE(r.err.find("compiled for CUDA (target cuda:sm_80,sm_90)"), std::string::npos)
          << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
    auto m = Model::load(path, {});
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find("cannot run CUDA"), std::string::npos) << m.message();
    // kiln inspect still shows it, with the reason it cannot run here.
    const test::CommandResult r = test::run_kiln("inspect " + path);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("cannot run CUDA"), std::string::npos) << r.out;
    return;
  }
  // A GPU: greedy tokens from the artifact and from the GGUF through the JIT CUDA path.
  auto tokens_of = [](const std::string& model) {
    LoadOptions lo;
    lo.backend = BackendKind::kCuda;
    lo.ctx = kCtx;
    lo.prefill_buckets = {8};
    auto m = Model::load(model, lo);
    EXPECT_TRUE(m.ok()) << m.message();
    std::vector<int32_t> out;
    if (!m.ok()) return out;
    GenerateOptions g;
    g.max_tokens = 12;
    g.sampling.temperature = 0;
    const std::vector<int32_t> prompt = {3, 17, 42, 5};
    auto r = (*m)->generate(std::span<const int32_t>(prompt), g);
    EXPECT_TRUE(r.ok()) << r.message();
    if (r.ok()) out = r->tokens;
    return out;
  };
  const std::vector<int32_t> aot = tokens_of(path), jit = tokens_of(tiny_gguf());
  EXPECT_FALSE(aot.empty());
  EXPECT_EQ(aot, jit);
}

}  // namespace
}  // namespace kiln::artifact
