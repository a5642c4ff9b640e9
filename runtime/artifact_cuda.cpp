#include "runtime/artifact_cuda.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <set>
#include <unordered_set>

#include "codegen/cuda/compile_graph.h"
#include "codegen/cuda/cuda_codegen.h"
#include "codegen/cuda/nvrtc.h"
#include "passes/graph_util.h"
#include "runtime/artifact_loader.h"
#include "runtime/cuda_driver.h"

namespace kiln::artifact {
namespace {

// The oldest arch the CUDA backend's kernels are compiled and tested for (docs/cuda.md).
constexpr int kMinArch = 80;
constexpr uint16_t kEmCuda = 190;

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}
std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
  return b;
}

std::string arch_list(const std::vector<int>& archs) {
  std::string s;
  for (int a : archs) s += (s.empty() ? "sm_" : ",sm_") + std::to_string(a);
  return s;
}

// The cuda.kernels record: key=value lines, then one line per launch for people reading the
// section. Only source_fnv1a is needed to load: the kernel table is regenerated from the IR.
std::string encode_cuda_kernels(const cuda::Program& p, const std::vector<int>& archs) {
  std::string s = "kiln-cuda-kernels 1\n";
  s += "source_fnv1a=" + hex64(fnv1a64(p.source)) + "\n";
  s += "archs=" + arch_list(archs) + "\n";
  s += "launches=" + std::to_string(p.kernels_by_region.size() + (p.has_sample ? 1 : 0)) + "\n";
  s += "distinct=" + std::to_string(p.distinct) + "\n";
  auto line = [&](const cuda::KernelSpec& k) {
    char dims[96];
    std::snprintf(dims, sizeof dims, "%u,%u,%u\t%u\t%llu", k.grid[0], k.grid[1], k.grid[2], k.block,
                  (unsigned long long)k.scratch_bytes);
    s += "kernel\t" + k.name + "\t" + k.entry + "\t" + dims + "\n";
  };
  for (const cuda::KernelSpec& k : p.kernels_by_region) line(k);
  if (p.has_sample) line(p.sample);
  return s;
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Result<CudaKernelsRecord> decode_cuda_kernels(std::string_view text) {
  if (text.rfind("kiln-cuda-kernels 1\n", 0) != 0)
    return make_error("not a cuda.kernels record (version 1)");
  CudaKernelsRecord r;
  text.remove_prefix(20);
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.rfind("kernel\t", 0) == 0) continue;  // for people; the loader regenerates them
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return make_error("bad line '", line, "'");
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    auto number = [&](int& out) -> Status {
      if (value.empty() || value.size() > 9 ||
          value.find_first_not_of("0123456789") != std::string_view::npos)
        return make_error("bad ", key, " '", value, "'");
      out = std::stoi(std::string(value));
      return Status::Ok();
    };
    if (key == "source_fnv1a") {
      if (value.size() != 16 ||
          value.find_first_not_of("0123456789abcdef") != std::string_view::npos)
        return make_error("bad source_fnv1a '", value, "'");
      r.source_hash = value;
    } else if (key == "launches") {
      KILN_RETURN_IF_ERROR(number(r.launches));
    } else if (key == "distinct") {
      KILN_RETURN_IF_ERROR(number(r.distinct));
    }  // other keys (archs) are informational
  }
  if (r.source_hash.empty()) return make_error("no source_fnv1a line");
  return r;
}

bool is_cuda_target(const std::string& target) {
  return target == "cuda" || target.rfind("cuda:", 0) == 0;
}

Result<std::vector<int>> parse_cuda_archs(const std::string& target) {
  KILN_ASSIGN_OR_RETURN(std::vector<int> archs, cuda::parse_cuda_target(target));
  for (int a : archs)
    if (a < kMinArch)
      return make_error("target '", target, "': sm_", a, " is below sm_", kMinArch,
                        ", the oldest arch kiln's CUDA kernels are built for");
  std::sort(archs.begin(), archs.end());
  archs.erase(std::unique(archs.begin(), archs.end()), archs.end());
  return archs;
}

std::string cuda_section_name(const std::string& graph, int arch) {
  return graph + ".sm_" + std::to_string(arch);
}

Result<int> cubin_arch(std::span<const uint8_t> b) {
  if (b.size() < 64 || std::memcmp(b.data(),
                                   "\x7f"
                                   "ELF",
                                   4) != 0)
    return make_error("not an ELF file (", b.size(), " bytes)");
  if (b[4] != 2 || b[5] != 1) return make_error("not a 64-bit little-endian ELF");
  const uint16_t machine = load_le<uint16_t>(b.data() + 18);
  if (machine != kEmCuda) return make_error("ELF e_machine is ", machine, ", not EM_CUDA (190)");
  // The SM version is in e_flags: bits 0-7 up to ELF ABI version 7, bits 8-15 from version 8
  // (CUDA 12.8 and later write version 8).
  const uint32_t flags = load_le<uint32_t>(b.data() + 48);
  const int arch = b[8] >= 8 ? int((flags >> 8) & 0xff) : int(flags & 0xff);
  if (arch == 0) return make_error("ELF e_flags 0x", hex64(flags), " name no SM version");
  return arch;
}

