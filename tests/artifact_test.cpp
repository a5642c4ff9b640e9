// kiln compile and the artifact loader on the tiny presets: the artifact gives the JIT path's
// logits and tokens, and every kind of bad artifact (truncated, corrupted, wrong version, CPU
// features this host lacks, a missing or changed referenced GGUF) is a clear error and a non-zero
// exit, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontends/gguf/make_model.h"
#include "frontends/gguf/model_presets.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_loader.h"
#include "runtime/artifact_records.h"
#include "runtime/artifact_writer.h"
#include "runtime/backend.h"
#include "runtime/kiln.h"
#include "tests/support/test_support.h"

namespace kiln::artifact {
namespace {

namespace fs = std::filesystem;

constexpr int kCtx = 64;

std::string make_tiny(const std::string& preset, DType quant, uint64_t seed) {
  const std::string path = test::temp_dir() + "/" + preset + "-" + std::to_string(seed) + ".gguf";
  if (fs::exists(path)) return path;
  const gguf::ModelPreset* p = gguf::find_preset(preset);
  EXPECT_NE(p, nullptr) << preset;
  gguf::MakeModelOptions mo;
  mo.quant = quant;
  mo.seed = seed;
  mo.threads = 1;
  auto w = gguf::make_model(*p, mo);
  EXPECT_TRUE(w.ok()) << w.message();
  Status st = w->write(path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

std::string compile_tiny(const std::string& gguf, const std::string& name, bool embed = true) {
  const std::string out = test::temp_dir() + "/" + name + ".kiln";
  CompileOptions o;
  o.ctx = kCtx;
  o.prefill_buckets = {8};
  o.embed_weights = embed;
  auto r = compile_artifact(gguf, out, o);
  EXPECT_TRUE(r.ok()) << r.message();
  return out;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

LoadOptions jit_options() {
  LoadOptions o;
  o.backend = BackendKind::kCpu;
  o.threads = 2;
  o.ctx = kCtx;
  o.prefill_buckets = {8};
  return o;
}

// Random token ids below the vocab size.
std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

class ArtifactPreset : public ::testing::TestWithParam<const char*> {};

// The same prompt through JIT and artifact: identical logits at every step (same LLVM code, same
// microkernels, same plan) and identical greedy tokens.
TEST_P(ArtifactPreset, SameLogitsAndTokensAsJit) {
  const std::string preset = GetParam();
  const std::string gguf = make_tiny(preset, DType::Q4_0, 11);
  const std::string kiln = compile_tiny(gguf, preset);
  auto jit = Model::load(gguf, jit_options());
  ASSERT_TRUE(jit.ok()) << jit.message();
  LoadOptions ao;
  ao.threads = 2;
  auto art = Model::load(kiln, ao);
  ASSERT_TRUE(art.ok()) << art.message();
  EXPECT_EQ((*art)->ctx(), kCtx);
  EXPECT_EQ((*art)->graphs_built(), 1);  // the decode graph, linked and bound at load
  ASSERT_EQ((*jit)->vocab_size(), (*art)->vocab_size());

  // 11 tokens: one prefill bucket of 8, then a padded one, then decode steps.
  const auto prompt = random_tokens(11, (*jit)->vocab_size(), 5);
  for (int step = 0; step < 4; ++step) {
    std::span<const int32_t> in = step == 0 ? std::span<const int32_t>(prompt)
                                            : std::span<const int32_t>(prompt).subspan(step, 1);
    auto a = (*jit)->eval(in);
    ASSERT_TRUE(a.ok()) << a.message();
    std::vector<float> ja(a->begin(), a->end());
    auto b = (*art)->eval(in);
    ASSERT_TRUE(b.ok()) << b.message();
    ASSERT_EQ(ja.size(), b->size());
    size_t differ = 0;
    for (size_t i = 0; i < ja.size(); ++i) differ += std::memcmp(&ja[i], &(*b)[i], 4) != 0;
    EXPECT_EQ(differ, 0u) << "step " << step << ": logits differ";
  }
  (*jit)->reset();
  (*art)->reset();
  GenerateOptions go;
  go.max_tokens = 6;
  go.sampling = SamplingOptions::greedy();
  go.ignore_eog = true;
  auto gj = (*jit)->generate(std::span<const int32_t>(prompt), go);
  auto ga = (*art)->generate(std::span<const int32_t>(prompt), go);
  ASSERT_TRUE(gj.ok() && ga.ok());
  EXPECT_EQ(gj->tokens, ga->tokens);
  EXPECT_EQ(gj->tokens.size(), 6u);
  // No compilation at load or run: only linking of stored object code.
  EXPECT_GT((*art)->graphs_built(), 0);
}

INSTANTIATE_TEST_SUITE_P(Presets, ArtifactPreset,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3",
                                           "tiny-gemma3"));

TEST(Artifact, HeaderDescribesTheCompile) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  const std::string kiln = compile_tiny(gguf, "header");
  auto a = Artifact::open(kiln);
  ASSERT_TRUE(a.ok()) << a.message();
  const Header& h = (*a)->header();
  EXPECT_EQ(h.get("source.sha256"), hex(sha256(test::read_bytes(gguf))));
  EXPECT_EQ(h.get("ctx"), std::to_string(kCtx));
  EXPECT_EQ(h.get("prefill_buckets"), "8");
  EXPECT_EQ(h.get("weights"), "embed");
  EXPECT_EQ((*a)->graph_names(), (std::vector<std::string>{"decode_b1", "prefill_t8_b1"}));
  const SectionEntry* w = (*a)->view().find(SectionKind::kWeights);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->offset % kWeightsAlignment, 0u);
  EXPECT_TRUE((*a)->check_host().ok());
  // The embedded GGUF holds only what kernels read as stored (norms, the embedding table of an
  // untied model...), byte for byte as in the source; the products' weights are in the constants
  // section, packed.
  EXPECT_EQ(h.get("weights.subset"), "kernels");
  auto source = gguf::GgufFile::open(gguf);
  auto embedded = gguf::GgufFile::parse((*a)->view().data(*w), "embedded");
  ASSERT_TRUE(source.ok() && embedded.ok()) << embedded.message();
  EXPECT_GT((*embedded)->tensors().size(), 0u);
  EXPECT_LT((*embedded)->tensors().size(), (*source)->tensors().size());
  EXPECT_LT(w->size, fs::file_size(gguf));
  for (const gguf::TensorInfo& t : (*embedded)->tensors()) {
    const gguf::TensorInfo* s = (*source)->find_tensor(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    EXPECT_EQ(t.type, s->type) << t.name;
    EXPECT_EQ(t.dims, s->dims) << t.name;
    auto x = (*embedded)->span(t), y = (*source)->span(*s);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data()) % 64, 0u) << t.name;
  }
  // The model's figures come from the header, not from the partial GGUF.
  EXPECT_EQ(h.get("model.vocab_size"),
            std::to_string((*source)->find_tensor("token_embd.weight")->dims[1]));
  // Buckets above ctx are dropped; a second compile of the same inputs gives the same bytes.
  const std::string again = compile_tiny(gguf, "header-again");
  EXPECT_EQ(test::read_bytes(kiln), test::read_bytes(again));
}

TEST(Artifact, InterpreterOnAnArtifactSaysItNeedsTheGguf) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  LoadOptions lo;
  lo.backend = BackendKind::kInterpreter;
  auto m = Model::load(compile_tiny(gguf, "interp"), lo);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("the reference interpreter needs all of them"), std::string::npos)
      << m.message();
}

