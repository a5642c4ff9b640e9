// release_compiler_pages (cpu_codegen.h): after code generation, the pages of LLVM's machine
// code that compiling touched (about 60 MB of libLLVM's text for one graph) stay mapped, and
// count in the resident size, although generated kernels never call LLVM. They are clean pages
// of a read-only file mapping, so dropping them from the page table is always safe: the page
// cache keeps them, and the next compilation faults back in what it runs (a minor fault per
// page). Only executable, non-writable mappings of the file holding LLVM are touched: their
// pages are never written (relocated data lives in the writable and RELRO mappings, left alone;
// only a debugger's breakpoints in LLVM's code would be lost).
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"

#if KILN_WITH_LLVM
#include <llvm-c/Core.h>
#endif

namespace kiln::cpu {

void release_compiler_pages() {
#if KILN_WITH_LLVM
  const auto code = reinterpret_cast<uintptr_t>(&LLVMContextCreate);
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  if (!f) return;
  struct Range {
    uintptr_t lo, hi;
    unsigned long dev_major, dev_minor, inode;
    bool exec_only;  // r-x: executable, not writable
  };
  std::vector<Range> ranges;
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi, off, major, minor, inode;
    char perms[8] = {};
    if (std::sscanf(line, "%lx-%lx %7s %lx %lx:%lx %lu", &lo, &hi, perms, &off, &major, &minor,
                    &inode) != 7 ||
        inode == 0)
      continue;
    ranges.push_back({lo, hi, major, minor, inode, std::strncmp(perms, "r-x", 3) == 0});
  }
  std::fclose(f);
  const Range* llvm = nullptr;
  for (const Range& r : ranges)
    if (code >= r.lo && code < r.hi) llvm = &r;
  if (!llvm) return;
  const Range self = *llvm;
  for (const Range& r : ranges)
    if (r.exec_only && r.inode == self.inode && r.dev_major == self.dev_major &&
        r.dev_minor == self.dev_minor)
      madvise(reinterpret_cast<void*>(r.lo), r.hi - r.lo, MADV_DONTNEED);
#endif
}

}  // namespace kiln::cpu
