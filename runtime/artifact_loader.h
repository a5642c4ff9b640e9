// Loading a .kiln artifact (docs/artifact.md): map the file, check magic, version and every
// checksum, check that this host runs the code (architecture and CPU features), and hand the CPU
// backend its graphs through ArtifactGraphSource — IR parsed from text, the stored memory plan, and
// object code linked by cpu::load_object. No lowering, no passes and no code generation happen at
// load; xbyak microkernels are generated at first use as on the JIT path (cheap: see the doc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/mapped_file.h"
#include "runtime/artifact_format.h"
#include "runtime/compiled_graph.h"

namespace kiln::artifact {

class Artifact {
 public:
  // Maps and parses `path`. Does not check the host (`kiln inspect` shows foreign artifacts).
  static Result<std::unique_ptr<Artifact>> open(const std::string& path,
                                                const ParseOptions& options = {});
  // Parses bytes the caller keeps alive (tests, fuzzing).
  static Result<std::unique_ptr<Artifact>> from_bytes(std::span<const uint8_t> bytes,
                                                      const std::string& name,
                                                      const ParseOptions& options = {});

  const ArtifactView& view() const { return view_; }
  const Header& header() const { return view_.header; }
  const std::string& path() const { return path_; }

  // An error when this host cannot run the artifact's code: another architecture, or CPU
  // features it lacks (named).
  Status check_host() const;
  // Checks the checksums of the sections `which` accepts (all when empty), when open() was told
  // not to (ParseOptions::verify_sections).
  Status verify(const std::function<bool(const SectionEntry&)>& which = {}) const;

  int ctx() const { return ctx_; }
  DType kv_type() const { return kv_type_; }
  const std::vector<int>& prefill_buckets() const { return buckets_; }
  // The batch sizes it has decode graphs for, and the KV-cache sequence slots (their maximum).
  const std::vector<int>& batches() const { return batches_; }
  int slots() const { return slots_; }
  std::vector<std::string> graph_names() const;
  // Compiled for a GPU (`--target cuda:...`, runtime/artifact_cuda.h), not for a CPU.
  bool is_cuda() const { return header().get("target.arch") == "cuda"; }

 private:
  Artifact() = default;
  Status read_header();

  std::unique_ptr<MappedFile> map_;
  ArtifactView view_;
  std::string path_;
  ParseOptions options_;
  int ctx_ = 0;
  DType kv_type_ = DType::F16;
  std::vector<int> buckets_;
  std::vector<int> batches_;
  int slots_ = 1;
};

// An artifact ready to run: the artifact, its tokenizer metadata and its weights.
struct LoadedArtifact {
  std::unique_ptr<Artifact> artifact;
  // The tokenizer section: metadata, no tensors (shared with work on_metadata starts).
  std::shared_ptr<const gguf::GgufFile> metadata;
  std::unique_ptr<gguf::GgufFile> weights;  // the embedded GGUF, or the referenced one
  double seconds = 0;                       // mapping, checking, opening the weights
};

// Opens and checks everything: checksums, host, and for --weights reference that the GGUF at
// the recorded path has the recorded size and sha256. `on_metadata` is called with the tokenizer
// section's metadata, once its checksum is verified, on another thread while the other sections
// are checked; it has returned when load_artifact does. A caller may start work on the metadata
// there (Model::load builds its tokenizer) that holds the pointer, and so outlives a failure.
using MetadataReady = std::function<void(std::shared_ptr<const gguf::GgufFile> metadata)>;
Result<std::unique_ptr<LoadedArtifact>> load_artifact(const std::string& path,
                                                      const MetadataReady& on_metadata = {});

// True when the file at `path` starts with the artifact magic, or its name ends in .kiln.
bool is_artifact_file(const std::string& path);

// A stored graph's spec checked against `spec`, its IR parsed and verified, its memory plan parsed
// and validated against it (shared by the CPU and the CUDA graph sources).
struct StoredGraph {
  std::unique_ptr<ir::Graph> graph;
  passes::MemoryPlan plan;
};
Result<StoredGraph> read_graph(const Artifact& artifact, const lower::GraphSpec& spec);

// Compiled graphs from an artifact: only those it holds (any other is a clear error).
class ArtifactGraphSource : public runtime::GraphSource {
 public:
  explicit ArtifactGraphSource(const Artifact& artifact) : artifact_(artifact) {}
  Result<runtime::CompiledGraph> compile(const lower::GraphSpec& spec) override;
  // The constants section: views into the mapping (none when the artifact has no such section).
  Result<std::vector<runtime::MappedConstant>> mapped_constants() const override;

 private:
  const Artifact& artifact_;
};

}  // namespace kiln::artifact