TEST(Artifact, MissingGraphIsAClearError) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  auto loaded = load_artifact(compile_tiny(gguf, "graphs"));
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  ArtifactGraphSource src(*(*loaded)->artifact);
  lower::GraphSpec spec;
  spec.ctx = kCtx;
  spec.tokens = 16;
  auto g = src.compile(spec);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("has no graph 'prefill_t16_b1'"), std::string::npos) << g.message();
  spec.tokens = 8;
  spec.ctx = kCtx * 2;
  g = src.compile(spec);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("compiled for ctx"), std::string::npos) << g.message();
}

// Binding a loaded artifact evaluates no derived constant, repacks no weight and copies none to
// the heap: kernels read the constants section where it is mapped. The JIT path, on the same
// GGUF, does all three (so the counters can fail).
TEST(Artifact, BindsStoredConstantsWithoutRepacking) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  auto loaded = load_artifact(compile_tiny(gguf, "no-repack"));
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  runtime::BackendOptions bo;
  bo.threads = 1;
  bo.ctx = kCtx;
  lower::GraphSpec decode;
  auto art = runtime::make_cpu_backend(*(*loaded)->weights, bo,
                                       std::make_unique<ArtifactGraphSource>(*(*loaded)->artifact));
  ASSERT_TRUE(art.ok()) << art.message();
  ASSERT_TRUE((*art)->graph(decode).ok());
  lower::GraphSpec prefill = decode;
  prefill.tokens = 8;
  ASSERT_TRUE((*art)->graph(prefill).ok());
  const runtime::BackendStats as = (*art)->stats();
  EXPECT_EQ(as.weights_packed, 0);
  EXPECT_EQ(as.constant_evaluations, 0);
  EXPECT_EQ(as.constant_bytes, 0u);
  EXPECT_GT(as.constants_mapped, 0);

  auto file = gguf::GgufFile::open(gguf);
  ASSERT_TRUE(file.ok()) << file.message();
  auto jit = runtime::make_cpu_backend(**file, bo);
  ASSERT_TRUE(jit.ok()) << jit.message();
  ASSERT_TRUE((*jit)->graph(decode).ok());
  const runtime::BackendStats js = (*jit)->stats();
  EXPECT_GT(js.weights_packed, 0);
  EXPECT_GT(js.constant_evaluations, 0);
  EXPECT_GT(js.constant_bytes, 0u);
  EXPECT_EQ(js.constants_mapped, 0);
}

