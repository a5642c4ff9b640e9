// What the CPU executor runs, and where it comes from.
//
// A CompiledGraph is one graph of a model after the whole compiler: fused and memory-planned IR,
// its plan, and one kernel per region. The JIT pipeline makes it in-process (GGUF -> lower ->
// passes -> codegen/cpu jit_compile); the artifact loader of issue #6 will make the same thing
// from a .kiln file (the IR text, the plan and object code through cpu::load_object), so the
// executor and everything above it do not change.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "ir/graph.h"
#include "passes/memory_plan.h"

namespace kiln::runtime {

struct CompiledGraph {
  lower::GraphSpec spec;
  std::unique_ptr<ir::Graph> graph;  // fused and planned: sources, regions, views, outputs
  passes::MemoryPlan plan;
  std::unique_ptr<cpu::JitProgram> program;  // one kernel per region, in schedule order
  double lower_seconds = 0, passes_seconds = 0, compile_seconds = 0;
};

// Bytes of a derived constant or a packed weight made ahead of time, by ConstantStore key
// (constant_store.h), that the backend binds in place of evaluating or repacking.
struct MappedConstant {
  std::string key;
  std::span<const uint8_t> bytes;  // 64-byte aligned; lives as long as the source
};

// A source of compiled graphs for one model.
class GraphSource {
 public:
  virtual ~GraphSource() = default;
  virtual Result<CompiledGraph> compile(const lower::GraphSpec& spec) = 0;
  // What the source made ahead of time (an artifact's constants section); the JIT: nothing.
  virtual Result<std::vector<MappedConstant>> mapped_constants() const {
    return std::vector<MappedConstant>{};
  }
};

// The in-process pipeline: lower_gguf, the pass pipeline, jit_compile.
class JitGraphSource : public GraphSource {
 public:
  JitGraphSource(const gguf::GgufFile& file, std::string pipeline, cpu::Options options)
      : file_(file), pipeline_(std::move(pipeline)), options_(options) {}
  Result<CompiledGraph> compile(const lower::GraphSpec& spec) override;

 private:
  const gguf::GgufFile& file_;
  std::string pipeline_;
  cpu::Options options_;
};

}  // namespace kiln::runtime
