// `kiln inspect MODEL.kiln`: an artifact's header, its sections with sizes and checksums, and the
// IR of its decode graph (--json: every graph's IR). Checksums are verified, except the weights'
// when they are large (inspection should be instant); `kiln run` verifies all of them.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "runtime/artifact_cuda.h"
#include "runtime/artifact_loader.h"
#include "runtime/artifact_records.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

// A CUDA artifact's code per graph: launches, and the PTX and cubin of every arch with their
// sizes and the arch the cubin's ELF header names (docs/artifact.md).
nlohmann::json cuda_summary(const artifact::Artifact& a) {
  const artifact::ArtifactView& v = a.view();
  nlohmann::json j;
  j["archs"] = a.header().get_list("target.cuda_archs");
  nlohmann::json graphs = nlohmann::json::object();
  for (const std::string& g : a.graph_names()) {
    nlohmann::json gj;
    if (const artifact::SectionEntry* k = v.find(artifact::SectionKind::kCudaKernels, g)) {
      auto rec = artifact::decode_cuda_kernels(v.text(*k));
      if (rec.ok()) {
        gj["launches"] = rec->launches;
        gj["distinct_kernels"] = rec->distinct;
        gj["source_fnv1a"] = rec->source_hash;
      } else {
        gj["error"] = rec.message();
      }
    }
    for (const std::string& arch : a.header().get_list("target.cuda_archs")) {
      const std::string name = g + "." + arch;
      if (const artifact::SectionEntry* s = v.find(artifact::SectionKind::kCudaPtx, name)) {
        auto pa = artifact::ptx_arch(v.text(*s));
        gj["ptx"][arch] = {{"bytes", s->size},
                           {"target", pa.ok() ? "sm_" + std::to_string(*pa) : pa.message()}};
      }
      if (const artifact::SectionEntry* s = v.find(artifact::SectionKind::kCudaCubin, name)) {
        auto ca = artifact::cubin_arch(v.data(*s));
        gj["cubin"][arch] = {{"bytes", s->size},
                             {"elf_arch", ca.ok() ? "sm_" + std::to_string(*ca) : ca.message()}};
      }
    }
    graphs[g] = gj;
  }
  j["graphs"] = graphs;
  return j;
}

}  // namespace

bool is_artifact_path(const std::string& path) {
  return artifact::is_artifact_file(path);
}

int inspect_artifact(const std::string& path, bool json) {
  artifact::ParseOptions po;
  po.verify_sections = true;
  auto a = artifact::Artifact::open(path, po);
  if (!a.ok()) return fail("inspect", a.message());
  const artifact::ArtifactView& v = (*a)->view();
  const Status host = (*a)->check_host();
  const artifact::SectionEntry* ir = nullptr;
  if (auto names = (*a)->graph_names(); !names.empty())
    ir = v.find(artifact::SectionKind::kGraphIr, names[0]);

  if (json) {
    nlohmann::json j;
    j["file"] = path;
    j["file_bytes"] = v.bytes.size();
    j["format_version"] = v.header.format_version;
    j["header"] = v.header.values;
    j["runs_on_this_host"] = host.ok();
    if (!host.ok()) j["host_problem"] = host.message();
    nlohmann::json secs = nlohmann::json::array();
    nlohmann::json irs = nlohmann::json::object();
    for (const artifact::SectionEntry& s : v.sections) {
      secs.push_back({{"kind", artifact::section_kind_name(s.kind)},
                      {"name", s.name},
                      {"offset", s.offset},
                      {"bytes", s.size},
                      {"crc32c", s.crc32c}});
      if (s.kind == artifact::SectionKind::kGraphIr) irs[s.name] = std::string(v.text(s));
    }
    j["sections"] = secs;
    if ((*a)->is_cuda()) j["cuda"] = cuda_summary(**a);
    j["ir"] = irs;
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("file          %s (%zu bytes)\n", path.c_str(), v.bytes.size());
  std::printf("format        kiln artifact v%u, %zu sections, checksums ok\n",
              v.header.format_version, v.sections.size());
  std::printf("this host     %s\n", host.ok() ? "can run it" : host.message().c_str());
  std::printf("\nheader\n");
  for (const auto& [k, val] : v.header.values) std::printf("  %-20s %s\n", k.c_str(), val.c_str());
  int name_width = 16;  // wider for CUDA sections ("prefill_t128_b1.sm_90")
  for (const artifact::SectionEntry& s : v.sections)
    name_width = std::max(name_width, int(s.name.size()));
  std::printf("\nsections\n  %-14s %-*s %12s %12s %10s\n", "kind", name_width, "name", "offset",
              "bytes", "crc32c");
  for (const artifact::SectionEntry& s : v.sections)
    std::printf("  %-14s %-*s %12llu %12llu %08x\n",
                std::string(artifact::section_kind_name(s.kind)).c_str(), name_width,
                s.name.empty() ? "-" : s.name.c_str(), (unsigned long long)s.offset,
                (unsigned long long)s.size, s.crc32c);
  if ((*a)->is_cuda()) {
    const nlohmann::json c = cuda_summary(**a);
    const std::vector<std::string> archs = (*a)->header().get_list("target.cuda_archs");
    std::string list;
    for (const std::string& x : archs) list += (list.empty() ? "" : ",") + x;
    std::printf(
        "\ncuda          code for %s: PTX and a cubin per graph and arch (bytes; the arch "
        "named by the PTX .target and the cubin's ELF header)\n  %-16s %8s",
        list.c_str(), "graph", "launches");
    for (const std::string& x : archs)
      std::printf("  %21s  %21s", ("ptx " + x).c_str(), ("cubin " + x).c_str());
    std::printf("\n");
    for (const std::string& g : (*a)->graph_names()) {
      const nlohmann::json& gj = c.at("graphs").at(g);
      std::printf("  %-16s %8s", g.c_str(),
                  gj.contains("launches") ? std::to_string(int(gj["launches"])).c_str() : "?");
      for (const std::string& x : archs) {
        for (const char* kind : {"ptx", "cubin"}) {
          std::string cell = "missing";
          if (gj.contains(kind) && gj[kind].contains(x)) {
            const nlohmann::json& e = gj[kind][x];
            cell = std::to_string(uint64_t(e["bytes"])) + " " +
                   std::string(e[kind == std::string("ptx") ? "target" : "elf_arch"]);
          }
          std::printf("  %21s", cell.c_str());
        }
      }
      std::printf("\n");
    }
  }
  if (const artifact::SectionEntry* c = v.find(artifact::SectionKind::kConstants)) {
    // What binding reads in place of evaluating or repacking (docs/artifact.md).
    auto stored = artifact::decode_constants(v.data(*c));
    if (!stored.ok()) {
      std::printf("\nconstants     %s\n", stored.message().c_str());
    } else {
      size_t packed = 0;
      uint64_t packed_bytes = 0, derived_bytes = 0;
      for (const artifact::StoredConstant& k : *stored) {
        const bool p = k.key.ends_with("@mk-packed");
        packed += p;
        (p ? packed_bytes : derived_bytes) += k.bytes.size();
      }
      std::printf(
          "\nconstants     %zu packed weights (%llu bytes), %zu derived constants (%llu bytes)\n",
          packed, (unsigned long long)packed_bytes, stored->size() - packed,
          (unsigned long long)derived_bytes);
    }
  }
  if (ir) {
    std::printf("\nIR of %s (--json has every graph)\n", ir->name.c_str());
    std::fwrite(v.text(*ir).data(), 1, v.text(*ir).size(), stdout);
  }
  return 0;
}

}  // namespace kiln::tools