// The constants section is checksummed like every other: one flipped byte of a packed weight is
// caught at open. With the checksum resealed, a damaged index is still a clear error.
TEST(ArtifactBadInput, CorruptedConstantsSection) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  const auto good = test::read_bytes(compile_tiny(gguf, "constants-base"));
  auto view = parse(good, "good");
  ASSERT_TRUE(view.ok()) << view.message();
  const SectionEntry* c = view->find(SectionKind::kConstants);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->offset % kWeightsAlignment, 0u);
  auto stored = decode_constants(view->data(*c));
  ASSERT_TRUE(stored.ok()) << stored.message();
  ASSERT_FALSE(stored->empty());
  size_t packed = 0;
  for (const StoredConstant& s : *stored) packed += s.key.ends_with("@mk-packed");
  EXPECT_GT(packed, 0u);

  auto b = good;
  const auto blob = stored->back().bytes;
  b[size_t(blob.data() - good.data()) + blob.size() / 2] ^= 0x10;
  const std::string path = test::temp_dir() + "/bad-constants.kiln";
  write_bytes(path, b);
  auto m = Model::load(path);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("section constants: checksum mismatch"), std::string::npos)
      << m.message();

  // Damage the index, then fix the section's CRC in the table and reseal the head.
  b = good;
  b[c->offset] = 'X';
  const size_t index = size_t(c - view->sections.data());
  uint64_t table = 0;
  std::memcpy(&table, &b[32], 8);
  const uint32_t crc = crc32c(std::span<const uint8_t>(b).subspan(c->offset, c->size));
  std::memcpy(&b[table + index * kSectionEntryBytes + 24], &crc, 4);
  ASSERT_TRUE(reseal_header(b).ok());
  write_bytes(path, b);
  m = Model::load(path);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("constants: bad index header"), std::string::npos) << m.message();
}

