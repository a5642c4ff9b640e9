#include "runtime/artifact_writer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "codegen/cpu/cpu_codegen.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"
#include "frontends/gguf/lower.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"
#include "runtime/artifact_cuda.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_records.h"
#include "runtime/backend.h"
#include "runtime/constant_store.h"
#include "runtime/cpu_executor.h"
#include "runtime/weights.h"

#ifndef KILN_VERSION_STRING
#define KILN_VERSION_STRING "unknown"
#endif

namespace kiln::artifact {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

// A section before offsets are assigned: its bytes are owned or borrowed (the embedded GGUF).
struct Pending {
  SectionEntry entry;
  std::vector<uint8_t> owned;
  std::span<const uint8_t> bytes;
};

void add_owned(std::vector<Pending>& out, SectionKind kind, std::string name,
               std::vector<uint8_t> bytes) {
  Pending p;
  p.entry.kind = kind;
  p.entry.name = std::move(name);
  p.owned = std::move(bytes);
  p.bytes = p.owned;
  out.push_back(std::move(p));
}
void add_text(std::vector<Pending>& out, SectionKind kind, std::string name,
              const std::string& text) {
  add_owned(out, kind, std::move(name), std::vector<uint8_t>(text.begin(), text.end()));
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

Status write_all(std::FILE* f, std::span<const uint8_t> bytes, const std::string& path) {
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
    return make_error(path, ": write failed");
  return Status::Ok();
}

Status write_file(const std::string& path, const Header& header, std::vector<Pending>& sections) {
  // Offsets: sections follow the head, each aligned; the weights on a page boundary.
  std::vector<SectionEntry> entries;
  uint64_t pos = head_bytes(header, sections.size());
  for (Pending& p : sections) {
    uint64_t align = section_alignment(p.entry.kind);
    pos = align_up(pos, align);
    p.entry.offset = pos;
    p.entry.size = p.bytes.size();
    p.entry.crc32c = crc32c(p.bytes);
    pos += p.bytes.size();
    entries.push_back(p.entry);
  }
  std::vector<uint8_t> head = encode_head(header, entries);
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(path, ": cannot create ", tmp);
  Status st = write_all(f, head, path);
  uint64_t at = head.size();
  static const std::vector<uint8_t> zeros(kWeightsAlignment, 0);
  for (const Pending& p : sections) {
    if (!st.ok()) break;
    st = write_all(f, std::span(zeros).first(p.entry.offset - at), path);
    if (st.ok()) st = write_all(f, p.bytes, path);
    at = p.entry.offset + p.bytes.size();
  }
  if (std::fclose(f) != 0 && st.ok()) st = make_error(path, ": write failed");
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return make_error(path, ": cannot rename ", tmp, ": ", ec.message());
  }
  return Status::Ok();
}

// A GGUF with the source's tensors named in `names` (bytes unchanged) and its metadata, less the
// tokenizer's (the tokenizer section has it): what the CPU kernels of an artifact read as stored.
Result<std::vector<uint8_t>> kernel_weights_gguf(const gguf::GgufFile& file,
                                                 const std::set<std::string>& names) {
  gguf::GgufWriter w;
  for (const auto& [key, value] : file.metadata().entries())
    if (key != "general.alignment" && key.rfind("tokenizer.", 0) != 0) w.metadata().set(key, value);
  w.set_alignment(64);  // a cache line: kernels read these in place
  for (const gguf::TensorInfo& t : file.tensors())
    if (names.count(t.name))
      KILN_RETURN_IF_ERROR(w.add_tensor(t.name, t.type, t.dims, file.span(t)));
  std::vector<uint8_t> bytes;
  KILN_RETURN_IF_ERROR(w.to_bytes(&bytes));
  return bytes;
}

}  // namespace

