// Target names and the microkernel table: the parts of the CPU code generator that need no LLVM.
#include <mutex>

#include "codegen/cpu/cpu_codegen.h"

namespace kiln::cpu {

Result<Target> Target::parse(const std::string& text) {
  Target t;
  if (text.empty() || text == "host") return t;
  if (text == "x86-64-v3" || text == "x86-64-v4" || text == "x86-64-v2") {
    t.triple = "x86_64-unknown-linux-gnu";
    t.cpu = text;
    return t;
  }
  if (text == "aarch64" || text == "arm64") {
    t.triple = "aarch64-unknown-linux-gnu";
    t.cpu = "generic";
    t.features = "+neon";
    return t;
  }
  if (text == "aarch64+sve") {
    t.triple = "aarch64-unknown-linux-gnu";
    t.cpu = "generic";
    t.features = "+neon,+sve";
    return t;
  }
  // TRIPLE[:CPU[:FEATURES]]
  size_t a = text.find(':');
  t.triple = text.substr(0, a);
  t.cpu = "generic";
  if (a != std::string::npos) {
    size_t b = text.find(':', a + 1);
    t.cpu = text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (b != std::string::npos) t.features = text.substr(b + 1);
  }
  if (t.triple.rfind("x86_64", 0) != 0 && t.triple.rfind("aarch64", 0) != 0)
    return make_error("target '", text,
                      "': expected host, x86-64-v3, x86-64-v4, aarch64, aarch64+sve or "
                      "TRIPLE[:CPU[:FEATURES]] with an x86_64 or aarch64 triple");
  return t;
}

std::string Target::str() const {
  if (triple == "host" && cpu == "host" && features.empty()) return "host";
  std::string s = triple + ":" + cpu;
  if (!features.empty()) s += ":" + features;
  return s;
}

std::string Target::arch() const {
  if (triple == "host") {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "unknown";
#endif
  }
  return triple.substr(0, triple.find('-'));
}

namespace {

struct Table {
  const void* entries[kNumMicrokernelTypes] = {};
};

Table make_table(mk::Isa isa, Status* st) {
  Table t;
  for (int i = 0; i < kNumMicrokernelTypes; ++i) {
    auto k = mk::kernels(kMicrokernelTypes[i], isa);
    if (!k.ok()) {
      *st = k.status();
      return t;
    }
    t.entries[i] = *k;
  }
  return t;
}

}  // namespace

Result<const void* const*> microkernel_table(mk::Isa isa) {
  static Table tables[mk::kNumIsas];
  static Status status[mk::kNumIsas];
  static std::once_flag once[mk::kNumIsas];
  const int i = int(isa);
  if (i < 0 || i >= mk::kNumIsas) return make_error("microkernel ISA ", i, " does not exist");
  std::call_once(once[i], [&] { tables[i] = make_table(isa, &status[i]); });
  if (!status[i].ok()) return status[i].error();
  return static_cast<const void* const*>(tables[i].entries);
}

const void* const* microkernel_table() {
  static const void* const* best = [] {
    (void)mk::init();
    auto t = microkernel_table(mk::best_isa());
    if (t.ok()) return *t;
    auto s = microkernel_table(mk::Isa::kScalar);
    return s.ok() ? *s : static_cast<const void* const*>(nullptr);
  }();
  return best;
}

}  // namespace kiln::cpu
