// Object code into this process: ORC's LLJIT links the relocatable objects that compile_graph
// (JIT path) or emit_object (ahead of time, then load_object) produced. Linking only: no LLVM IR,
// no optimization. Kernels resolve memcpy/memset and the C library's cosf/sinf/expf (rope and
// softmax, as llama.cpp calls them) from the process; they call nothing else.
#if KILN_WITH_LLVM

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>

#include <chrono>
#include <set>

#include "codegen/cpu/llvm_compile.h"

namespace kiln::cpu {
namespace {

class LinkedProgram : public JitProgram {
 public:
  const std::vector<KernelInfo>& kernels() const override { return kernels_; }
  KilnKernelFn function(size_t i) const override { return fns_.at(i); }
  double compile_seconds() const override { return seconds_; }
  size_t distinct_kernels() const override { return distinct_; }

  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::vector<KernelInfo> kernels_;
  std::vector<KilnKernelFn> fns_;
  double seconds_ = 0;
  size_t distinct_ = 0;
};

}  // namespace

Result<std::unique_ptr<JitProgram>> link_objects(const std::vector<std::vector<uint8_t>>& objects,
                                                 std::vector<KernelInfo> kernels, double seconds,
                                                 size_t distinct) {
  auto t0 = std::chrono::steady_clock::now();
  init_llvm_targets();
  auto prog = std::make_unique<LinkedProgram>();
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit) return make_error("ORC JIT: ", llvm::toString(jit.takeError()));
  prog->jit = std::move(*jit);
  auto& jd = prog->jit->getMainJITDylib();
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      prog->jit->getDataLayout().getGlobalPrefix());
  if (!gen) return make_error("ORC JIT: ", llvm::toString(gen.takeError()));
  jd.addGenerator(std::move(*gen));
  for (const auto& o : objects) {
    auto buf = llvm::MemoryBuffer::getMemBufferCopy(
        llvm::StringRef(reinterpret_cast<const char*>(o.data()), o.size()), "kiln_kernels");
    if (auto err = prog->jit->addObjectFile(std::move(buf)))
      return make_error("ORC JIT: adding object code: ", llvm::toString(std::move(err)));
  }
  for (const KernelInfo& k : kernels) {
    auto addr = prog->jit->lookup(k.symbol);
    if (!addr)
      return make_error("ORC JIT: kernel ", k.name, ": ", llvm::toString(addr.takeError()));
    prog->fns_.push_back(addr->toPtr<KilnKernelFn>());
  }
  prog->kernels_ = std::move(kernels);
  prog->distinct_ = distinct;
  prog->seconds_ =
      seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::unique_ptr<JitProgram>(std::move(prog));
}

Result<std::unique_ptr<JitProgram>> load_object(const ObjectCode& code) {
  if (code.target.arch() != Target{}.arch())
    return make_error("object code for ", code.target.str(), " cannot run on this host (",
                      Target{}.arch(), ")");
  std::vector<std::string> missing = missing_host_features(code.required_features);
  if (!missing.empty()) {
    std::string list;
    for (const std::string& f : missing) list += (list.empty() ? "" : ", ") + f;
    return make_error("object code for ", code.target.str(),
                      " needs CPU features this host lacks: ", list);
  }
  std::set<std::string> symbols;
  size_t distinct = 0;
  for (const KernelInfo& k : code.kernels) distinct += symbols.insert(k.symbol).second;
  return link_objects({code.bytes}, code.kernels, 0, distinct);
}

}  // namespace kiln::cpu

#else  // !KILN_WITH_LLVM

#include "codegen/cpu/cpu_codegen.h"

namespace kiln::cpu {

namespace {
Error no_llvm() {
  return Error("CPU code generation: kiln was built without LLVM (KILN_WITH_LLVM=OFF)");
}
}  // namespace

Result<std::unique_ptr<JitProgram>> jit_compile(const ir::Graph&, const Target&, const Options&) {
  return no_llvm();
}
Result<ObjectCode> emit_object(const ir::Graph&, const Target&, const Options&) {
  return no_llvm();
}
Result<std::unique_ptr<JitProgram>> load_object(const ObjectCode&) {
  return no_llvm();
}
Result<std::vector<std::string>> target_features(const Target&) {
  return no_llvm();
}
std::vector<std::string> missing_host_features(const std::vector<std::string>& required) {
  return required;
}
bool llvm_available() {
  return false;
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
