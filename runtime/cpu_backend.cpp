// The CPU backend: compiled graphs (compiled_graph.h) on CpuExecutors that share one thread pool,
// one arena, one scratch block, the derived constants and the KV cache.
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "runtime/backend.h"
#include "runtime/cpu_executor.h"
#include "runtime/memory_trace.h"

namespace kiln::runtime {
namespace {

// Address space reserved for the arena and for kernel scratch. Pages cost nothing until a graph
// touches them, so the reservation is generous; the resident size is that of the largest graph
// run so far. Smaller reservations are tried when the system refuses (strict overcommit).
Result<Mapping> reserve(size_t want) {
  for (size_t bytes = want; bytes >= (size_t(64) << 20); bytes /= 4) {
    auto m = Mapping::create(bytes, /*reserve_only=*/true);
    if (m.ok()) return m;
  }
  return Mapping::create(size_t(64) << 20);
}

// Drops the resident pages of weights that only derived constants read (the merged q/k/v and
// gate/up copies replace them), so the copies do not add to the resident size. Always safe: a
// read-only file mapping refaults from the file if anything reads them again.
void release_pages(std::span<const uint8_t> bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  uintptr_t first = (uintptr_t(bytes.data()) + page - 1) / page * page;
  uintptr_t last = (uintptr_t(bytes.data()) + bytes.size()) / page * page;
  if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// The GGUF's weights, with the small ones (norm scales, biases: at most kSmallWeight bytes)
// copied once into memory of their own. Kernels read those every step, and a fault on one would
// map the file's pages around it too, which the page cache may hold as large folios (an
// artifact just written, for one): a 2 KB norm vector could keep a megabyte of neighbouring
// weights resident that are only read packed.
class ResidentSmallWeights : public WeightSource {
 public:
  static constexpr size_t kSmallWeight = size_t(64) << 10;
  explicit ResidentSmallWeights(const gguf::GgufFile& file) : mapped_(file), file_(file) {}
  // Give back the pages that copying faulted in (the file must be a read-only file mapping).
  void release_after_copy() { release_ = true; }
  Result<std::span<const uint8_t>> get(const std::string& name,
                                       const ir::TensorType& want) const override {
    KILN_ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, file_.get(name, want));
    if (bytes.size() > kSmallWeight) return bytes;
    auto [it, added] = copies_.try_emplace(name);
    // 64-byte aligned, like every buffer kernels read.
    auto aligned = [](std::vector<uint8_t>& v) {
      return v.data() + (64 - uintptr_t(v.data()) % 64) % 64;
    };
    if (added) {
      it->second.resize((bytes.size() + 63) / 64 * 64 + 64);
      std::memcpy(aligned(it->second), bytes.data(), bytes.size());
      // The fault may have mapped the whole folio around the weight: give back the aligned
      // 2 MiB (the largest folio) around it, within the file's mapping.
      if (release_) {
        const uintptr_t huge = uintptr_t(2) << 20, lo = uintptr_t(mapped_.bytes().data()),
                        hi = lo + mapped_.bytes().size();
        const uintptr_t a = std::max(lo, uintptr_t(bytes.data()) / huge * huge);
        const uintptr_t b =
            std::min(hi, (uintptr_t(bytes.data()) + bytes.size()) / huge * huge + huge);
        release_pages(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(a), b - a));
      }
    }
    return std::span<const uint8_t>(aligned(it->second), bytes.size());
  }

 private:
  const gguf::GgufFile& mapped_;
  GgufWeights file_;
  bool release_ = false;
  mutable std::map<std::string, std::vector<uint8_t>> copies_;  // filled at bind, then fixed
};

class CpuBackend : public Backend {
 public:
  CpuBackend(const gguf::GgufFile& file, const BackendOptions& o, int ctx,
             std::unique_ptr<GraphSource> source)
      : file_(file),
        options_(o),
        ctx_(ctx),
        weights_(file),
        constants_(weights_),
        pool_(o.threads),
        source_(source
                    ? std::move(source)
                    : std::make_unique<JitGraphSource>(file, o.pipeline, make_codegen_options(o))) {
  }

  static cpu::Options make_codegen_options(const BackendOptions& o) {
    cpu::Options c;
    c.microkernels = o.microkernels;
    return c;
  }

  Status init() {
    if (options_.release_merged_weights) {
      // Only bytes in the file's mapping: a small weight's bytes are a heap copy, which
      // MADV_DONTNEED would zero.
      constants_.on_weight_copied([this](std::span<const uint8_t> b) {
        const std::span<const uint8_t> f = file_.bytes();
        if (b.data() >= f.data() && b.data() + b.size() <= f.data() + f.size()) release_pages(b);
      });
      weights_.release_after_copy();
    }
    // What loading libLLVM touched (relocation tables, static constructors: ~40 MB) is not
    // needed again; the first compilation faults back in what it runs.
    if (options_.release_compiler_pages) cpu::release_compiler_pages();
    // Constants an artifact stores are bound where they are mapped: no evaluation, no repack.
    KILN_ASSIGN_OR_RETURN(auto mapped, source_->mapped_constants());
    for (runtime::MappedConstant& c : mapped) constants_.add_mapped(std::move(c.key), c.bytes);
    KILN_ASSIGN_OR_RETURN(arena_, reserve(size_t(16) << 30));
    KILN_ASSIGN_OR_RETURN(scratch_, reserve(size_t(1) << 30));
    context_.weights = &weights_;
    context_.constants = &constants_;
    context_.states = &states_;
    context_.pool = &pool_;
    context_.arena = arena_.data();
    context_.arena_capacity = arena_.size();
    context_.scratch = scratch_.data();
    context_.scratch_capacity = scratch_.size();
    context_.microkernels = cpu::microkernel_table();
    return Status::Ok();
  }

