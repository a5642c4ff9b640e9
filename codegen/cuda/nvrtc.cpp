#include "codegen/cuda/nvrtc.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

namespace kiln::cuda {
namespace {

// NVRTC's C API, declared here so that building needs no CUDA header.
using nvrtcResult = int;
struct nvrtcProgramSt;
using nvrtcProgram = nvrtcProgramSt*;

struct Nvrtc {
  void* lib = nullptr;
  std::string error;
  nvrtcResult (*version)(int*, int*) = nullptr;
  const char* (*error_string)(nvrtcResult) = nullptr;
  nvrtcResult (*create)(nvrtcProgram*, const char*, const char*, int, const char* const*,
                        const char* const*) = nullptr;
  nvrtcResult (*destroy)(nvrtcProgram*) = nullptr;
  nvrtcResult (*compile)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*ptx_size)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*ptx)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*cubin_size)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*cubin)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*log_size)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*log)(nvrtcProgram, char*) = nullptr;
};

template <class F>
bool sym(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

const Nvrtc& nvrtc() {
  static Nvrtc n;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> names;
    if (const char* e = std::getenv("KILN_NVRTC")) names.push_back(e);
    for (const char* v : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) names.push_back(v);
    std::vector<std::string> dirs;
    if (const char* h = std::getenv("CUDA_HOME")) dirs.push_back(std::string(h) + "/lib64/");
    dirs.push_back("/usr/local/cuda/lib64/");
    dirs.push_back("/usr/local/cuda/targets/x86_64-linux/lib/");
    for (const char* v : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"})
      for (const std::string& d : dirs) names.push_back(d + v);
    std::string first_error;
    for (const std::string& name : names) {
      n.lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (n.lib) break;
      if (first_error.empty()) first_error = dlerror();
    }
    if (!n.lib) {
      n.error =
          "cannot load NVRTC (libnvrtc.so.13/.12; set KILN_NVRTC to its path): " + first_error;
      return;
    }
    bool ok =
        sym(n.lib, "nvrtcVersion", n.version) &&
        sym(n.lib, "nvrtcGetErrorString", n.error_string) &&
        sym(n.lib, "nvrtcCreateProgram", n.create) &&
        sym(n.lib, "nvrtcDestroyProgram", n.destroy) &&
        sym(n.lib, "nvrtcCompileProgram", n.compile) && sym(n.lib, "nvrtcGetPTXSize", n.ptx_size) &&
        sym(n.lib, "nvrtcGetPTX", n.ptx) && sym(n.lib, "nvrtcGetCUBINSize", n.cubin_size) &&
        sym(n.lib, "nvrtcGetCUBIN", n.cubin) && sym(n.lib, "nvrtcGetProgramLogSize", n.log_size) &&
        sym(n.lib, "nvrtcGetProgramLog", n.log);
    if (!ok) {
      n.error = "NVRTC lacks a function kiln needs (nvrtcGetCUBIN: CUDA 11.1 or newer)";
      dlclose(n.lib);
      n.lib = nullptr;
    }
  });
  return n;
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

void write_file(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return;
    f.write(data.data(), std::streamsize(data.size()));
    if (!f) return;
  }
  std::rename(tmp.c_str(), path.c_str());  // atomic: readers see all or nothing
}

void make_dirs(const std::string& dir) {
  for (size_t p = 1; p <= dir.size(); ++p)
    if (p == dir.size() || dir[p] == '/') mkdir(dir.substr(0, p).c_str(), 0755);
}

std::vector<std::string> options_for(int arch) {
  return {"--gpu-architecture=sm_" + std::to_string(arch), "-default-device", "--std=c++17",
          // No contraction of a * b + c into fused multiply-adds: the kernels round as the
          // reference interpreter (and llama.cpp's CPU code) does only where they say fmaf.
          "--fmad=false", "--ptxas-options=-v", "-DNDEBUG"};
}

}  // namespace

Status nvrtc_status() {
  const Nvrtc& n = nvrtc();
  if (!n.lib) return make_error(n.error);
  return Status::Ok();
}

