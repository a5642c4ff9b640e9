// Regions to machine code: plan and emit every distinct region body once, link the kernel
// library's bitcode, retarget every function to the target CPU, run LLVM's O2 pipeline (inlining
// specializes the library to the kernel's static shapes; the vectorizers use the target's vector
// width), and emit relocatable object code. O2, not O3: on both real models it halves code
// generation (Gemma 3: first token 1.67 -> 0.80 s) with equal kernel speed (docs/benchmarks.md).
// Distinct kernels are spread over a few threads, each with its own LLVMContext, module and
// TargetMachine.
#if KILN_WITH_LLVM

#include "codegen/cpu/llvm_compile.h"

#include <llvm/Bitcode/BitcodeReader.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Linker/Linker.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "codegen/cpu/emit.h"
#include "codegen/cpu/region_plan.h"
#include "ir/attrs.h"

namespace kiln::cpu {
namespace detail {
std::string_view library_bitcode(std::string_view arch);  // generated (cmake/KilnBitcode.cmake)
}

void init_llvm_targets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
  });
}

namespace {

// A target with "host" resolved.
struct Resolved {
  std::string triple, cpu, features, arch;
};

std::string host_features() {
  std::string f;
  for (const auto& kv : llvm::sys::getHostCPUFeatures()) {
    // Never AMX: it needs OS permission to use and crashes here otherwise.
    if (kv.getKey().starts_with("amx")) continue;
    f += (f.empty() ? "" : ",") + std::string(kv.getValue() ? "+" : "-") + kv.getKey().str();
  }
  return f;
}

Result<Resolved> resolve(const Target& t) {
  Resolved r;
  r.triple = t.triple == "host" ? llvm::sys::getDefaultTargetTriple() : t.triple;
  r.cpu = t.cpu;
  r.features = t.features;
  if (t.cpu == "host") {
    r.cpu = llvm::sys::getHostCPUName().str();
    std::string hf = host_features();
    r.features = r.features.empty() ? hf : hf + "," + r.features;
  }
  r.arch = r.triple.substr(0, r.triple.find('-'));
  if (r.arch != "x86_64" && r.arch != "aarch64")
    return make_error("target ", t.str(), ": only x86_64 and aarch64 are supported");
  if (r.arch == "x86_64")
    r.features += std::string(r.features.empty() ? "" : ",") + "-amx-tile,-amx-int8,-amx-bf16";
  return r;
}

Result<std::unique_ptr<llvm::TargetMachine>> make_tm(const Resolved& r) {
  init_llvm_targets();
  std::string err;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(r.triple, err);
  if (!target) return make_error("target ", r.triple, ": ", err);
  llvm::TargetOptions opt;
  opt.AllowFPOpFusion = llvm::FPOpFusion::Standard;
  std::unique_ptr<llvm::TargetMachine> tm(
      target->createTargetMachine(r.triple, r.cpu, r.features, opt, llvm::Reloc::PIC_, std::nullopt,
                                  llvm::CodeGenOptLevel::Aggressive));
  if (!tm)
    return make_error("target ", r.triple, ": cannot create a target machine for cpu ", r.cpu);
  return tm;
}

bool has_feature(const llvm::TargetMachine& tm, const char* f) {
  return tm.getMCSubtargetInfo()->checkFeatures(std::string("+") + f);
}

// Two regions with equal keys compile to the same function: ops, attributes, types and wiring,
// without names.
std::string region_key(const ir::Node& region) {
  std::string k;
  std::map<const ir::Value*, int> id;
  for (const auto& n : region.body->nodes()) {
    k += ir::op_name(n->op);
    for (const ir::Attr& a : n->attrs.list()) k += " " + a.name + "=" + ir::attr_value_str(a.value);
    for (const ir::Value* o : n->operands) k += " %" + std::to_string(id.count(o) ? id[o] : -1);
    for (const ir::Value* r : n->results) {
      k += " :" + r->type.str();
      id[r] = int(id.size());
    }
    k += "\n";
  }
  return k;
}

struct Job {
  const ir::Node* region;
  std::string symbol;
  size_t kernel;  // index of the first kernel with this body
};

uint64_t align64(uint64_t x) {
  return (x + 63) & ~uint64_t(63);
}

// Compiles jobs into one object file; fills their KernelInfo.
Status compile_module(const std::vector<Job>& jobs, const Resolved& r, const Options& o,
                      const std::set<const ir::Value*>& packed_values,
                      std::vector<KernelInfo>& infos, std::vector<uint8_t>* object) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::TargetMachine> tm, make_tm(r));
  llvm::LLVMContext ctx;
  auto mod = std::make_unique<llvm::Module>("kiln", ctx);
  mod->setTargetTriple(r.triple);
  mod->setDataLayout(tm->createDataLayout());

  EmitTarget et;
  et.native_f16 = r.arch == "aarch64" || has_feature(*tm, "f16c");
  plan::PlanOptions po;
  po.microkernels = o.microkernels && r.arch == "x86_64";
  po.packed_weights = po.microkernels && o.packed_weights;
  po.packed_values = &packed_values;
  std::set<std::string> kernels;
  for (const Job& j : jobs) {
    auto p = plan::plan_region(*j.region, po);
    if (!p.ok()) return p.error().wrap("region " + j.region->attrs.s("name"));
    KernelInfo& info = infos[j.kernel];
    info.shared_bytes = align64(p->shared_bytes);
    info.scratch_bytes = info.shared_bytes + align64(p->private_bytes);
    info.phases = int(std::max<size_t>(1, p->phases.size()));
    info.uses_microkernels = p->uses_microkernels;
    info.packed_operands = p->packed_operands;
    if (std::getenv("KILN_CODEGEN_DEBUG"))
      llvm::errs() << "region " << j.region->attrs.s("name") << "\n" << plan::describe(*p);
    RegionEmitter em(*mod, et, *j.region, *p);
    Status st = em.emit(j.symbol, info.scratch_bytes);
    if (!st.ok()) return st.error().wrap("region " + j.region->attrs.s("name"));
    kernels.insert(j.symbol);
  }

  // The kernel library, only what the kernels call.
  std::string_view bc = detail::library_bitcode(r.arch);
  if (bc.empty()) return make_error("no kernel library bitcode for ", r.arch);
  auto lib = llvm::parseBitcodeFile(
      llvm::MemoryBufferRef(llvm::StringRef(bc.data(), bc.size()), "kiln_library"), ctx);
  if (!lib) return make_error("kernel library bitcode: ", llvm::toString(lib.takeError()));
  (*lib)->setTargetTriple(r.triple);
  (*lib)->setDataLayout(mod->getDataLayout());
  if (llvm::Linker::linkModules(*mod, std::move(*lib), llvm::Linker::Flags::LinkOnlyNeeded))
    return make_error("linking the kernel library failed");

  // Native half conversions: same results as the library's integer code, one instruction.
  if (et.native_f16) {
    if (llvm::Function* f = mod->getFunction("kl_f16_to_f32"); f && !f->isDeclaration()) {
      f->deleteBody();
      llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
      b.CreateRet(b.CreateFPExt(b.CreateBitCast(f->getArg(0), b.getHalfTy()), b.getFloatTy()));
    }
    if (llvm::Function* f = mod->getFunction("kl_f32_to_f16"); f && !f->isDeclaration()) {
      f->deleteBody();
      llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
      b.CreateRet(b.CreateBitCast(b.CreateFPTrunc(f->getArg(0), b.getHalfTy()), b.getInt16Ty()));
    }
    if (llvm::Function* f = mod->getFunction("kl_f16x16_to_f32"); f && !f->isDeclaration()) {
      f->deleteBody();
      llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
      llvm::Value* h = b.CreateAlignedLoad(llvm::FixedVectorType::get(b.getInt16Ty(), 16),
                                           f->getArg(0), llvm::Align(1));
      h = b.CreateBitCast(h, llvm::FixedVectorType::get(b.getHalfTy(), 16));
      b.CreateAlignedStore(b.CreateFPExt(h, llvm::FixedVectorType::get(b.getFloatTy(), 16)),
                           f->getArg(1), llvm::Align(4));
      b.CreateRetVoid();
    }
  }
  // Scalar functions of one element are inlined everywhere, so the loops that call them vectorize.
  for (const char* name : {"kl_f16_to_f32", "kl_f32_to_f16", "kl_f16x16_to_f32", "kl_bf16_to_f32",
                           "kl_f32_to_bf16", "kl_expf", "kl_tanhf", "kl_tanhf_exact", "kl_erff",
                           "kl_silu", "kl_gelu_tanh", "kl_gelu_erf", "kl_gelu_tanh_f16"})
    if (llvm::Function* f = mod->getFunction(name); f && !f->isDeclaration()) {
      f->removeFnAttr(llvm::Attribute::NoInline);
      f->addFnAttr(llvm::Attribute::AlwaysInline);
    }
  const bool wide = r.arch == "x86_64" && has_feature(*tm, "avx512f");
  for (llvm::Function& f : *mod) {
    if (f.isDeclaration()) continue;
    f.removeFnAttr("target-cpu");
    f.removeFnAttr("target-features");
    f.removeFnAttr("tune-cpu");
    f.addFnAttr("target-cpu", r.cpu);
    if (!r.features.empty()) f.addFnAttr("target-features", r.features);
    if (wide) f.addFnAttr("prefer-vector-width", "512");
    f.addFnAttr(llvm::Attribute::NoUnwind);
    if (!kernels.count(f.getName().str())) f.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
  for (llvm::GlobalVariable& gv : mod->globals())
    if (!gv.isDeclaration()) gv.setLinkage(llvm::GlobalValue::InternalLinkage);
  std::string verr;
  llvm::raw_string_ostream vs(verr);
  if (llvm::verifyModule(*mod, &vs)) return make_error("internal: invalid kernel IR: ", vs.str());

  if (const char* dump = std::getenv("KILN_CODEGEN_DUMP_IR_UNOPT")) {
    std::error_code ec;
    llvm::raw_fd_ostream os(dump, ec, llvm::sys::fs::OF_Append);
    if (!ec) mod->print(os, nullptr);
  }
  {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PipelineTuningOptions pto;
    pto.LoopVectorization = true;
    pto.SLPVectorization = true;
    llvm::PassBuilder pb(tm.get(), pto);
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2);
    mpm.run(*mod, mam);
  }
  if (const char* dump = std::getenv("KILN_CODEGEN_DUMP_IR")) {
    std::error_code ec;
    llvm::raw_fd_ostream os(dump, ec, llvm::sys::fs::OF_Append);
    if (!ec) mod->print(os, nullptr);
  }
  llvm::SmallVector<char, 0> buf;
  llvm::raw_svector_ostream os(buf);
  llvm::legacy::PassManager pm;
  if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
    return make_error("target ", r.triple, " cannot emit object files");
  pm.run(*mod);
  object->assign(buf.begin(), buf.end());
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> target_features(const Target& target) {
  KILN_ASSIGN_OR_RETURN(Resolved r, resolve(target));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::TargetMachine> tm, make_tm(r));
  const llvm::MCSubtargetInfo* sti = tm->getMCSubtargetInfo();
  // ISA features only: those cpuid (or the OS) reports on a machine of the same architecture.
  std::set<std::string> isa;