Result<CompileReport> compile_artifact(const std::string& gguf_path, const std::string& out_path,
                                       const CompileOptions& o) {
  const auto t_start = Clock::now();
  CompileReport report;
  // A CUDA target stores PTX and cubins (artifact_cuda.h) where a CPU target stores objects.
  const bool cuda = is_cuda_target(o.target);
  if (!cuda && !cpu::llvm_available())
    return make_error("kiln compile needs LLVM, and kiln was built without it");
  const std::set<int> batches(o.batches.begin(), o.batches.end());
  if (batches.empty() || *batches.begin() < 1 || *batches.rbegin() > kMaxBatch)
    return make_error("--batch: each batch size must be 1 to ", kMaxBatch);
  if (cuda && batches != std::set<int>{1})
    return make_error("target '", o.target, "': CUDA artifacts are compiled for batch 1");
  const int slots = *batches.rbegin();
  if (o.kv_type != DType::F16 && o.kv_type != DType::Q8_0)
    return make_error("KV cache type ", dtype_name(o.kv_type), " is not supported (f16, q8_0)");
  std::vector<int> cuda_archs;
  cpu::Target target;
  if (cuda) {
    KILN_ASSIGN_OR_RETURN(cuda_archs, parse_cuda_archs(o.target));
    if (o.kv_type != DType::F16)
      return make_error("target '", o.target, "': the CUDA backend's KV cache is f16");
  } else {
    KILN_ASSIGN_OR_RETURN(target, cpu::Target::parse(o.target));
  }
  const std::string arch = cuda ? "cuda" : target.arch();
  if (arch != "x86_64" && arch != "aarch64" && arch != "cuda")
    return make_error("target '", o.target, "': only x86_64, aarch64 and cuda are supported");
  KILN_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::open(gguf_path));
  KILN_ASSIGN_OR_RETURN(int ctx, runtime::resolve_ctx(*file, o.ctx));

  auto t0 = Clock::now();
  const std::string sha = hex(sha256(file->bytes()));
  report.hash_seconds = seconds_since(t0);

  // Every graph addresses the same KV cache of `slots` sequences: decode graphs per batch size,
  // prefill graphs for one sequence (into any slot) per bucket.
  std::vector<lower::GraphSpec> specs;
  lower::GraphSpec decode;
  decode.ctx = ctx;
  decode.kv_type = o.kv_type;
  decode.slots = slots;
  for (int b : batches) {
    decode.batch = b;
    specs.push_back(decode);
  }
  decode.batch = 1;
  std::vector<int> buckets;
  for (int b : std::set<int>(o.prefill_buckets.begin(), o.prefill_buckets.end())) {
    if (b < 2) return make_error("prefill bucket ", b, ": must be at least 2 (1 is decode)");
    if (b > ctx) continue;
    buckets.push_back(b);
    lower::GraphSpec s = decode;
    s.tokens = b;
    specs.push_back(s);
  }

  cpu::Options co;
  co.microkernels = o.microkernels && arch == "x86_64";  // never for cuda
  std::vector<Pending> sections;
  std::set<std::string> features;
  // What binding reads from the ConstantStore (merged q/k/v and gate/up weights, microkernel-
  // packed weights), made once here and stored, so that loading evaluates and repacks nothing.
  runtime::GgufWeights weights(*file);
  runtime::ConstantStore constants(weights);
  std::set<std::string> constant_keys;
  std::set<std::string> raw_weights;  // what CPU kernels read from the GGUF as stored
  std::vector<std::string> graph_names;
  for (const lower::GraphSpec& spec : specs) {
    GraphReport g;
    g.name = spec.name();
    t0 = Clock::now();
    KILN_ASSIGN_OR_RETURN(auto graph, lower::lower_gguf(*file, spec));
    g.lower_seconds = seconds_since(t0);
    t0 = Clock::now();
    passes::PassContext pc;
    pc.options.verify_each = false;
    Status st = passes::run_pipeline(o.pipeline, *graph, pc);
    if (!st.ok()) return st.error().wrap(g.name);
    if (!pc.plan)
      return make_error(g.name, ": the pass pipeline '", o.pipeline,
                        "' made no memory plan (it must end with plan-memory)");
    g.passes_seconds = seconds_since(t0);
    add_text(sections, SectionKind::kGraphSpec, g.name, encode_spec(spec));
    add_text(sections, SectionKind::kGraphIr, g.name, ir::print(*graph));
    add_text(sections, SectionKind::kGraphPlan, g.name, pc.plan->str());
    graph_names.push_back(g.name);
    if (cuda) {
      t0 = Clock::now();
      auto code = compile_cuda_graph(*graph, cuda_archs);
      if (!code.ok()) return code.error().wrap(g.name);
      g.codegen_seconds = seconds_since(t0);
      g.kernels = code->kernels;
      g.object_bytes = code->bytes;
      for (auto& sec : code->sections)
        add_owned(sections, sec.kind, sec.name, std::move(sec.bytes));
      t0 = Clock::now();
      auto keys = cuda_bind_constants(*graph, constants);
      if (!keys.ok()) return keys.error().wrap(g.name + ": constants");
      constant_keys.insert(keys->begin(), keys->end());
      report.constants_seconds += seconds_since(t0);
      report.graphs.push_back(std::move(g));
      continue;
    }
    t0 = Clock::now();
    auto obj = cpu::emit_object(*graph, target, co);
    if (!obj.ok()) return obj.error().wrap(g.name);
    g.codegen_seconds = seconds_since(t0);
    g.kernels = obj->kernels.size();
    g.object_bytes = obj->bytes.size();
    for (const std::string& f : obj->required_features) features.insert(f);
    t0 = Clock::now();
    auto bound = runtime::make_bind_constants(*graph, obj->kernels, weights, constants);
    if (!bound.ok()) return bound.error().wrap(g.name + ": constants");
    constant_keys.insert(bound->keys.begin(), bound->keys.end());
    raw_weights.insert(bound->raw_weights.begin(), bound->raw_weights.end());
    report.constants_seconds += seconds_since(t0);
    add_text(sections, SectionKind::kGraphKernels, g.name, encode_kernels(obj->kernels));
    add_owned(sections, SectionKind::kGraphObject, g.name, std::move(obj->bytes));
    report.graphs.push_back(std::move(g));
  }

  // Tokenizer and chat template: the GGUF's metadata without its tensors, so the loader needs
  // no weights to tokenize and `kiln inspect` shows it.
  gguf::GgufWriter meta;
  for (const auto& [key, value] : file->metadata().entries())
    if (key != "general.alignment") meta.metadata().set(key, value);
  std::vector<uint8_t> meta_bytes;
  KILN_RETURN_IF_ERROR(meta.to_bytes(&meta_bytes));
  add_owned(sections, SectionKind::kTokenizer, "", std::move(meta_bytes));

  {
    std::vector<StoredConstant> stored;
    for (const std::string& key : constant_keys) {
      KILN_ASSIGN_OR_RETURN(auto bytes, constants.bytes_of(key));
      stored.push_back(StoredConstant{key, bytes});
      report.constant_bytes += bytes.size();
    }
    KILN_ASSIGN_OR_RETURN(auto section, encode_constants(stored));
    add_owned(sections, SectionKind::kConstants, "", std::move(section));
  }

  std::error_code ec;
  const std::string abs_path = std::filesystem::absolute(gguf_path, ec).string();
  if (o.embed_weights && !cuda) {
    // Only the weights kernels read as stored: the others are in the constants section, packed
    // or merged, and a second copy would double the file and the time to check it.
    KILN_ASSIGN_OR_RETURN(auto stripped, kernel_weights_gguf(*file, raw_weights));
    report.embedded_tensors = raw_weights.size();
    add_owned(sections, SectionKind::kWeights, "", std::move(stripped));
  } else if (o.embed_weights) {
    Pending p;
    p.entry.kind = SectionKind::kWeights;
    p.bytes = file->bytes();  // CUDA reads every weight from the GGUF, whole
    sections.push_back(std::move(p));
    report.embedded_tensors = file->tensors().size();
  } else {
    add_text(sections, SectionKind::kWeightsRef, "",
             "path=" + abs_path + "\nsize=" + std::to_string(file->file_size()) +
                 "\nsha256=" + sha + "\n");
  }

  Header h;
  auto& v = h.values;
  v["kiln_version"] = KILN_VERSION_STRING;
  v["target"] = o.target;
  if (cuda) {
    std::vector<std::string> names;
    for (int a : cuda_archs) names.push_back("sm_" + std::to_string(a));
    v["target.cuda_archs"] = join(names);
  } else {
    v["target.triple"] = target.triple;
    v["target.cpu"] = target.cpu;
    v["target.features"] = join(std::vector<std::string>(features.begin(), features.end()));
  }
  v["target.arch"] = arch;
  v["source.name"] = std::filesystem::path(gguf_path).filename().string();
  v["source.sha256"] = sha;
  v["source.size"] = std::to_string(file->file_size());
  v["architecture"] = file->architecture();
  // What Model::info reports, which the embedded GGUF (only the weights kernels read) cannot say.
  uint64_t parameters = 0, weight_bytes = 0;
  for (const gguf::TensorInfo& t : file->tensors()) {
    parameters += t.elements();
    weight_bytes += t.bytes;
  }
  v["model.parameters"] = std::to_string(parameters);
  v["model.weight_bytes"] = std::to_string(weight_bytes);
  if (const gguf::TensorInfo* t = file->find_tensor("token_embd.weight"); t && t->dims.size() == 2)
    v["model.vocab_size"] = std::to_string(t->dims[1]);
  v["ctx"] = std::to_string(ctx);
  std::vector<std::string> bl;
  for (int b : batches) bl.push_back(std::to_string(b));
  v["batch"] = join(bl);
  v["slots"] = std::to_string(slots);
  v["kv_type"] = std::string(dtype_name(o.kv_type));
  std::vector<std::string> bs;
  for (int b : buckets) bs.push_back(std::to_string(b));
  v["prefill_buckets"] = join(bs);
  v["graphs"] = join(graph_names);
  v["pipeline"] = o.pipeline;
  v["microkernels"] = co.microkernels ? "1" : "0";
  v["weights"] = o.embed_weights ? "embed" : "reference";
  // The embedded GGUF holds only what the compiled kernels read (the interpreter cannot run it).
  if (o.embed_weights && !cuda) v["weights.subset"] = "kernels";
  // Compile time and host are deliberately not recorded: the same inputs give the same bytes.

  t0 = Clock::now();
  KILN_RETURN_IF_ERROR(write_file(out_path, h, sections));
  report.write_seconds = seconds_since(t0);
  report.required_features.assign(features.begin(), features.end());
  report.target = o.target;
  report.cuda_archs = cuda_archs;
  report.file_bytes = std::filesystem::file_size(out_path, ec);
  report.seconds = seconds_since(t_start);
  return report;
}

}  // namespace kiln::artifact
