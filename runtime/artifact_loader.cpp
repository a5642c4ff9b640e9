#include "runtime/artifact_loader.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>

#include "codegen/cpu/cpu_codegen.h"
#include "ir/parser.h"
#include "ir/verifier.h"
#include "runtime/artifact_cuda.h"
#include "runtime/artifact_records.h"

namespace kiln::artifact {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The referenced GGUF of --weights reference: it must be the file the artifact was compiled from.
Result<std::unique_ptr<gguf::GgufFile>> open_reference(const Artifact& a) {
  const SectionEntry* s = a.view().find(SectionKind::kWeightsRef);
  Header ref;  // the section is key=value lines, like the header
  for (std::string_view text = a.view().text(*s); !text.empty();) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t eq = line.find('=');
    if (eq != std::string_view::npos)
      ref.values[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  const std::string path = ref.get("path"), sha = ref.get("sha256");
  KILN_ASSIGN_OR_RETURN(int64_t size, ref.get_int("size"));
  if (path.empty() || sha.size() != 64)
    return make_error(a.path(), ": the weights reference has no path or sha256");
  auto file = gguf::GgufFile::open(path);
  if (!file.ok())
    return make_error(a.path(), ": the referenced GGUF cannot be used: ", file.message());
  if (int64_t((*file)->file_size()) != size)
    return make_error(a.path(), ": the referenced GGUF ", path,
                      " has changed: ", (*file)->file_size(),
                      " bytes, the artifact was compiled from ", size);
  std::string got = hex(sha256((*file)->bytes()));
  if (got != sha)
    return make_error(a.path(), ": the referenced GGUF ", path, " has changed: sha256 ", got,
                      ", the artifact was compiled from ", sha);
  return std::move(*file);
}

}  // namespace

Result<std::unique_ptr<Artifact>> Artifact::open(const std::string& path,
                                                 const ParseOptions& options) {
  KILN_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  std::unique_ptr<Artifact> a(new Artifact());
  a->path_ = path;
  a->options_ = options;
  a->options_.release_checked_pages = true;  // a read-only file mapping: safe to drop, refaults
  KILN_ASSIGN_OR_RETURN(a->view_, parse(map->bytes(), path, a->options_));
  a->map_ = std::move(map);
  KILN_RETURN_IF_ERROR(a->read_header());
  return a;
}

Result<std::unique_ptr<Artifact>> Artifact::from_bytes(std::span<const uint8_t> bytes,
                                                       const std::string& name,
                                                       const ParseOptions& options) {
  std::unique_ptr<Artifact> a(new Artifact());
  a->path_ = name;
  KILN_ASSIGN_OR_RETURN(a->view_, parse(bytes, name, options));
  KILN_RETURN_IF_ERROR(a->read_header());
  return a;
}

Status Artifact::read_header() {
  const Header& h = view_.header;
  auto err = [&](auto&&... parts) { return make_error(path_, ": ", parts...); };
  auto c = h.get_int("ctx");
  if (!c.ok() || *c < 1 || *c > (1 << 24)) return err("header: bad or missing ctx");
  ctx_ = int(*c);
  std::optional<DType> kv = dtype_from_name(h.get("kv_type"));
  if (!kv || (*kv != DType::F16 && *kv != DType::Q8_0))
    return err("header: bad kv_type '", h.get("kv_type"), "'");
  kv_type_ = *kv;
  auto numbers = [&](const char* key, std::vector<int>& out) -> Status {
    for (const std::string& b : h.get_list(key)) {
      if (b.empty() || b.size() > 8 || b.find_first_not_of("0123456789") != std::string::npos)
        return err("header: bad ", key, " value '", b, "'");
      out.push_back(std::stoi(b));
    }
    return Status::Ok();
  };
  KILN_RETURN_IF_ERROR(numbers("prefill_buckets", buckets_));
  KILN_RETURN_IF_ERROR(numbers("batch", batches_));
  if (batches_.empty()) batches_ = {1};
  slots_ = *std::max_element(batches_.begin(), batches_.end());
  if (slots_ < 1 || slots_ > 4096) return err("header: bad batch '", h.get("batch"), "'");
  const std::string w = h.get("weights");
  if (w == "embed") {
    if (!view_.find(SectionKind::kWeights)) return err("weights=embed but no weights section");
  } else if (w == "reference") {
    if (!view_.find(SectionKind::kWeightsRef))
      return err("weights=reference but no weights.ref section");
  } else {
    return err("header: weights must be embed or reference, found '", w, "'");
  }
  if (!view_.find(SectionKind::kTokenizer)) return err("no tokenizer section");
  if (is_cuda()) return check_cuda_sections(*this);  // PTX and cubins, no objects
  for (const std::string& g : graph_names())
    for (SectionKind k : {SectionKind::kGraphSpec, SectionKind::kGraphIr, SectionKind::kGraphPlan,
                          SectionKind::kGraphKernels, SectionKind::kGraphObject})
      if (!view_.find(k, g))
        return err("graph '", g, "' has no ", section_kind_name(k), " section");
  return Status::Ok();
}

std::vector<std::string> Artifact::graph_names() const {
  return header().get_list("graphs");
}

Status Artifact::check_host() const {
  if (is_cuda()) return check_cuda_host(*this);  // runs on a GPU, not on this CPU
  const std::string arch = header().get("target.arch");
  const std::string host = cpu::Target{}.arch();
  if (arch != host)
    return make_error(path_, ": compiled for ", arch, " (target ", header().get("target"),
                      "), this host is ", host);
  std::vector<std::string> missing =
      cpu::missing_host_features(header().get_list("target.features"));
  if (!missing.empty())
    return make_error(path_, ": compiled for target ", header().get("target"),
                      ", whose code needs CPU features this host lacks: ", join(missing),
                      " (recompile with --target host)");
  return Status::Ok();
}

bool is_artifact_file(const std::string& path) {
  // A .kiln too short for its magic is still an artifact, so its error says "truncated".
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".kiln") == 0) return true;
  std::ifstream f(path, std::ios::binary);
  std::array<uint8_t, kMagic.size()> m{};
  if (!f.read(reinterpret_cast<char*>(m.data()), m.size())) return false;
  return has_magic(m);
}

