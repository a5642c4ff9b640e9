#include "runtime/cuda_driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#ifdef KILN_WITH_CUDA
#include <cuda.h>
#endif

namespace kiln::runtime {

std::string cuda_fallback_message(const Status& why) {
  return "CUDA unavailable (" + why.message() + "): running on the CPU";
}

#ifndef KILN_WITH_CUDA

Status cuda_status(const std::string&) {
  return make_error("kiln was built without the CUDA backend (no CUDA toolkit headers found)");
}
Result<std::unique_ptr<CudaDevice>> open_cuda_device() {
  return cuda_status().error();
}

#else

namespace {

// The driver functions kiln calls, with their header's types.
struct Driver {
  void* lib = nullptr;
  decltype(&::cuInit) init = nullptr;
  decltype(&::cuDriverGetVersion) driver_version = nullptr;
  decltype(&::cuGetErrorName) error_name = nullptr;
  decltype(&::cuGetErrorString) error_string = nullptr;
  decltype(&::cuDeviceGetCount) device_count = nullptr;
  decltype(&::cuDeviceGet) device_get = nullptr;
  decltype(&::cuDeviceGetName) device_name = nullptr;
  decltype(&::cuDeviceGetAttribute) device_attribute = nullptr;
  decltype(&::cuDevicePrimaryCtxRetain) ctx_retain = nullptr;
  decltype(&::cuDevicePrimaryCtxRelease_v2) ctx_release = nullptr;
  decltype(&::cuCtxSetCurrent) ctx_set_current = nullptr;
  decltype(&::cuStreamCreate) stream_create = nullptr;
  decltype(&::cuStreamDestroy_v2) stream_destroy = nullptr;
  decltype(&::cuStreamSynchronize) stream_sync = nullptr;
  decltype(&::cuMemAlloc_v2) mem_alloc = nullptr;
  decltype(&::cuMemFree_v2) mem_free = nullptr;
  decltype(&::cuMemAllocHost_v2) mem_alloc_host = nullptr;
  decltype(&::cuMemFreeHost) mem_free_host = nullptr;
  decltype(&::cuMemGetInfo_v2) mem_info = nullptr;
  decltype(&::cuMemcpyHtoDAsync_v2) htod = nullptr;
  decltype(&::cuMemcpyDtoHAsync_v2) dtoh = nullptr;
  decltype(&::cuMemsetD8Async) memset8 = nullptr;
  decltype(&::cuModuleLoadData) module_load = nullptr;
  decltype(&::cuModuleUnload) module_unload = nullptr;
  decltype(&::cuModuleGetFunction) module_function = nullptr;
  decltype(&::cuLaunchKernel) launch = nullptr;
  decltype(&::cuLaunchKernelEx) launch_ex = nullptr;  // CUDA 12+, optional
  decltype(&::cuStreamBeginCapture_v2) begin_capture = nullptr;
  decltype(&::cuStreamEndCapture) end_capture = nullptr;
  decltype(&::cuGraphInstantiateWithFlags) graph_instantiate = nullptr;
  decltype(&::cuGraphLaunch) graph_launch = nullptr;
  decltype(&::cuGraphExecDestroy) graph_exec_destroy = nullptr;
  decltype(&::cuGraphDestroy) graph_destroy = nullptr;
  decltype(&::cuEventCreate) event_create = nullptr;
  decltype(&::cuEventRecord) event_record = nullptr;
  decltype(&::cuEventSynchronize) event_sync = nullptr;
  decltype(&::cuEventElapsedTime) event_elapsed = nullptr;  // _v2 in CUDA 13 headers
  decltype(&::cuEventDestroy_v2) event_destroy = nullptr;
};

template <class F>
bool sym(void* lib, F& f, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    f = reinterpret_cast<F>(dlsym(lib, n));
    if (f) return true;
  }
  return false;
}

// Loads `path` and resolves every function; an error says which step failed.
Status load_driver(const std::string& path, Driver& d) {
  d.lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!d.lib) {
    const char* e = dlerror();
    return make_error("cannot load ", path, ": ", e ? e : "unknown error");
  }
  void* l = d.lib;
  bool ok =
      sym(l, d.init, {"cuInit"}) && sym(l, d.driver_version, {"cuDriverGetVersion"}) &&
      sym(l, d.error_name, {"cuGetErrorName"}) && sym(l, d.error_string, {"cuGetErrorString"}) &&
      sym(l, d.device_count, {"cuDeviceGetCount"}) && sym(l, d.device_get, {"cuDeviceGet"}) &&
      sym(l, d.device_name, {"cuDeviceGetName"}) &&
      sym(l, d.device_attribute, {"cuDeviceGetAttribute"}) &&
      sym(l, d.ctx_retain, {"cuDevicePrimaryCtxRetain"}) &&
      sym(l, d.ctx_release, {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"}) &&
      sym(l, d.ctx_set_current, {"cuCtxSetCurrent"}) &&
      sym(l, d.stream_create, {"cuStreamCreate"}) &&
      sym(l, d.stream_destroy, {"cuStreamDestroy_v2", "cuStreamDestroy"}) &&
      sym(l, d.stream_sync, {"cuStreamSynchronize"}) && sym(l, d.mem_alloc, {"cuMemAlloc_v2"}) &&
      sym(l, d.mem_free, {"cuMemFree_v2"}) && sym(l, d.mem_alloc_host, {"cuMemAllocHost_v2"}) &&
      sym(l, d.mem_free_host, {"cuMemFreeHost"}) && sym(l, d.mem_info, {"cuMemGetInfo_v2"}) &&
      sym(l, d.htod, {"cuMemcpyHtoDAsync_v2"}) && sym(l, d.dtoh, {"cuMemcpyDtoHAsync_v2"}) &&
      sym(l, d.memset8, {"cuMemsetD8Async"}) && sym(l, d.module_load, {"cuModuleLoadData"}) &&
      sym(l, d.module_unload, {"cuModuleUnload"}) &&
      sym(l, d.module_function, {"cuModuleGetFunction"}) && sym(l, d.launch, {"cuLaunchKernel"}) &&
      sym(l, d.begin_capture, {"cuStreamBeginCapture_v2"}) &&
      sym(l, d.end_capture, {"cuStreamEndCapture"}) &&
      sym(l, d.graph_instantiate, {"cuGraphInstantiateWithFlags"}) &&
      sym(l, d.graph_launch, {"cuGraphLaunch"}) &&
      sym(l, d.graph_exec_destroy, {"cuGraphExecDestroy"}) &&
      sym(l, d.graph_destroy, {"cuGraphDestroy"}) && sym(l, d.event_create, {"cuEventCreate"}) &&
      sym(l, d.event_record, {"cuEventRecord"}) && sym(l, d.event_sync, {"cuEventSynchronize"}) &&
      sym(l, d.event_elapsed, {"cuEventElapsedTime_v2", "cuEventElapsedTime"}) &&
      sym(l, d.event_destroy, {"cuEventDestroy_v2", "cuEventDestroy"});
  if (!ok) return make_error(path, " is too old (a driver for CUDA 11.4 or newer is needed)");
  sym(l, d.launch_ex, {"cuLaunchKernelEx"});
  return Status::Ok();
}

std::string errstr(const Driver& d, CUresult r) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (d.error_name) d.error_name(r, &name);
  if (d.error_string) d.error_string(r, &text);
  return std::string(name ? name : "CUDA error " + std::to_string(int(r))) + " (" +
         (text ? text : "?") + ")";
}

#define CU_CHECK(call, what)                                                  \
  do {                                                                        \
    CUresult _r = (call);                                                     \
    if (_r != CUDA_SUCCESS) return make_error(what, ": ", errstr(drv(), _r)); \
  } while (0)

Driver g_driver;
Status g_status;
std::once_flag g_once;

const std::string kDefaultLib = "libcuda.so.1";

Status probe(Driver& d, const std::string& path) {
  KILN_RETURN_IF_ERROR(load_driver(path, d));
  CUresult r = d.init(0);
  if (r != CUDA_SUCCESS) return make_error("cuInit failed: ", errstr(d, r));
  int n = 0;
  r = d.device_count(&n);
  if (r != CUDA_SUCCESS) return make_error("cuDeviceGetCount failed: ", errstr(d, r));
  if (n == 0) return make_error("the CUDA driver sees no device");
  return Status::Ok();
}

const Driver& drv() {
  return g_driver;
}

class DriverDevice : public CudaDevice {
 public:
  ~DriverDevice() override {
    const Driver& d = drv();
    if (!ctx_) return;
    d.ctx_set_current(ctx_);
    d.stream_sync(stream_);
    for (auto& [id, g] : graphs_) {
      if (g.exec) d.graph_exec_destroy(g.exec);
      if (g.graph) d.graph_destroy(g.graph);
    }
    for (CUevent e : events_)
      if (e) d.event_destroy(e);
    for (CUmodule m : modules_) d.module_unload(m);
    for (CUdeviceptr p : allocs_) d.mem_free(p);
    d.stream_destroy(stream_);
    d.ctx_release(dev_);
  }

