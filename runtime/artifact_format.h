// The .kiln artifact format (docs/artifact.md): a fixed 64-byte prefix, a text header of
// `key=value` lines, a binary section table, then the sections, each aligned and each with a
// CRC32C. This file holds the layout, the checksums (CRC32C, SHA-256; our own code) and the
// bounds-checked parser; the writer (artifact_writer.h) and the loader (artifact_loader.h) build on
// it. The parser never trusts an offset or a size: every error names the field and the file.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"
#include "runtime/crc32c.h"

namespace kiln::artifact {

// "KILNART" + a format byte that is not text, so a text file never looks like an artifact.
inline constexpr std::array<uint8_t, 8> kMagic = {'K', 'I', 'L', 'N', 'A', 'R', 'T', 0x1a};
// Bumped on any change a reader of the previous version would misread.
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kPrefixBytes = 64;
inline constexpr uint64_t kSectionEntryBytes = 96;
inline constexpr size_t kSectionNameBytes = 64;
inline constexpr uint64_t kSectionAlignment = 64;    // every section
inline constexpr uint64_t kWeightsAlignment = 4096;  // the weights: page-aligned, mapped as is
// Limits that keep a hostile header from asking for absurd work.
inline constexpr uint32_t kMaxSections = 4096;
inline constexpr uint64_t kMaxHeaderBytes = 1 << 20;

// What a section holds. Graph sections are named by the graph ("decode_b1", "prefill_t128").
enum class SectionKind : uint32_t {
  kGraphSpec = 1,     // the lower::GraphSpec, as `key=value` lines
  kGraphIr = 2,       // the fused, planned IR as text (ir/printer.h)
  kGraphPlan = 3,     // the memory plan's `// plan` lines (passes/memory_plan.h)
  kGraphKernels = 4,  // one line per kernel: its cpu::KernelInfo
  kGraphObject = 5,   // the relocatable object (ELF) of cpu::emit_object
  kTokenizer = 16,    // a GGUF with no tensors: tokenizer.*, general.* and the architecture keys
  kWeights = 32,      // the source GGUF file, whole, page-aligned (--weights embed)
  kWeightsRef = 33,   // path, size and sha256 of the source GGUF (--weights reference)
  // Derived constants and microkernel-packed weights, made at compile time and bound as mapped
  // (artifact_records.h: an index, then the blobs); page-aligned like the weights.
  kConstants = 34,
  // `--target cuda:...` (runtime/artifact_cuda.h): per graph and compute capability, named
  // "decode_b1.sm_90": the cubin and the PTX; per graph: the generated module's kernel table.
  kCudaCubin = 64,
  kCudaPtx = 65,
  kCudaKernels = 66,
};
std::string_view section_kind_name(SectionKind k);  // "graph.ir", ...; "unknown" otherwise
// The alignment of a section's offset: a page for the sections kernels read in place.
inline uint64_t section_alignment(SectionKind k) {
  return k == SectionKind::kWeights || k == SectionKind::kConstants ? kWeightsAlignment
                                                                    : kSectionAlignment;
}

struct SectionEntry {
  SectionKind kind = SectionKind::kGraphIr;
  uint32_t flags = 0;  // reserved, 0
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t crc32c = 0;
  std::string name;  // at most kSectionNameBytes - 1 bytes
};

// The header's key=value lines. Keys the format defines are listed in docs/artifact.md; unknown
// keys are kept (a newer writer may add some) and ignored.
struct Header {
  uint32_t format_version = kFormatVersion;
  std::map<std::string, std::string> values;

  std::string get(const std::string& key, const std::string& fallback = "") const;
  Result<int64_t> get_int(const std::string& key) const;
  std::vector<std::string> get_list(const std::string& key) const;  // comma-separated
};

// A parsed artifact over bytes the caller keeps alive.
struct ArtifactView {
  std::span<const uint8_t> bytes;
  Header header;
  std::vector<SectionEntry> sections;

  const SectionEntry* find(SectionKind kind, std::string_view name = {}) const;
  std::span<const uint8_t> data(const SectionEntry& s) const {
    return bytes.subspan(s.offset, s.size);
  }
  std::string_view text(const SectionEntry& s) const {
    return {reinterpret_cast<const char*>(bytes.data() + s.offset), s.size};
  }
};

struct ParseOptions {
  // Check every section's CRC32C (the loader does; `kiln inspect` can skip the weights).
  bool verify_sections = true;
  // Give back the resident pages of the weights section (the embedded GGUF) once its checksum is
  // computed (madvise MADV_DONTNEED), so that checking does not leave it all resident: kernels
  // read most weights through the constants section and fault in only what they read of it. Only
  // for bytes that are a read-only file mapping (Artifact::open): on other memory it would zero
  // them.
  bool release_checked_pages = false;
};

// True when `bytes` start with the artifact magic.
bool has_magic(std::span<const uint8_t> bytes);

// Checks magic, version, header checksum, the section table and (optionally) every section's
// checksum. `name` is the file name for messages.
Result<ArtifactView> parse(std::span<const uint8_t> bytes, const std::string& name,
                           const ParseOptions& options = {});
// Checks the CRC32C of the sections `which` accepts (all when empty), on every core; the
// loader checks the tokenizer's first so that it can build the tokenizer during the rest.
Status verify_sections(const ArtifactView& view, const std::string& name,
                       const ParseOptions& options,
                       const std::function<bool(const SectionEntry&)>& which = {});

// The bytes of prefix + header + table for `header` and `sections` (offsets already assigned),
// with the header checksum filled in: what the writer puts at offset 0.
std::vector<uint8_t> encode_head(const Header& header, const std::vector<SectionEntry>& sections);
// Size of encode_head's result (sections start after it, aligned).
uint64_t head_bytes(const Header& header, size_t num_sections);
// Recomputes the header checksum of a whole artifact in place (tests that edit a header field
// use it so that the edit, not the checksum, is what the loader rejects).
Status reseal_header(std::span<uint8_t> bytes);

// Checksums: CRC32C (crc32c.h) and SHA-256.
std::array<uint8_t, 32> sha256(std::span<const uint8_t> bytes);
std::string hex(std::span<const uint8_t> bytes);

}  // namespace kiln::artifact