Result<int> ptx_arch(std::string_view ptx) {
  size_t p = ptx.find(".target sm_");
  if (p == std::string_view::npos) return make_error("PTX without a .target sm_XX line");
  p += 11;
  int arch = 0;
  while (p < ptx.size() && ptx[p] >= '0' && ptx[p] <= '9' && arch < 10000)
    arch = arch * 10 + (ptx[p++] - '0');
  if (arch == 0) return make_error("PTX .target has no SM number");
  return arch;
}

Result<CudaGraphSections> compile_cuda_graph(const ir::Graph& g, const std::vector<int>& archs) {
  CudaGraphSections out;
  // Default options, as the executor regenerates the program at load (the hash checks it).
  KILN_ASSIGN_OR_RETURN(cuda::Program p, cuda::generate(g));
  out.kernels = p.kernels_by_region.size() + (p.has_sample ? 1 : 0);
  const std::string kernels = encode_cuda_kernels(p, archs);
  out.sections.push_back({SectionKind::kCudaKernels, p.graph_name,
                          std::vector<uint8_t>(kernels.begin(), kernels.end())});
  std::vector<CudaGraphSections::Section> cubins;
  // One NVRTC compile per arch: each arch gets its own PTX, so a newer GPU that JIT-compiles the
  // sm_90 PTX keeps the sm_90-only code (griddepcontrol for programmatic dependent launch). The
  // compiles are independent (NVRTC is thread-safe across programs), so they run concurrently.
  std::vector<std::future<Result<cuda::CompiledModule>>> compiles;
  for (int arch : archs)
    compiles.push_back(std::async(std::launch::async, [&p, arch] {
      cuda::CompileOptions co;
      co.archs = {arch};
      return cuda::compile_module(p.source, p.graph_name, co);
    }));
  for (size_t i = 0; i < archs.size(); ++i) {
    const int arch = archs[i];
    auto m = compiles[i].get();
    if (!m.ok()) return m.error().wrap("graph " + p.graph_name);
    out.from_cache = out.from_cache && m->from_cache;
    auto it = m->cubins.find(arch);
    if (it == m->cubins.end())
      return make_error("graph ", p.graph_name, ": no sm_", arch, " cubin");
    // What the loader will pick by arch must be what it says it is.
    auto pa = ptx_arch(m->ptx);
    if (!pa.ok() || *pa != arch)
      return make_error("graph ", p.graph_name, ": NVRTC's PTX for sm_", arch, " targets ",
                        pa.ok() ? "sm_" + std::to_string(*pa) : pa.message());
    auto ca = cubin_arch(it->second);
    if (!ca.ok() || *ca != arch)
      return make_error("graph ", p.graph_name, ": NVRTC's cubin for sm_", arch, " is ",
                        ca.ok() ? "for sm_" + std::to_string(*ca) : ca.message());
    out.bytes += m->ptx.size() + it->second.size();
    out.sections.push_back({SectionKind::kCudaPtx, cuda_section_name(p.graph_name, arch),
                            std::vector<uint8_t>(m->ptx.begin(), m->ptx.end())});
    cubins.push_back(
        {SectionKind::kCudaCubin, cuda_section_name(p.graph_name, arch), std::move(it->second)});
  }
  for (auto& c : cubins) out.sections.push_back(std::move(c));
  return out;
}

Result<std::vector<std::string>> cuda_bind_constants(const ir::Graph& g,
                                                     runtime::ConstantStore& constants) {
  // The roots the executor binds region operands to (CudaExecutor::bind: views are followed to
  // their root); those that are derived constants are made now.
  const std::unordered_set<const ir::Value*> consts = passes::constant_values(g);
  std::set<std::string> keys;
  for (const auto& node : g.nodes()) {
    if (node->op != ir::Op::Region) continue;
    for (int a = 0; a < node->num_operands(); ++a) {
      const ir::Value* root = node->operand(a);
      while (root->def && passes::is_free(*root->def)) {
        auto alias = passes::alias_of(*root->def, root->index);
        if (!alias) break;
        root = root->def->operand(alias->operand);
      }
      if (!consts.count(root) || !root->def || root->def->op == ir::Op::Weight) continue;
      auto bytes = constants.get(*root);
      if (!bytes.ok())
        return bytes.error().wrap("derived constant " + runtime::constant_key(*root));
      keys.insert(runtime::constant_key(*root));
    }
  }
  return std::vector<std::string>(keys.begin(), keys.end());
}

