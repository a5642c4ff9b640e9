#include "runtime/cuda_emulator.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>

namespace kiln::runtime {
namespace {

// Must match the host prelude (codegen/cuda/prelude.cpp).
struct KlDim3 {
  uint32_t x, y, z;
};
struct KlEmuHost {
  const KlDim3* (*thread_idx)();
  const KlDim3* (*block_idx)();
  const KlDim3* (*block_dim)();
  const KlDim3* (*grid_dim)();
  void (*sync)();
  uint32_t (*shfl_xor)(uint32_t v, int mask);
  uint32_t (*shfl_idx)(uint32_t v, int src);
};
// The kernels' by-value argument: KilnArgs (codegen/cuda/cuda_codegen.h), same layout.
struct ArgBlock {
  void* p[24];
};
constexpr size_t kMaxArgBytes = sizeof(ArgBlock);
using KernelFn = void (*)(ArgBlock);

constexpr size_t kStack = 256 * 1024;
constexpr int kMaxThreads = 1024;

// One block's threads as fibers.
struct Fiber {
  ucontext_t ctx;
  KlDim3 tid;
  enum State { kRun, kBlock, kWarp, kDone } state = kRun;
};

struct BlockRun {
  ucontext_t sched;
  std::vector<Fiber> f;
  int cur = 0;
  KlDim3 bid{}, bdim{}, gdim{};
  KernelFn fn = nullptr;
  ArgBlock args{};
  uint32_t slots[kMaxThreads / 32][32];
};

thread_local BlockRun* g_run = nullptr;

void trampoline() {
  BlockRun* b = g_run;
  b->fn(b->args);
  b->f[size_t(b->cur)].state = Fiber::kDone;
  // Returning switches to uc_link (the scheduler).
}

void park(Fiber::State s) {
  BlockRun* b = g_run;
  Fiber& f = b->f[size_t(b->cur)];
  f.state = s;
  swapcontext(&f.ctx, &b->sched);
}

const KlDim3* host_tid() {
  return &g_run->f[size_t(g_run->cur)].tid;
}
const KlDim3* host_bid() {
  return &g_run->bid;
}
const KlDim3* host_bdim() {
  return &g_run->bdim;
}
const KlDim3* host_gdim() {
  return &g_run->gdim;
}
void host_sync() {
  park(Fiber::kBlock);
}
uint32_t host_shfl(uint32_t v, int arg, bool xor_mode) {
  BlockRun* b = g_run;
  const uint32_t t = b->f[size_t(b->cur)].tid.x, w = t >> 5, lane = t & 31;
  b->slots[w][lane] = v;
  park(Fiber::kWarp);
  const uint32_t src = xor_mode ? (lane ^ uint32_t(arg)) & 31 : uint32_t(arg) & 31;
  const uint32_t r = b->slots[w][src];
  park(Fiber::kWarp);  // nobody overwrites a slot before every lane has read
  return r;
}
uint32_t host_shfl_xor(uint32_t v, int mask) {
  return host_shfl(v, mask, true);
}
uint32_t host_shfl_idx(uint32_t v, int src) {
  return host_shfl(v, src, false);
}

const KlEmuHost kHost = {host_tid,  host_bid,      host_bdim,    host_gdim,
                         host_sync, host_shfl_xor, host_shfl_idx};

struct Module {
  void* lib = nullptr;
};

struct Op {  // a recorded stream operation (for graphs)
  enum Kind { kLaunch, kCopyIn, kCopyOut, kMemset } kind = kLaunch;
  KernelFn fn = nullptr;
  LaunchDims d;
  ArgBlock args{};
  bool pdl = false;
  void* dst = nullptr;
  const void* src = nullptr;
  size_t n = 0;
  uint8_t value = 0;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

class EmulatedDevice : public CudaDevice {
 public:
  explicit EmulatedDevice(EmulatorOptions o) : o_(std::move(o)) {
    if (o_.cxx.empty()) {
      const char* e = std::getenv("KILN_EMU_CXX");
      o_.cxx = e && *e ? e : "c++";
    }
    if (o_.cache_dir.empty()) {
      const char* k = std::getenv("KILN_CACHE");
      const char* home = std::getenv("HOME");
      o_.cache_dir = k && *k ? std::string(k) + "/cuda-emu"
                             : std::string(home && *home ? home : "/tmp") + "/.cache/kiln/cuda-emu";
    }
    stacks_ = static_cast<char*>(mmap(nullptr, kStack * kMaxThreads, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  }
  ~EmulatedDevice() override {
    for (auto& [p, a] : allocs_) munmap(a.base, a.len);
    for (Module& m : modules_)
      if (m.lib) dlclose(m.lib);
    if (stacks_ != MAP_FAILED) munmap(stacks_, kStack * kMaxThreads);
  }

  std::string name() const override {
    return "CPU emulation of a CUDA device (sm_" + std::to_string(o_.compute_capability) + ")";
  }
  int compute_capability() const override { return o_.compute_capability; }
  bool emulated() const override { return true; }

  Result<DevPtr> alloc(size_t bytes) override {
    // The buffer ends (256-byte aligned) right before a PROT_NONE guard page.
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t body = (bytes + 255) / 256 * 256;
    const size_t len = (body + page - 1) / page * page + page;
    void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return make_error("emulator: out of memory (", bytes, " bytes)");
    char* guard = static_cast<char*>(base) + len - page;
    mprotect(guard, page, PROT_NONE);
    char* p = guard - body;
    allocs_[DevPtr(uintptr_t(p))] = Alloc{base, len};
    return DevPtr(uintptr_t(p));
  }
  void free(DevPtr p) override {
    auto it = allocs_.find(p);
    if (it == allocs_.end()) return;
    munmap(it->second.base, it->second.len);
    allocs_.erase(it);
  }
  Result<void*> alloc_host(size_t bytes) override {
    void* p = std::calloc(1, bytes ? bytes : 1);
    if (!p) return make_error("emulator: out of host memory");
    return p;
  }
  void free_host(void* p) override { std::free(p); }

  Status upload(DevPtr dst, const void* src, size_t n) override {
    return run_op(copy_op(Op::kCopyIn, reinterpret_cast<void*>(dst), src, n));
  }
  Status download(void* dst, DevPtr src, size_t n) override {
    return run_op(copy_op(Op::kCopyOut, dst, reinterpret_cast<const void*>(src), n));
  }
  Status upload_async(DevPtr dst, const void* src, size_t n) override {
    return upload(dst, src, n);
  }
  Status download_async(void* dst, DevPtr src, size_t n) override { return download(dst, src, n); }
  Status memset_async(DevPtr dst, uint8_t value, size_t n) override {
    Op op;
    op.kind = Op::kMemset;
    op.dst = reinterpret_cast<void*>(dst);
    op.n = n;
    op.value = value;
    return run_op(op);
  }

  Result<int> load_module(const ModuleImage& m) override {
    if (m.emulation_source.empty())
      return make_error("emulator: module '", m.name, "' has no host-flavor source");
    char key[32];
    std::snprintf(key, sizeof key, "%016llx",
                  (unsigned long long)fnv1a(m.emulation_source + o_.cxx));
    const std::string dir = o_.cache_dir;
    for (size_t p = 1; p <= dir.size(); ++p)
      if (p == dir.size() || dir[p] == '/') mkdir(dir.substr(0, p).c_str(), 0755);
    const std::string so = dir + "/" + key + ".so";
    if (access(so.c_str(), R_OK) != 0) {
      const std::string src = dir + "/" + key + ".cpp", log = dir + "/" + key + ".log";
      const std::string tmp = so + ".tmp" + std::to_string(getpid());
      {
        std::ofstream f(src, std::ios::binary);
        f << m.emulation_source;
      }
      const std::string cmd = o_.cxx + " -std=c++17 -O1 -fPIC -shared -ffp-contract=off -w -o '" +
                              tmp + "' '" + src + "' > '" + log + "' 2>&1";
      if (std::system(cmd.c_str()) != 0) {
        std::ifstream f(log);
        std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        return make_error("emulator: the host compiler failed on module '", m.name, "' (", src,
                          "):\n", text.substr(0, 6000));
      }
      std::rename(tmp.c_str(), so.c_str());
    }
    void* lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return make_error("emulator: dlopen ", so, ": ", dlerror());
    auto init = reinterpret_cast<void (*)(const KlEmuHost*)>(dlsym(lib, "kl_emu_init"));
    if (!init) return make_error("emulator: module '", m.name, "' has no kl_emu_init");
    init(&kHost);
    modules_.push_back(Module{lib});
    return int(modules_.size() - 1);
  }

  Result<void*> function(int module, const std::string& entry) override {
    if (module < 0 || module >= int(modules_.size())) return make_error("emulator: bad module");
    void* f = dlsym(modules_[size_t(module)].lib, entry.c_str());
    if (!f) return make_error("emulator: no kernel '", entry, "' in the module");
    return f;
  }

  Status launch(void* fn, const LaunchDims& d, const void* args, size_t args_bytes,
                bool pdl) override {
    if (args_bytes > kMaxArgBytes) return make_error("emulator: argument block too large");
    Op op;
    op.kind = Op::kLaunch;
    op.fn = reinterpret_cast<KernelFn>(fn);
    op.d = d;
    std::memcpy(op.args.p, args, args_bytes);
    op.pdl = pdl;
    return run_op(op);
  }

  Status begin_capture() override {
    if (capturing_) return make_error("emulator: already capturing");
    capturing_ = true;
    recorded_.clear();
    return Status::Ok();
  }
  Result<int> end_capture() override {
    if (!capturing_) return make_error("emulator: not capturing");
    capturing_ = false;
    graphs_.push_back(std::move(recorded_));
    recorded_.clear();
    stats_.captures++;
    return int(graphs_.size() - 1);
  }
  Status launch_graph(int g) override {
    if (g < 0 || g >= int(graphs_.size())) return make_error("emulator: bad graph");
    if (capturing_) return make_error("emulator: graph launch during capture");
    stats_.graph_launches++;
    for (const Op& op : graphs_[size_t(g)]) KILN_RETURN_IF_ERROR(execute(op));
    return Status::Ok();
  }
  void destroy_graph(int g) override {
    if (g >= 0 && g < int(graphs_.size())) graphs_[size_t(g)].clear();
  }

  Status synchronize() override {
    if (capturing_) return make_error("emulator: synchronize during capture");
    return Status::Ok();
  }
  Result<int> record_event() override {
    events_.push_back(std::chrono::steady_clock::now());
    return int(events_.size() - 1);
  }
  Result<double> elapsed_ms(int a, int b) override {
    if (a < 0 || b < 0 || a >= int(events_.size()) || b >= int(events_.size()))
      return make_error("emulator: bad event");
    return std::chrono::duration<double, std::milli>(events_[size_t(b)] - events_[size_t(a)])
        .count();
  }
  void destroy_event(int) override {}
  bool supports_pdl() const override { return true; }

  const EmulatorStats& stats() const { return stats_; }

 private:
  struct Alloc {
    void* base;
    size_t len;
  };

  static Op copy_op(Op::Kind k, void* dst, const void* src, size_t n) {
    Op op;
    op.kind = k;
    op.dst = dst;
    op.src = src;
    op.n = n;
    return op;
  }

  Status run_op(const Op& op) {
    if (capturing_) {
      recorded_.push_back(op);
      return Status::Ok();
    }
    return execute(op);
  }

  Status execute(const Op& op) {
    switch (op.kind) {
      case Op::kCopyIn:
      case Op::kCopyOut:
        std::memcpy(op.dst, op.src, op.n);
        return Status::Ok();
      case Op::kMemset:
        std::memset(op.dst, op.value, op.n);
        return Status::Ok();
      case Op::kLaunch:
        break;
    }
    stats_.launches++;
    if (op.pdl) stats_.pdl_launches++;
    const uint32_t nt = op.d.block;
    if (nt == 0 || nt > kMaxThreads) return make_error("emulator: block of ", nt, " threads");
    if (stacks_ == MAP_FAILED) return make_error("emulator: no fiber stacks");
    BlockRun run;
    run.fn = op.fn;
    run.args = op.args;
    run.bdim = {nt, 1, 1};
    run.gdim = {op.d.grid[0], op.d.grid[1], op.d.grid[2]};
    run.f.resize(nt);
    BlockRun* saved = g_run;
    g_run = &run;
    Status st = Status::Ok();
    for (uint32_t z = 0; z < op.d.grid[2] && st.ok(); ++z)
      for (uint32_t y = 0; y < op.d.grid[1] && st.ok(); ++y)
        for (uint32_t x = 0; x < op.d.grid[0] && st.ok(); ++x) {
          run.bid = {x, y, z};
          st = run_block(run);
          stats_.blocks++;
        }
    g_run = saved;
    return st;
  }

  Status run_block(BlockRun& b) {
    const int n = int(b.f.size());
    for (int t = 0; t < n; ++t) {
      Fiber& f = b.f[size_t(t)];
      f.tid = {uint32_t(t), 0, 0};
      f.state = Fiber::kRun;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = stacks_ + size_t(t) * kStack;
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = &b.sched;
      makecontext(&f.ctx, trampoline, 0);
    }
    for (;;) {
      for (int t = 0; t < n; ++t)
        if (b.f[size_t(t)].state == Fiber::kRun) {
          b.cur = t;
          swapcontext(&b.sched, &b.f[size_t(t)].ctx);
        }
      int done = 0, blocked = 0;
      for (const Fiber& f : b.f) {
        done += f.state == Fiber::kDone;
        blocked += f.state == Fiber::kBlock;
      }
      if (done == n) return Status::Ok();
      bool released = false;
      for (int w = 0; w * 32 < n; ++w) {
        const int lanes = std::min(32, n - 32 * w);
        int waiting = 0;
        for (int l = 0; l < lanes; ++l) waiting += b.f[size_t(32 * w + l)].state == Fiber::kWarp;
        if (waiting == lanes) {
          for (int l = 0; l < lanes; ++l) b.f[size_t(32 * w + l)].state = Fiber::kRun;
          released = true;
        }
      }
      if (!released && blocked > 0 && blocked + done == n) {
        for (Fiber& f : b.f)
          if (f.state == Fiber::kBlock) f.state = Fiber::kRun;
        released = true;
      }
      if (!released) {
        int warp_wait = 0;
        for (const Fiber& f : b.f) warp_wait += f.state == Fiber::kWarp;
        return make_error("emulator: deadlock in block (", b.bid.x, ", ", b.bid.y, ", ", b.bid.z,
                          "): ", blocked, " threads at __syncthreads, ", warp_wait,
                          " at a warp shuffle, ", done,
                          " exited (a barrier not every thread reaches, or a shuffle with "
                          "exited lanes)");
      }
    }
  }

  EmulatorOptions o_;
  char* stacks_ = nullptr;
  std::map<DevPtr, Alloc> allocs_;
  std::vector<Module> modules_;
  bool capturing_ = false;
  std::vector<Op> recorded_;
  std::vector<std::vector<Op>> graphs_;
  std::vector<std::chrono::steady_clock::time_point> events_;
  EmulatorStats stats_;
};

}  // namespace

std::unique_ptr<CudaDevice> make_emulated_device(const EmulatorOptions& o) {
  return std::make_unique<EmulatedDevice>(o);
}

EmulatorStats emulator_stats(const CudaDevice& d) {
  if (auto* e = dynamic_cast<const EmulatedDevice*>(&d)) return e->stats();
  return {};
}

}  // namespace kiln::runtime
