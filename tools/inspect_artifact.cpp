// `kiln inspect MODEL.kiln`: an artifact's header, its sections with sizes and checksums, and the
// IR of its decode graph (--json: every graph's IR). Checksums are verified, except the weights'
// when they are large (inspection should be instant); `kiln run` verifies all of them.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "runtime/artifact_loader.h"
#include "runtime/artifact_records.h"
#include "tools/command.h"

namespace kiln::tools {

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
  std::printf("\nsections\n  %-14s %-16s %12s %12s %10s\n", "kind", "name", "offset", "bytes",
              "crc32c");
  for (const artifact::SectionEntry& s : v.sections)
    std::printf("  %-14s %-16s %12llu %12llu %08x\n",
                std::string(artifact::section_kind_name(s.kind)).c_str(),
                s.name.empty() ? "-" : s.name.c_str(), (unsigned long long)s.offset,
                (unsigned long long)s.size, s.crc32c);
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
