#include "runtime/memory_trace.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace kiln::runtime {

namespace {

// Set when the library is loaded, so that trace lines say when in the process each stage ended.
const auto process_start = std::chrono::steady_clock::now();

int trace_level() {
  static const int level = [] {
    const char* e = std::getenv("KILN_TRACE_RSS");
    return e && *e ? std::atoi(e) : 0;
  }();
  return level;
}

// KILN_TRACE_RSS=2: the resident size by mapping (file path, [heap], anonymous), from
// /proc/self/smaps, for the mappings of 1 MiB or more.
void print_mappings() {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return;
  std::map<std::string, long> kb_by_name;
  std::string name;
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int path_at = 0;
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path_at) == 2 && path_at > 0) {
      name = line + path_at;
      while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
      if (name.empty()) name = "[anonymous]";
    } else if (std::strncmp(line, "Rss:", 4) == 0) {
      kb_by_name[name] += std::strtol(line + 4, nullptr, 10);
    }
  }
  std::fclose(f);
  for (const auto& [n, kb] : kb_by_name)
    if (kb >= 1024)
      std::fprintf(stderr, "kiln rss:   %8.1f MiB  %s\n", double(kb) / 1024, n.c_str());
}

}  // namespace

bool trace_rss_enabled() {
  return trace_level() > 0;
}

void trace_rss(const char* stage) {
  if (!trace_rss_enabled()) return;
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return;
  // kB values of the fields below, in this order; -1 when absent.
  const char* names[] = {"VmRSS:", "RssAnon:", "RssFile:", "VmHWM:"};
  long kb[4] = {-1, -1, -1, -1};
  char line[256];
  while (std::fgets(line, sizeof line, f))
    for (int i = 0; i < 4; ++i)
      if (std::strncmp(line, names[i], std::strlen(names[i])) == 0)
        kb[i] = std::strtol(line + std::strlen(names[i]), nullptr, 10);
  std::fclose(f);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - process_start)
          .count();
  std::fprintf(
      stderr,
      "kiln rss: %-28s rss %7.1f MiB (anon %7.1f, file %7.1f)  peak %7.1f MiB  at %7.1f ms\n",
      stage, double(kb[0]) / 1024, double(kb[1]) / 1024, double(kb[2]) / 1024, double(kb[3]) / 1024,
      ms);
  if (trace_level() >= 2) print_mappings();
}

}  // namespace kiln::runtime