#if defined(__x86_64__)
  const char* host_arch = "x86_64";
#elif defined(__aarch64__)
  const char* host_arch = "aarch64";
#else
  const char* host_arch = "";
#endif
  if (r.arch == host_arch) {
    for (const auto& kv : llvm::sys::getHostCPUFeatures()) isa.insert(kv.getKey().str());
  } else if (r.arch == "aarch64") {
    isa = {"neon", "fp-armv8", "fullfp16", "dotprod", "i8mm", "bf16", "sve",
           "sve2", "crc",      "lse",      "rdm",     "sha2", "aes"};
  } else {
    isa = {"sse2",     "sse3",       "ssse3",      "sse4.1",     "sse4.2",   "popcnt",
           "avx",      "avx2",       "fma",        "f16c",       "bmi",      "bmi2",
           "lzcnt",    "movbe",      "avx512f",    "avx512bw",   "avx512cd", "avx512dq",
           "avx512vl", "avx512vnni", "avx512bf16", "avx512fp16", "avxvnni"};
  }
  std::vector<std::string> out;
  for (const llvm::SubtargetFeatureKV& kv : sti->getAllProcessorFeatures())
    if (isa.count(kv.Key) && sti->getFeatureBits().test(kv.Value)) out.push_back(kv.Key);
  return out;
}