  std::string name() const override { return "cpu"; }
  int threads() const override { return pool_.size(); }

  Result<GraphRunner*> graph(lower::GraphSpec spec) override {
    spec.ctx = ctx_;
    spec.kv_type = options_.kv_type;
    KILN_ASSIGN_OR_RETURN(spec.slots, checked_slots(spec, options_));
    const std::string key = spec.name();
    if (auto it = graphs_.find(key); it != graphs_.end()) return it->second.get();
    KILN_ASSIGN_OR_RETURN(CompiledGraph c, source_->compile(spec));
    // Before binding makes the packed weights: LLVM's code pages and the packed copies are
    // then not resident at the same time (the peak of `kiln run`).
    if (options_.release_compiler_pages) {
      cpu::release_compiler_pages();
      trace_rss("compiler pages released");
    }
    stats_.lower_seconds += c.lower_seconds;
    stats_.passes_seconds += c.passes_seconds;
    stats_.compile_seconds += c.compile_seconds;
    auto t0 = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(auto exec, CpuExecutor::create(std::move(c), context_));
    trace_rss("bound");
    release_unused(*exec);
    trace_rss("unused pages released");
    stats_.bind_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_.graphs++;
    stats_.kernels += exec->num_kernels();
    stats_.arena_bytes = std::max(stats_.arena_bytes, exec->arena_bytes());
    stats_.scratch_bytes = std::max(stats_.scratch_bytes, exec->scratch_bytes());
    GraphRunner* r = exec.get();
    graphs_[key] = std::move(exec);
    // Code generation frees far more than it keeps; give the free heap back to the system.
    malloc_trim(0);
    trace_rss("heap trimmed");
    return r;
  }

  // What binding made redundant: the unpacked bytes of constants that kernels read only packed
  // (every graph so far), and the resident pages of weights that kernels read only through
  // derived constants or packed copies. Packing read every page of a weight, so the pages of a
  // packed weight are given back even when a kernel also reads it as stored: what that kernel
  // touches (the rows an embedding lookup reads) faults back in from the file.
  void release_unused(const CpuExecutor& exec) {
    for (const std::string& k : exec.raw_constants()) raw_constants_.insert(k);
    for (const std::string& k : exec.packed_only_constants())
      if (!raw_constants_.count(k)) constants_.release(k);
    if (!options_.release_merged_weights) return;
    for (const std::string& w : exec.bound_weights()) bound_.insert(w);
    auto release = [&](const std::string& w) {
      if (const gguf::TensorInfo* t = file_.find_tensor(w)) release_pages(file_.span(*t));
    };
    for (const std::string& w : constants_.source_weights())
      if (!bound_.count(w) && released_.insert(w).second) release(w);
    for (const std::string& w : exec.packed_weights())
      if (released_.insert(w).second) release(w);
  }

  void reset_states() override { states_.reset(); }

  BackendStats stats() const override {
    BackendStats s = stats_;
    s.state_bytes = states_.bytes();
    s.constant_bytes = constants_.bytes();
    s.constant_evaluations = constants_.evaluations();
    s.weights_packed = constants_.packs();
    s.constants_mapped = constants_.mapped_uses();
    return s;
  }

 private:
  const gguf::GgufFile& file_;
  BackendOptions options_;
  int ctx_;
  ResidentSmallWeights weights_;
  ConstantStore constants_;
  StateBuffers states_;
  ThreadPool pool_;
  std::unique_ptr<GraphSource> source_;  // JIT, or an artifact (issue 6)
  Mapping arena_, scratch_;
  ExecutorContext context_;
  std::map<std::string, std::unique_ptr<CpuExecutor>> graphs_;
  std::set<std::string> bound_, released_, raw_constants_;
  BackendStats stats_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cpu_backend(const gguf::GgufFile& file,
                                                  const BackendOptions& options) {
  return make_cpu_backend(file, options, nullptr);
}

Result<std::unique_ptr<Backend>> make_cpu_backend(const gguf::GgufFile& file,
                                                  const BackendOptions& options,
                                                  std::unique_ptr<GraphSource> source) {
  if (!cpu::llvm_available())
    return make_error(
        "the cpu backend needs LLVM, and kiln was built without it "
        "(use --backend interp)");
  if (options.kv_type != DType::F16 && options.kv_type != DType::Q8_0)
    return make_error("KV cache type ", dtype_name(options.kv_type),
                      " is not supported (f16, q8_0)");
  KILN_ASSIGN_OR_RETURN(int ctx, resolve_ctx(file, options.ctx));
  auto b = std::make_unique<CpuBackend>(file, options, ctx, std::move(source));
  KILN_RETURN_IF_ERROR(b->init());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace kiln::runtime