// ---- bad input -------------------------------------------------------------------------------

struct BadCase {
  std::string what;
  std::vector<uint8_t> bytes;
  std::string expect;  // in the message
};

std::vector<BadCase> bad_cases(const std::vector<uint8_t>& good) {
  std::vector<BadCase> c;
  auto view = parse(good, "good");
  EXPECT_TRUE(view.ok()) << view.message();
  c.push_back({"empty", {}, "too short"});
  c.push_back({"truncated head", {good.begin(), good.begin() + 100}, "truncated"});
  c.push_back({"truncated sections", {good.begin(), good.end() - 4096}, "truncated"});
  c.push_back(
      {"truncated to half", {good.begin(), good.begin() + long(good.size() / 2)}, "truncated"});
  {
    auto b = good;
    b[0] ^= 0x20;
    c.push_back({"bad magic", b, "bad magic"});
  }
  {
    auto b = good;
    b[8] = 2;  // format version 2
    c.push_back({"wrong version", b, "format version 2"});
  }
  {
    auto b = good;
    b[kPrefixBytes + 3] ^= 1;  // a header byte
    c.push_back({"corrupted header", b, "header checksum mismatch"});
  }
  // One byte of each kind of section.
  for (const SectionEntry& s : view->sections) {
    if (s.size == 0) continue;
    auto b = good;
    b[s.offset + s.size / 2] ^= 0x5a;
    c.push_back({"corrupted " + std::string(section_kind_name(s.kind)) + " " + s.name, b,
                 "checksum mismatch"});
  }
  {
    // Code for a CPU feature this host lacks: rename the first required feature (same length,
    // so offsets stay) and reseal the header so that the features, not the checksum, fail.
    auto b = good;
    std::string text(b.begin(), b.begin() + long(view->sections[0].offset));
    size_t p = text.find("target.features=");
    EXPECT_NE(p, std::string::npos);
    p += std::strlen("target.features=");
    for (size_t i = p; i < text.size() && text[i] != ',' && text[i] != '\n'; ++i) b[i] = 'z';
    EXPECT_TRUE(reseal_header(b).ok());
    c.push_back({"missing cpu feature", b, "CPU features this host lacks: zz"});
  }
  {
    auto b = good;
    std::string text(b.begin(), b.begin() + long(view->sections[0].offset));
    size_t p = text.find("target.arch=x86_64");
    if (p != std::string::npos) {
      std::memcpy(&b[p + std::strlen("target.arch=")], "arm_64", 6);
      EXPECT_TRUE(reseal_header(b).ok());
      c.push_back({"other architecture", b, "compiled for arm_64"});
    }
  }
  return c;
}

TEST(ArtifactBadInput, EveryCaseIsAClearErrorInTheApiAndTheCli) {
  const std::string gguf = make_tiny("tiny-llama", DType::Q4_0, 11);
  const auto good = test::read_bytes(compile_tiny(gguf, "bad-base"));
  const auto cases = bad_cases(good);
  ASSERT_GE(cases.size(), 15u);
  int cli_checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const BadCase& bc = cases[i];
    SCOPED_TRACE(bc.what);
    const std::string path = test::temp_dir() + "/bad" + std::to_string(i) + ".kiln";
    write_bytes(path, bc.bytes);
    auto m = Model::load(path);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.message().find(bc.expect), std::string::npos) << m.message();
    // The CLI (a few cases: each is a process): non-zero exit, the message on stderr.
    if (i % 4 == 0 && !bc.bytes.empty()) {
      auto r = test::run_kiln("run " + path + " -p hi -n 2");
      EXPECT_NE(r.exit_code, 0);
      EXPECT_NE(r.err.find(bc.expect), std::string::npos) << r.err;
      ++cli_checked;
    }
  }
  EXPECT_GE(cli_checked, 3);
}

