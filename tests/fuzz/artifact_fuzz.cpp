// libFuzzer target over the artifact header and section parser (runtime/artifact_format.h) and
// the loader's checks above it. Each input is parsed twice: as is (the checksums reject almost
// every mutation), and after resealing the head's checksum with section checksums off, so that
// mutations reach the header lines, the section table, the graph records, the memory plan and
// the tokenizer section's GGUF parser. Whatever the bytes: an error or a result, never a crash.
// Object code is not linked here: LLVM's object loader is not ours to fuzz, and a real artifact
// never reaches it unless every checksum matches.
#include <cstdint>
#include <span>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "passes/memory_plan.h"
#include "runtime/artifact_cuda.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_loader.h"
#include "runtime/artifact_records.h"

using namespace kiln;
using namespace kiln::artifact;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)parse(in, "fuzz");

  std::vector<uint8_t> b(data, data + size);
  (void)reseal_header(b);
  ParseOptions po;
  po.verify_sections = false;
  auto a = Artifact::from_bytes(b, "fuzz", po);
  if (!a.ok()) return 0;
  const ArtifactView& v = (*a)->view();
  uint64_t sink = 0;
  for (const SectionEntry& s : v.sections) {
    switch (s.kind) {
      case SectionKind::kGraphSpec:
        if (auto r = decode_spec(v.text(s)); r.ok()) sink += uint64_t(r->tokens);
        break;
      case SectionKind::kGraphKernels:
        if (auto r = decode_kernels(v.text(s)); r.ok()) sink += r->size();
        break;
      case SectionKind::kGraphPlan:
        if (auto r = passes::MemoryPlan::parse(v.text(s)); r.ok()) sink += r->entries.size();
        break;
      case SectionKind::kTokenizer:
        if (auto r = gguf::GgufFile::parse(v.data(s)); r.ok()) sink += (*r)->metadata().size();
        break;
      case SectionKind::kCudaKernels:
        if (auto r = decode_cuda_kernels(v.text(s)); r.ok()) sink += uint64_t(r->launches);
        break;
      case SectionKind::kCudaCubin:
        if (auto r = cubin_arch(v.data(s)); r.ok()) sink += uint64_t(*r);
        break;
      case SectionKind::kCudaPtx:
        if (auto r = ptx_arch(v.text(s)); r.ok()) sink += uint64_t(*r);
        break;
      default:
        break;
    }
  }
  sink += (*a)->check_host().ok();
  return int(sink & 0);
}