Result<std::string> nvrtc_version() {
  const Nvrtc& n = nvrtc();
  if (!n.lib) return make_error(n.error);
  int major = 0, minor = 0;
  n.version(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string cache_dir(const CompileOptions& o) {
  if (!o.cache_dir.empty()) return o.cache_dir;
  if (const char* k = std::getenv("KILN_CACHE"); k && *k) return std::string(k) + "/cuda";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kiln/cuda";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/kiln/cuda";
}

std::vector<KernelResources> parse_ptxas_log(const std::string& log, int arch) {
  std::vector<KernelResources> out;
  std::istringstream in(log);
  std::string line;
  KernelResources* cur = nullptr;
  while (std::getline(in, line)) {
    if (auto p = line.find("Compiling entry function '"); p != std::string::npos) {
      p += 26;
      auto q = line.find('\'', p);
      out.push_back(KernelResources{line.substr(p, q - p), arch});
      cur = &out.back();
      continue;
    }
    if (!cur) continue;
    int a = 0, b = 0, c = 0;
    if (std::sscanf(line.c_str(),
                    " %d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &a, &b,
                    &c) == 3) {
      cur->stack = a;
      cur->spill_stores = b;
      cur->spill_loads = c;
    }
    if (auto p = line.find("Used "); p != std::string::npos) {
      std::sscanf(line.c_str() + p, "Used %d registers", &cur->registers);
      if (auto s = line.find(" bytes smem"); s != std::string::npos) {
        size_t b0 = line.rfind(' ', s - 1);
        cur->smem = std::atoi(line.c_str() + (b0 == std::string::npos ? 0 : b0 + 1));
      }
    }
  }
  return out;
}

Result<CompiledModule> compile_module(const std::string& source, const std::string& name,
                                      const CompileOptions& o) {
  const Nvrtc& n = nvrtc();
  if (!n.lib) return make_error(n.error);
  if (o.archs.empty()) return make_error("compile_module: no architecture");
  KILN_ASSIGN_OR_RETURN(std::string version, nvrtc_version());
  CompiledModule m;
  m.name = name;
  uint64_t h = fnv1a(source);
  h = fnv1a(version, h);
  for (int a : o.archs)
    for (const std::string& opt : options_for(a)) h = fnv1a(opt, h);
  m.key = hex(h);
  const std::string dir = cache_dir(o), base = dir + "/" + m.key;

  if (o.cache) {
    bool all = read_file(base + ".ptx", m.ptx);
    for (int a : o.archs) {
      std::string cubin, log;
      all = all && read_file(base + ".sm_" + std::to_string(a) + ".cubin", cubin) &&
            read_file(base + ".sm_" + std::to_string(a) + ".log", log);
      if (!all) break;
      m.cubins[a] = std::vector<uint8_t>(cubin.begin(), cubin.end());
      m.logs[a] = log;
    }
    if (all && !m.ptx.empty()) {
      m.from_cache = true;
      for (int a : o.archs)
        for (KernelResources& r : parse_ptxas_log(m.logs[a], a)) m.resources.push_back(r);
      return m;
    }
    m.cubins.clear();
    m.logs.clear();
    m.ptx.clear();
  }

  const auto t0 = std::chrono::steady_clock::now();
  for (size_t ai = 0; ai < o.archs.size(); ++ai) {
    const int arch = o.archs[ai];
    nvrtcProgram prog = nullptr;
    nvrtcResult r = n.create(&prog, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr);
    if (r != 0) return make_error("nvrtcCreateProgram: ", n.error_string(r));
    std::vector<std::string> opts = options_for(arch);
    std::vector<const char*> argv;
    for (const std::string& s : opts) argv.push_back(s.c_str());
    r = n.compile(prog, int(argv.size()), argv.data());
    size_t ls = 0;
    n.log_size(prog, &ls);
    std::string log(ls, '\0');
    if (ls) n.log(prog, log.data());
    while (!log.empty() && log.back() == '\0') log.pop_back();
    if (r != 0) {
      n.destroy(&prog);
      return make_error("NVRTC failed to compile module '", name, "' for sm_", arch, " (",
                        n.error_string(r), "):\n", log.substr(0, 8000));
    }
    if (ai == 0) {
      size_t ps = 0;
      n.ptx_size(prog, &ps);
      m.ptx.assign(ps, '\0');
      n.ptx(prog, m.ptx.data());
      while (!m.ptx.empty() && m.ptx.back() == '\0') m.ptx.pop_back();
    }
    size_t cs = 0;
    n.cubin_size(prog, &cs);
    std::vector<uint8_t> cubin(cs);
    if (cs) n.cubin(prog, reinterpret_cast<char*>(cubin.data()));
    n.destroy(&prog);
    if (cubin.empty()) return make_error("NVRTC produced no cubin for sm_", arch);
    m.cubins[arch] = std::move(cubin);
    m.logs[arch] = log;
    for (KernelResources& kr : parse_ptxas_log(log, arch)) m.resources.push_back(kr);
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (o.cache) {
    make_dirs(dir);
    for (int a : o.archs) {
      const auto& c = m.cubins[a];
      write_file(base + ".sm_" + std::to_string(a) + ".cubin", std::string(c.begin(), c.end()));
      write_file(base + ".sm_" + std::to_string(a) + ".log", m.logs[a]);
    }
    write_file(base + ".ptx", m.ptx);  // last: its presence marks a complete entry
  }
  return m;
}

std::string find_ptxas() {
  std::vector<std::string> c;
  if (const char* h = std::getenv("CUDA_HOME")) c.push_back(std::string(h) + "/bin/ptxas");
  c.push_back("/usr/local/cuda/bin/ptxas");
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (size_t s = 0, e; s <= p.size(); s = e + 1) {
      e = p.find(':', s);
      if (e == std::string::npos) e = p.size();
      if (e > s) c.push_back(p.substr(s, e - s) + "/ptxas");
    }
  }
  for (const std::string& x : c)
    if (access(x.c_str(), X_OK) == 0) return x;
  return "";
}

Result<std::string> run_ptxas(const std::string& ptxas, const std::string& ptx, int arch) {
  char tmpl[] = "/tmp/kiln_ptxas_XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return make_error("run_ptxas: cannot create a temporary file");
  close(fd);
  const std::string in = std::string(tmpl) + ".ptx", out = std::string(tmpl) + ".cubin",
                    log = std::string(tmpl) + ".log";
  std::rename(tmpl, in.c_str());
  write_file(in, ptx);
  const std::string cmd = "'" + ptxas + "' -arch=sm_" + std::to_string(arch) + " -v -o '" + out +
                          "' '" + in + "' > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::string text;
  read_file(log, text);
  std::remove(in.c_str());
  std::remove(out.c_str());
  std::remove(log.c_str());
  if (rc != 0) return make_error("ptxas failed for sm_", arch, ":\n", text.substr(0, 4000));
  return text;
}

}  // namespace kiln::cuda