TEST(ArtifactBadInput, ReferencedGgufMissingOrChanged) {
  const std::string src = make_tiny("tiny-llama", DType::Q4_0, 11);
  const std::string gguf = test::temp_dir() + "/referenced.gguf";
  fs::copy_file(src, gguf, fs::copy_options::overwrite_existing);
  const std::string kiln = compile_tiny(gguf, "reference", /*embed=*/false);
  {
    // No copy of the GGUF inside: only the stored constants (packed weights, merged ones).
    auto a = Artifact::open(kiln);
    ASSERT_TRUE(a.ok()) << a.message();
    const SectionEntry* c = (*a)->view().find(SectionKind::kConstants);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ((*a)->view().find(SectionKind::kWeights), nullptr);
    EXPECT_LT(fs::file_size(kiln) - c->size, fs::file_size(gguf));
  }
  {
    auto m = Model::load(kiln);
    ASSERT_TRUE(m.ok()) << m.message();
    GenerateOptions go;
    go.max_tokens = 2;
    auto g = (*m)->generate("hi", go);
    EXPECT_TRUE(g.ok()) << g.message();
  }
  // Changed: one byte of tensor data differs, the size does not.
  auto bytes = test::read_bytes(gguf);
  bytes[bytes.size() - 7] ^= 0x11;
  write_bytes(gguf, bytes);
  auto m = Model::load(kiln);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("has changed: sha256"), std::string::npos) << m.message();
  // Changed size.
  bytes.push_back(0);
  write_bytes(gguf, bytes);
  m = Model::load(kiln);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("has changed"), std::string::npos) << m.message();
  // Missing.
  fs::remove(gguf);
  m = Model::load(kiln);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("referenced GGUF cannot be used"), std::string::npos) << m.message();
  auto r = test::run_kiln("run " + kiln + " -p hi -n 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("referenced GGUF cannot be used"), std::string::npos) << r.err;
}

TEST(ArtifactCli, CompileRunAndBadOptions) {
  const std::string gguf = make_tiny("tiny-qwen3", DType::Q8_0, 4);
  const std::string out = test::temp_dir() + "/cli.kiln";
  auto r = test::run_kiln("compile " + gguf + " -o " + out +
                          " --ctx 64 --prefill-buckets 8 --kv q8_0 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a = Artifact::open(out);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ((*a)->header().get("kv_type"), "q8_0");
  r = test::run_kiln("run " + out + " -p hello -n 3 --temp 0 -q");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_kiln("inspect " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"kiln artifact v1", "graph.object", "prefill_t8_b1", "kv_type",
                           "graph decode_b1 {", "tokenizer"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want;
  r = test::run_kiln("inspect --json " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"graph prefill_t8_b1 {"), std::string::npos);
  // AArch64 code compiles here; this x86-64 host refuses to run it, saying why.
  r = test::run_kiln("compile " + gguf + " -o " + out + ".a64 --target aarch64 --ctx 64 " +
                     "--prefill-buckets 8 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a64 = Artifact::open(out + ".a64");
  ASSERT_TRUE(a64.ok()) << a64.message();
  EXPECT_EQ((*a64)->header().get("target.arch"), "aarch64");
  EXPECT_EQ((*a64)->header().get("microkernels"), "0");
  if (cpu::Target{}.arch() == "x86_64") {
    r = test::run_kiln("run " + out + ".a64 -p hi -n 2");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("compiled for aarch64"), std::string::npos) << r.err;
  }
  // (cuda:sm_80 compiles now: tests/artifact_cuda_test.cpp; a malformed CUDA arch does not.)
  for (const char* bad : {"--kv f32", "--weights copy", "--target cuda:sm_7x",
                          "--prefill-buckets 8,x", "--target sparc"}) {
    r = test::run_kiln("compile " + gguf + " -o " + out + ".bad " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("error"), std::string::npos) << bad << ": " << r.err;
    EXPECT_FALSE(fs::exists(out + ".bad")) << bad;
  }
}

}  // namespace
}  // namespace kiln::artifact