Status Artifact::verify(const std::function<bool(const SectionEntry&)>& which) const {
  return verify_sections(view_, path_, options_, which);
}

Result<std::unique_ptr<LoadedArtifact>> load_artifact(const std::string& path,
                                                      const MetadataReady& on_metadata) {
  const auto t0 = Clock::now();
  auto out = std::make_unique<LoadedArtifact>();
  ParseOptions po;
  po.verify_sections = false;  // below: the tokenizer's first
  KILN_ASSIGN_OR_RETURN(out->artifact, Artifact::open(path, po));
  const Artifact& a = *out->artifact;
  auto is_tokenizer = [](const SectionEntry& s) { return s.kind == SectionKind::kTokenizer; };
  KILN_RETURN_IF_ERROR(a.verify(is_tokenizer));
  // The tokenizer's metadata is parsed, and handed to on_metadata, on a thread of its own while
  // the other sections (hundreds of MB) are checked: a 262k vocabulary takes tens of ms.
  auto metadata = std::async(std::launch::async, [&]() -> Status {
    auto md = gguf::GgufFile::parse(a.view().data(*a.view().find(SectionKind::kTokenizer)),
                                    path + " (tokenizer section)");
    if (!md.ok()) return md.error();
    out->metadata = std::move(*md);
    if (on_metadata) on_metadata(out->metadata);
    return Status::Ok();
  });
  Status checked = a.verify([&](const SectionEntry& s) { return !is_tokenizer(s); });
  Status parsed = metadata.get();
  KILN_RETURN_IF_ERROR(checked);
  KILN_RETURN_IF_ERROR(parsed);
  KILN_RETURN_IF_ERROR(a.check_host());
  if (const SectionEntry* w = a.view().find(SectionKind::kWeights)) {
    auto f = gguf::GgufFile::parse(a.view().data(*w), path + " (weights section)");
    if (!f.ok()) return f.error();
    out->weights = std::move(*f);
  } else {
    KILN_ASSIGN_OR_RETURN(out->weights, open_reference(a));
  }
  out->seconds = seconds_since(t0);
  return out;
}

