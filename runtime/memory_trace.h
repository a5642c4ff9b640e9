// Resident-size tracing for finding where a process's peak comes from (docs/runtime.md,
// "Memory"). With KILN_TRACE_RSS=1 in the environment, trace_rss("stage") prints one line to
// stderr: the resident size now (anonymous and file-backed parts) and the peak so far, from
// /proc/self/status. Without it, a call costs one cached flag test.
#pragma once

namespace kiln::runtime {

bool trace_rss_enabled();
void trace_rss(const char* stage);

}  // namespace kiln::runtime
