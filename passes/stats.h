// Figures of a graph for `kiln ir --stats` and the kernel-count tests: nodes, kernels (regions
// after fuse; compute nodes before), kernels per layer, FLOPs and bytes moved per token.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ir/graph.h"
#include "passes/memory_plan.h"

namespace kiln::passes {

struct GraphStats {
  int64_t nodes = 0;       // top-level nodes
  int64_t body_nodes = 0;  // nodes inside region bodies
  int64_t kernels = 0;     // regions, plus compute nodes left outside regions (free ops and
                           // derived constants are not kernels)
  // Kernels by scope: a region "blk3.k1" counts for "blk3", "output.k0" for "output"; kernels
  // that are not regions count for "".
  std::map<std::string, int64_t> kernels_by_scope;
  int64_t tokens = 1;             // numel of the `tokens` input (B*T), else 1
  double flops = 0;               // per graph run; attention counted at full context
  uint64_t weight_bytes = 0;      // every constant a kernel reads, once
  uint64_t activation_bytes = 0;  // what kernels read and write besides weights

  // Kernels of "blkN" scopes: how many layers, and the most and fewest kernels in one.
  int64_t layers() const;
  int64_t max_kernels_per_layer() const;
  int64_t min_kernels_per_layer() const;
};

GraphStats graph_stats(const ir::Graph& g);

// A readable block; the plan line is added when a plan is given.
std::string format_stats(const GraphStats& s, const MemoryPlan* plan);

}  // namespace kiln::passes