Result<std::vector<runtime::MappedConstant>> ArtifactGraphSource::mapped_constants() const {
  std::vector<runtime::MappedConstant> out;
  const SectionEntry* s = artifact_.view().find(SectionKind::kConstants);
  if (!s) return out;
  auto stored = decode_constants(artifact_.view().data(*s));
  if (!stored.ok()) return stored.error().wrap(artifact_.path() + ": constants section");
  for (StoredConstant& c : *stored) {
    // Kernels read these in place: they must be as aligned as any buffer the executor hands out.
    if (reinterpret_cast<uintptr_t>(c.bytes.data()) % 64 != 0)
      return make_error(artifact_.path(), ": constant ", c.key,
                        " is not 64-byte aligned in memory (the artifact must be mapped)");
    out.push_back(runtime::MappedConstant{std::move(c.key), c.bytes});
  }
  return out;
}

Result<StoredGraph> read_graph(const Artifact& artifact, const lower::GraphSpec& spec) {
  const std::string name = spec.name();
  const ArtifactView& v = artifact.view();
  const SectionEntry* spec_s = v.find(SectionKind::kGraphSpec, name);
  if (!spec_s)
    return make_error(artifact.path(), ": has no graph '", name, "' (it has ",
                      join(artifact.graph_names()),
                      "); compile it with the --prefill-buckets and --ctx you run with");
  auto err = [&](const Error& e) { return e.wrap(artifact.path() + ": graph " + name); };
  auto stored = decode_spec(v.text(*spec_s));
  if (!stored.ok()) return err(stored.error());
  // Slots 0 means "as many as the batch" (artifacts written before batch lists).
  auto slots = [](const lower::GraphSpec& s) { return s.slots > 0 ? s.slots : s.batch; };
  if (stored->ctx != spec.ctx || stored->kv_type != spec.kv_type ||
      stored->all_logits != spec.all_logits || stored->batch != spec.batch ||
      stored->tokens != spec.tokens || slots(*stored) != slots(spec))
    return make_error(artifact.path(), ": graph ", name, " was compiled for ctx ", stored->ctx,
                      ", kv ", dtype_name(stored->kv_type), ", ", slots(*stored),
                      " sequence slots; asked for ctx ", spec.ctx, ", kv ",
                      dtype_name(spec.kv_type), ", ", slots(spec), " slots");
  StoredGraph out;
  auto graph = ir::parse(v.text(*v.find(SectionKind::kGraphIr, name)));
  if (!graph.ok()) return err(graph.error());
  out.graph = std::move(*graph);
  Status st = ir::verify(*out.graph);
  if (!st.ok()) return err(st.error());
  auto plan = passes::MemoryPlan::parse(v.text(*v.find(SectionKind::kGraphPlan, name)));
  if (!plan.ok()) return err(plan.error());
  out.plan = std::move(*plan);
  // A plan that does not match its graph would let kernels write outside their buffers.
  st = passes::validate(out.plan, *out.graph);
  if (!st.ok()) return err(st.error());
  return out;
}

Result<runtime::CompiledGraph> ArtifactGraphSource::compile(const lower::GraphSpec& spec) {
  const std::string name = spec.name();
  const ArtifactView& v = artifact_.view();
  auto err = [&](const Error& e) { return e.wrap(artifact_.path() + ": graph " + name); };
  if (artifact_.is_cuda())
    return make_error(artifact_.path(), ": compiled for CUDA (target ",
                      artifact_.header().get("target"), "): it has no CPU code");
  runtime::CompiledGraph c;
  c.spec = spec;
  auto t0 = Clock::now();
  KILN_ASSIGN_OR_RETURN(StoredGraph stored, read_graph(artifact_, spec));
  c.graph = std::move(stored.graph);
  c.plan = std::move(stored.plan);
  c.lower_seconds = seconds_since(t0);  // parsing stands in for lowering and passes

  t0 = Clock::now();
  cpu::ObjectCode code;
  auto kernels = decode_kernels(v.text(*v.find(SectionKind::kGraphKernels, name)));
  if (!kernels.ok()) return err(kernels.error());
  code.kernels = std::move(*kernels);
  auto obj = v.data(*v.find(SectionKind::kGraphObject, name));
  code.bytes.assign(obj.begin(), obj.end());
  auto target = cpu::Target::parse(artifact_.header().get("target"));
  if (!target.ok()) return err(target.error());
  code.target = *target;
  code.required_features = artifact_.header().get_list("target.features");
  auto prog = cpu::load_object(code);
  if (!prog.ok()) return err(prog.error());
  c.program = std::move(*prog);
  c.compile_seconds = seconds_since(t0);  // linking only
  return c;
}

}  // namespace kiln::artifact