Status check_cuda_sections(const Artifact& a) {
  const ArtifactView& v = a.view();
  auto archs = parse_cuda_archs("cuda:" + a.header().get("target.cuda_archs"));
  if (!archs.ok()) return archs.error().wrap(a.path() + ": header target.cuda_archs");
  for (const std::string& g : a.graph_names()) {
    for (SectionKind k : {SectionKind::kGraphSpec, SectionKind::kGraphIr, SectionKind::kGraphPlan,
                          SectionKind::kCudaKernels})
      if (!v.find(k, g))
        return make_error(a.path(), ": graph '", g, "' has no ", section_kind_name(k), " section");
    for (int arch : *archs)
      for (SectionKind k : {SectionKind::kCudaPtx, SectionKind::kCudaCubin})
        if (!v.find(k, cuda_section_name(g, arch)))
          return make_error(a.path(), ": graph '", g, "' has no ", section_kind_name(k),
                            " section '", cuda_section_name(g, arch), "'");
  }
  return Status::Ok();
}

Status check_cuda_host(const Artifact& a) {
  if (Status st = runtime::cuda_status(); !st.ok())
    return make_error(a.path(), ": compiled for CUDA (target ", a.header().get("target"),
                      "), and this machine cannot run CUDA: ", st.message(),
                      " (compile with --target host to run on the CPU)");
  return Status::Ok();
}

Result<runtime::CudaStoredGraph> CudaArtifactSource::graph(const lower::GraphSpec& spec,
                                                           const runtime::CudaDevice& dev) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string name = spec.name();
  KILN_ASSIGN_OR_RETURN(StoredGraph stored, read_graph(artifact_, spec));
  runtime::CudaStoredGraph out;
  out.graph = std::move(stored.graph);
  out.plan = std::move(stored.plan);
  auto err = [&](auto&&... parts) {
    return make_error(artifact_.path(), ": graph ", name, ": ", parts...);
  };

  // The executor launches the kernels this kiln generates from the IR; the stored code must be
  // compiled from exactly that source, or arguments and entries would not match.
  const ArtifactView& v = artifact_.view();
  auto record = decode_cuda_kernels(v.text(*v.find(SectionKind::kCudaKernels, name)));
  if (!record.ok()) return err("cuda.kernels section: ", record.message());
  const std::string& want = record->source_hash;
  auto program = cuda::generate(*out.graph);
  if (!program.ok()) return program.error().wrap(artifact_.path() + ": graph " + name);
  const std::string got = hex64(fnv1a64(program->source));
  if (got != want)
    return err("the CUDA kernels this kiln generates from the stored IR (source hash ", got,
               ") are not the ones the stored code was compiled from (", want,
               "): recompile the artifact with this kiln");

  runtime::ModuleImage& image = out.image;
  image.name = name;
  if (dev.emulated()) {
    // The emulator runs the host flavor of the same kernels; cubins and PTX are not for it.
    image.emulation_source = cuda::emulation_source(*program);
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<int> archs,
                          parse_cuda_archs("cuda:" + artifact_.header().get("target.cuda_archs")));
    const int cc = dev.compute_capability();
    // A cubin runs on its major arch at an equal or higher minor; PTX on any equal or newer GPU.
    int cubin = 0, ptx = 0;
    for (int a : archs) {
      if (a / 10 == cc / 10 && a <= cc) cubin = a;
      if (a <= cc) ptx = a;
    }
    if (!cubin && !ptx)
      return err("the artifact has code for ", arch_list(archs), ", and this GPU is sm_", cc,
                 " (recompile with --target cuda:sm_", cc, ")");
    const int chosen = cubin ? cubin : ptx;
    if (cubin) {
      auto b = v.data(*v.find(SectionKind::kCudaCubin, cuda_section_name(name, cubin)));
      auto ca = cubin_arch(b);
      if (!ca.ok() || *ca != cubin)
        return err("cuda.cubin ", cuda_section_name(name, cubin), " is not an sm_", cubin, " cubin",
                   ca.ok() ? "" : ": " + ca.message());
      image.cubins[cubin].assign(b.begin(), b.end());
    } else {
      image.ptx = std::string(v.text(*v.find(SectionKind::kCudaPtx, cuda_section_name(name, ptx))));
    }
    // Code below sm_90 has no griddepcontrol.wait: launching it with PDL would let a kernel
    // start before its producer's writes are visible.
    out.pdl = chosen >= 90;
  }
  out.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

Result<std::vector<runtime::MappedConstant>> CudaArtifactSource::mapped_constants() const {
  return ArtifactGraphSource(artifact_).mapped_constants();
}

}  // namespace kiln::artifact