  Status init() {
    const Driver& d = drv();
    int ordinal = 0;
    if (const char* e = std::getenv("KILN_CUDA_DEVICE")) ordinal = std::atoi(e);
    CU_CHECK(d.device_get(&dev_, ordinal), "cuDeviceGet");
    char name[256] = {};
    d.device_name(name, sizeof name - 1, dev_);
    int major = 0, minor = 0, sms = 0;
    d.device_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev_);
    d.device_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev_);
    d.device_attribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev_);
    cc_ = major * 10 + minor;
    int version = 0;
    d.driver_version(&version);
    name_ = std::string(name) + ", sm_" + std::to_string(cc_) + ", " + std::to_string(sms) +
            " SMs, driver " + std::to_string(version / 1000) + "." +
            std::to_string(version % 1000 / 10);
    CU_CHECK(d.ctx_retain(&ctx_, dev_), "cuDevicePrimaryCtxRetain");
    CU_CHECK(d.ctx_set_current(ctx_), "cuCtxSetCurrent");
    CU_CHECK(d.stream_create(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    pdl_ = d.launch_ex != nullptr && cc_ >= 90 && std::getenv("KILN_CUDA_PDL") == nullptr
               ? true
               : (std::getenv("KILN_CUDA_PDL") && std::string(std::getenv("KILN_CUDA_PDL")) == "1");
    return Status::Ok();
  }

  std::string name() const override { return name_; }
  int compute_capability() const override { return cc_; }
  bool supports_pdl() const override { return pdl_; }
  size_t memory_free() const override {
    size_t f = 0, t = 0;
    drv().mem_info(&f, &t);
    return f;
  }

  Result<DevPtr> alloc(size_t bytes) override {
    CUdeviceptr p = 0;
    CU_CHECK(drv().mem_alloc(&p, bytes ? bytes : 1),
             "cuMemAlloc of " + std::to_string(bytes) + " bytes");
    allocs_.push_back(p);
    CU_CHECK(drv().memset8(p, 0, bytes, stream_), "cuMemsetD8");
    CU_CHECK(drv().stream_sync(stream_), "cuStreamSynchronize");
    return DevPtr(p);
  }
  void free(DevPtr p) override {
    for (size_t i = 0; i < allocs_.size(); ++i)
      if (allocs_[i] == CUdeviceptr(p)) {
        drv().mem_free(allocs_[i]);
        allocs_.erase(allocs_.begin() + std::ptrdiff_t(i));
        return;
      }
  }
  Result<void*> alloc_host(size_t bytes) override {
    void* p = nullptr;
    CU_CHECK(drv().mem_alloc_host(&p, bytes ? bytes : 1), "cuMemAllocHost");
    std::memset(p, 0, bytes);
    return p;
  }
  void free_host(void* p) override { drv().mem_free_host(p); }

  Status upload(DevPtr dst, const void* src, size_t n) override {
    KILN_RETURN_IF_ERROR(upload_async(dst, src, n));
    return synchronize();
  }
  Status download(void* dst, DevPtr src, size_t n) override {
    KILN_RETURN_IF_ERROR(download_async(dst, src, n));
    return synchronize();
  }
  Status upload_async(DevPtr dst, const void* src, size_t n) override {
    CU_CHECK(drv().htod(CUdeviceptr(dst), src, n, stream_), "cuMemcpyHtoDAsync");
    return Status::Ok();
  }
  Status download_async(void* dst, DevPtr src, size_t n) override {
    CU_CHECK(drv().dtoh(dst, CUdeviceptr(src), n, stream_), "cuMemcpyDtoHAsync");
    return Status::Ok();
  }
  Status memset_async(DevPtr dst, uint8_t v, size_t n) override {
    CU_CHECK(drv().memset8(CUdeviceptr(dst), v, n, stream_), "cuMemsetD8Async");
    return Status::Ok();
  }

  Result<int> load_module(const ModuleImage& m) override {
    // A cubin of this exact arch, else one of the same major and a lower minor (binary
    // compatible), else the PTX (JIT-compiled by the driver).
    const std::vector<uint8_t>* best = nullptr;
    int best_cc = 0;
    for (const auto& [cc, bytes] : m.cubins)
      if (cc / 10 == cc_ / 10 && cc <= cc_ && cc > best_cc && !bytes.empty()) {
        best = &bytes;
        best_cc = cc;
      }
    CUmodule mod = nullptr;
    if (best) {
      CU_CHECK(drv().module_load(&mod, best->data()),
               "cuModuleLoadData (sm_" + std::to_string(best_cc) + " cubin of " + m.name + ")");
    } else if (!m.ptx.empty()) {
      CU_CHECK(drv().module_load(&mod, m.ptx.c_str()), "cuModuleLoadData (PTX of " + m.name + ")");
    } else {
      return make_error("module ", m.name, " has no cubin for sm_", cc_, " and no PTX");
    }
    modules_.push_back(mod);
    return int(modules_.size() - 1);
  }
  Result<void*> function(int module, const std::string& entry) override {
    if (module < 0 || module >= int(modules_.size())) return make_error("bad module handle");
    CUfunction f = nullptr;
    CU_CHECK(drv().module_function(&f, modules_[size_t(module)], entry.c_str()),
             "cuModuleGetFunction(" + entry + ")");
    return reinterpret_cast<void*>(f);
  }
  Status launch(void* fn, const LaunchDims& d, const void* args, size_t args_bytes,
                bool pdl) override {
    void* params[1] = {const_cast<void*>(args)};
    (void)args_bytes;
    CUfunction f = reinterpret_cast<CUfunction>(fn);
    if (pdl && pdl_) {
      CUlaunchAttribute attr;
      std::memset(&attr, 0, sizeof attr);
      attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      attr.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig c;
      std::memset(&c, 0, sizeof c);
      c.gridDimX = d.grid[0];
      c.gridDimY = d.grid[1];
      c.gridDimZ = d.grid[2];
      c.blockDimX = d.block;
      c.blockDimY = 1;
      c.blockDimZ = 1;
      c.hStream = stream_;
      c.attrs = &attr;
      c.numAttrs = 1;
      CU_CHECK(drv().launch_ex(&c, f, params, nullptr), "cuLaunchKernelEx");
      return Status::Ok();
    }
    CU_CHECK(drv().launch(f, d.grid[0], d.grid[1], d.grid[2], d.block, 1, 1, 0, stream_, params,
                          nullptr),
             "cuLaunchKernel");
    return Status::Ok();
  }

  Status begin_capture() override {
    CU_CHECK(drv().begin_capture(stream_, CU_STREAM_CAPTURE_MODE_RELAXED), "cuStreamBeginCapture");
    return Status::Ok();
  }
  Result<int> end_capture() override {
    CUgraph g = nullptr;
    CU_CHECK(drv().end_capture(stream_, &g), "cuStreamEndCapture");
    CUgraphExec e = nullptr;
    CUresult r = drv().graph_instantiate(&e, g, 0);
    if (r != CUDA_SUCCESS) {
      drv().graph_destroy(g);
      return make_error("cuGraphInstantiate: ", errstr(drv(), r));
    }
    const int id = next_graph_++;
    graphs_[id] = Graph{g, e};
    return id;
  }
  Status launch_graph(int id) override {
    auto it = graphs_.find(id);
    if (it == graphs_.end()) return make_error("bad graph handle");
    CU_CHECK(drv().graph_launch(it->second.exec, stream_), "cuGraphLaunch");
    return Status::Ok();
  }
  void destroy_graph(int id) override {
    auto it = graphs_.find(id);
    if (it == graphs_.end()) return;
    drv().graph_exec_destroy(it->second.exec);
    drv().graph_destroy(it->second.graph);
    graphs_.erase(it);
  }

  Status synchronize() override {
    CU_CHECK(drv().stream_sync(stream_), "cuStreamSynchronize (a kernel failed)");
    return Status::Ok();
  }
  Result<int> record_event() override {
    CUevent e = nullptr;
    CU_CHECK(drv().event_create(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    events_.push_back(e);
    CU_CHECK(drv().event_record(e, stream_), "cuEventRecord");
    return int(events_.size() - 1);
  }
  Result<double> elapsed_ms(int a, int b) override {
    if (a < 0 || b < 0 || a >= int(events_.size()) || b >= int(events_.size()))
      return make_error("bad event");
    CU_CHECK(drv().event_sync(events_[size_t(b)]), "cuEventSynchronize");
    float ms = 0;
    CU_CHECK(drv().event_elapsed(&ms, events_[size_t(a)], events_[size_t(b)]),
             "cuEventElapsedTime");
    return double(ms);
  }
  void destroy_event(int e) override {
    if (e >= 0 && e < int(events_.size()) && events_[size_t(e)]) {
      drv().event_destroy(events_[size_t(e)]);
      events_[size_t(e)] = nullptr;
    }
  }

 private:
  struct Graph {
    CUgraph graph = nullptr;
    CUgraphExec exec = nullptr;
  };
  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
  CUstream stream_ = nullptr;
  int cc_ = 0;
  bool pdl_ = false;
  std::string name_;
  std::vector<CUdeviceptr> allocs_;
  std::vector<CUmodule> modules_;
  std::vector<CUevent> events_;
  std::map<int, Graph> graphs_;
  int next_graph_ = 0;
};

}  // namespace

Status cuda_status(const std::string& library) {
  if (!library.empty() && library != kDefaultLib) {
    Driver d;
    Status st = probe(d, library);
    if (d.lib) dlclose(d.lib);
    return st;
  }
  std::call_once(g_once, [] {
    const char* e = std::getenv("KILN_LIBCUDA");
    g_status = probe(g_driver, e && *e ? e : kDefaultLib);
  });
  return g_status;
}

Result<std::unique_ptr<CudaDevice>> open_cuda_device() {
  KILN_RETURN_IF_ERROR(cuda_status());
  auto d = std::make_unique<DriverDevice>();
  KILN_RETURN_IF_ERROR(d->init());
  return std::unique_ptr<CudaDevice>(std::move(d));
}

#endif  // KILN_WITH_CUDA

}  // namespace kiln::runtime
