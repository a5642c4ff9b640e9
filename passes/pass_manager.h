// The pass manager: named passes (passes/passes.def), a pipeline parsed from a string, time per
// pass, dumps after chosen passes, and the verifier after every pass in debug builds.
//
//   PassContext ctx;
//   KILN_ASSIGN_OR_RETURN(auto pipeline, Pipeline::parse("default"));
//   KILN_RETURN_IF_ERROR(pipeline.run(graph, ctx));
//   ctx.plan->arena_bytes ...
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "passes/memory_plan.h"

namespace kiln::passes {

#ifdef NDEBUG
inline constexpr bool kDebugBuild = false;
#else
inline constexpr bool kDebugBuild = true;
#endif

// The pipeline `default` stands for.
inline constexpr std::string_view kDefaultPipeline =
    "canonicalize,merge-parallel-matmuls,fuse,plan-memory";

struct PassOptions {
  // fuse: the longest row (elements of the last axis) that a row-local op or a reduction may need
  // whole inside a contraction's epilogue. 256 covers every attention head we lower (64..256), so
  // rope and QK-norm ride on the projection that produces the heads.
  int64_t epilogue_max_row = 256;
  // fuse: a normalization is fused into a contraction's prologue only when the contraction has at
  // most this many activation rows M (0: no limit). The recomputation is O(K) per row and output
  // tile, a 1/tile_n share of the tile's own work, so the default is no limit; a backend that
  // calls a library GEMM for large M sets this to its cut-over.
  int64_t prologue_max_rows = 0;
  // plan-memory: offset alignment of every arena buffer.
  uint64_t alignment = 64;
  // Runs the verifier before the first pass and after each one (always on in debug builds).
  bool verify_each = kDebugBuild;
};

struct PassTiming {
  std::string pass;
  double ms = 0;
};

struct PassContext {
  PassOptions options;
  // Set by plan-memory; cleared by any later pass (it would no longer match the graph).
  std::optional<MemoryPlan> plan;
  // Counters by "pass.what" ("fuse.regions", "canonicalize.cse"), summed over runs.
  std::map<std::string, int64_t> stats;
  std::vector<PassTiming> timings;
  // Pass names after which `dump` is called ("all": every pass).
  std::vector<std::string> dump_after;
  std::function<void(std::string_view pass, const ir::Graph& g, const PassContext& ctx)> dump;

  void bump(const std::string& key, int64_t by = 1) { stats[key] += by; }
  bool wants_dump(std::string_view pass) const;
};

using PassFn = Status (*)(ir::Graph& g, PassContext& ctx);

struct PassInfo {
  std::string_view name;
  PassFn run;
  std::string_view summary;
};

// Every pass, in passes.def order.
const std::vector<PassInfo>& all_passes();
const PassInfo* find_pass(std::string_view name);

class Pipeline {
 public:
  // A comma-separated list of pass names; "default" expands to kDefaultPipeline; "" and "none"
  // are the empty pipeline. An unknown name is an error that lists the known ones.
  static Result<Pipeline> parse(std::string_view text);

  // Runs the passes in order. Errors name the pass (and the verifier's complaint after it).
  Status run(ir::Graph& g, PassContext& ctx) const;

  const std::vector<const PassInfo*>& passes() const { return passes_; }
  std::string str() const;

 private:
  std::vector<const PassInfo*> passes_;
};

// Parses and runs a pipeline in one call.
Status run_pipeline(std::string_view text, ir::Graph& g, PassContext& ctx);

// The pass entry points (defined one per passes/*.cpp).
#define PASS(fn, name, summary) Status run_##fn(ir::Graph& g, PassContext& ctx);
#include "passes/passes.def"
#undef PASS

}  // namespace kiln::passes