std::vector<std::string> missing_host_features(const std::vector<std::string>& required) {
  auto host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> missing;
  for (const std::string& f : required) {
    auto it = host.find(f);
    if (it == host.end() || !it->getValue()) missing.push_back(f);
  }
  return missing;
}

// The graph values that some kernel reads in the packed layout (a product's weight), found by
// planning each distinct region body once without them.
Result<std::set<const ir::Value*>> packed_values(const ir::Graph& g, const Resolved& r,
                                                 const Options& o) {
  std::set<const ir::Value*> out;
  plan::PlanOptions po;
  po.microkernels = o.microkernels && r.arch == "x86_64";
  po.packed_weights = po.microkernels && o.packed_weights;
  if (!po.packed_weights) return out;
  std::map<std::string, std::vector<int>> by_key;
  for (const auto& n : g.nodes()) {
    if (n->op != ir::Op::Region) continue;
    const std::string key = region_key(*n);
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      auto p = plan::plan_region(*n, po);
      if (!p.ok()) return p.error().wrap("region " + n->attrs.s("name"));
      it = by_key.emplace(key, p->packed_operands).first;
    }
    for (int i : it->second) out.insert(n->operand(i));
  }
  return out;
}

Result<CompiledGraph> compile_graph(const ir::Graph& g, const Target& target, const Options& o,
                                    int max_objects) {
  auto t0 = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(Resolved r, resolve(target));
  CompiledGraph out;
  std::map<std::string, size_t> first;  // body key -> kernel index
  std::vector<Job> jobs;
  for (const auto& n : g.nodes()) {
    if (n->op != ir::Op::Region) continue;
    KernelInfo info;
    info.name = n->attrs.s("name");
    info.num_args = n->num_operands() + int(n->results.size());
    const std::string key = region_key(*n);
    auto it = first.find(key);
    if (it == first.end()) {
      info.symbol = "kiln_kernel_" + std::to_string(jobs.size());
      first[key] = out.kernels.size();
      jobs.push_back({n.get(), info.symbol, out.kernels.size()});
    } else {
      info.symbol = out.kernels[it->second].symbol;
    }
    out.kernels.push_back(info);
  }
  out.distinct = jobs.size();
  KILN_ASSIGN_OR_RETURN(const std::set<const ir::Value*> packed, packed_values(g, r, o));
  int nobj = max_objects;
  if (nobj <= 0) nobj = 1;
  nobj = std::max(1, std::min<int>(nobj, int(jobs.size())));
  std::vector<std::vector<Job>> parts(static_cast<size_t>(nobj));
  for (size_t i = 0; i < jobs.size(); ++i) parts[i % size_t(nobj)].push_back(jobs[i]);
  out.objects.resize(size_t(nobj));
  std::vector<Status> status(static_cast<size_t>(nobj));
  if (!jobs.empty()) {
    std::vector<std::thread> threads;
    for (int i = 1; i < nobj; ++i)
      threads.emplace_back([&, i] {
        status[size_t(i)] =
            compile_module(parts[size_t(i)], r, o, packed, out.kernels, &out.objects[size_t(i)]);
      });
    status[0] = compile_module(parts[0], r, o, packed, out.kernels, &out.objects[0]);
    for (auto& t : threads) t.join();
    for (const Status& s : status) KILN_RETURN_IF_ERROR(s);
  } else {
    out.objects.clear();
  }
  // Copies of a body share its function and its description.
  std::map<std::string, size_t> by_symbol;
  for (const Job& j : jobs) by_symbol[j.symbol] = j.kernel;
  for (KernelInfo& k : out.kernels) {
    const KernelInfo& f = out.kernels[by_symbol.at(k.symbol)];
    if (&f == &k) continue;
    k.scratch_bytes = f.scratch_bytes;
    k.shared_bytes = f.shared_bytes;
    k.phases = f.phases;
    k.uses_microkernels = f.uses_microkernels;
    k.packed_operands = f.packed_operands;
  }
  KILN_ASSIGN_OR_RETURN(out.required_features, target_features(target));
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

Result<ObjectCode> emit_object(const ir::Graph& g, const Target& target, const Options& options) {
  KILN_ASSIGN_OR_RETURN(CompiledGraph cg, compile_graph(g, target, options, 1));
  ObjectCode oc;
  if (!cg.objects.empty()) oc.bytes = std::move(cg.objects[0]);
  oc.kernels = std::move(cg.kernels);
  oc.target = target;
  oc.required_features = std::move(cg.required_features);
  return oc;
}

Result<std::unique_ptr<JitProgram>> jit_compile(const ir::Graph& g, const Target& target,
                                                const Options& options) {
  if (target.arch() != Target{}.arch())
    return make_error("jit_compile: target ", target.str(), " is not this host's architecture");
  int threads = options.compile_threads;
  if (threads <= 0) threads = std::clamp(int(std::thread::hardware_concurrency()), 1, 4);
  KILN_ASSIGN_OR_RETURN(CompiledGraph cg, compile_graph(g, target, options, threads));
  return link_objects(cg.objects, std::move(cg.kernels), cg.seconds, cg.distinct);
}

bool llvm_available() {
  return true;
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
