// How one region becomes one kernel: which values live in memory, which are recomputed per
// element, and the loops (stages) that compute them, grouped in phases with a barrier between
// phases. Pure analysis of the region body (no LLVM), so the rules are testable on their own;
// docs/codegen-cpu.md explains them.
//
// Vocabulary:
//  - A *home* is memory holding a value: an operand or result buffer, or scratch (shared by the
//    kernel's threads, or private to each). Values without a home are computed per element from
//    their operands wherever they are read (elementwise ops, broadcasts, data movement).
//  - A *sink* is what a stage writes: a value into its home, a row quantized into its home, the
//    argmax of a row, or a row stored into the KV cache (kv_write).
//  - A stage walks its sinks' elements in *units*: runs of `unit` consecutive elements (flat
//    stages) or column tiles of a contraction's output (tile stages). A *row op* (rms_norm, norm,
//    softmax, rope, get_rows of a quantized table) whose rows fall inside a unit at the same
//    positions as the sink's elements ("aligned") is computed once per unit into a private row
//    buffer; any other read of it needs it in memory first, computed by an earlier phase.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cpu::plan {

enum class Where : uint8_t { kArg, kResult, kShared, kPrivate };

struct Home {
  Where where = Where::kArg;
  int index = 0;        // operand or result index
  uint64_t offset = 0;  // bytes into the shared or the private scratch
};

enum class SinkKind : uint8_t {
  kStore,   // every element of `value` into `dest`
  kQuant,   // rows of `source` (a cast's operand) quantized into `dest` (the cast's type)
  kArgmax,  // the argmax of each row of `source` into `dest` (i32)
  kKv,      // rows of `source` (kv_write's x) into the cache at positions read at run time
};

struct Sink {
  SinkKind kind = SinkKind::kStore;
  const ir::Value* value = nullptr;   // the value written (kv_write: its result)
  const ir::Value* source = nullptr;  // whose elements the stage computes
  const ir::Node* node = nullptr;     // cast / argmax / kv_write
  Home dest;
  int64_t row = 1;  // elements per row for the row kinds
};

struct RowOp {
  const ir::Node* node = nullptr;
  int64_t row = 0;    // elements per row (last dim of its result)
  int64_t shift = 0;  // tile stages: its columns are the sinks' columns + shift
  uint64_t buf = 0;   // private offset of its unit buffer
};

// Elementwise stage: units of `unit` elements of the sinks' sources (all of `numel` elements).
struct FlatStage {
  std::vector<Sink> sinks;
  std::vector<RowOp> rowops;  // dependency order
  int64_t numel = 0;
  int64_t unit = 1;
  int64_t chunks = 1;  // > 1: each unit of `unit` elements is split into this many pieces
  bool split = true;   // false: every thread computes everything (a private prologue)
  uint64_t tmp = 0;    // private offset of two row temporaries of tmp_row floats
  int64_t tmp_row = 0;
};

// Sinks of a contraction's epilogue that share one column space: `ny` columns per output row,
// reading the product at columns (sink column + s) for s in `shifts`.
struct TileGroup {
  std::vector<Sink> sinks;
  std::vector<RowOp> rowops;
  std::vector<int64_t> shifts;
  int64_t ny = 0;
  int64_t tile = 0;  // columns per tile
  int64_t ntiles = 0;
  uint64_t tbuf = 0;  // private offset: shifts.size() tiles of M x tile floats
  uint64_t tmp = 0;
  int64_t tmp_row = 0;
};

// y = x W^T for a 2-D weight, tile by tile over the output columns, each tile followed by the
// epilogue that reads it.
struct TileStage {
  const ir::Node* mm = nullptr;
  int64_t M = 0, N = 0, K = 0;  // M: rows of x (all leading dims)
  DType act = DType::F32;       // mul_mat's activation precision
  bool microkernel = false;     // 8-bit activations through args->mk (act is the pair's type)
  int mk_index = 0;             // into kMicrokernelTypes
  uint64_t xq = 0, xq_row = 0;  // private: quantized activation rows
  uint64_t wtmp = 0;            // private: one dequantized weight row (library path)
  bool rounded = false;         // library path, act != f32: x rounded into xr first
  uint64_t xr = 0;              // private: M x K rounded activations
  bool sums = false;            // Q4_1 / Q5_1 with Q8_1 activations: block sums too
  uint64_t xs = 0;              // private: M x K/32 block sums
  bool packed = false;          // W is an operand in the microkernels' packed layout
  bool has_prologue = false;    // x computed into private scratch by `prologue`
  FlatStage prologue;
  std::vector<TileGroup> groups;
};

struct AttentionStage {
  const ir::Node* node = nullptr;
  uint64_t shared = 0, priv = 0;  // offsets; shared_floats may be 0
  int64_t shared_floats = 0;
};

// mul_mat with a batched weight (decomposed attention): units of (batch, column tile).
struct BatchedStage {
  const ir::Node* node = nullptr;
  uint64_t wtmp = 0;
  uint64_t xr = 0, xs = 0;  // private: one batch's rounded activations and Q8_1 sums
};

struct Stage {
  enum Kind { kFlat, kTile, kAttention, kBatched } kind = kFlat;
  FlatStage flat;
  TileStage tile;
  AttentionStage attn;
  BatchedStage batched;
};

struct RegionPlan {
  std::vector<std::vector<Stage>> phases;
  std::unordered_map<const ir::Value*, Home> homes;  // every value that lives in memory
  // Values in memory (results of flat stages) that readers recompute instead of loading, except
  // outside the fused tile stage for those it produces (tile_values).
  std::set<const ir::Value*> recompute;
  std::set<const ir::Value*> tile_values;
  uint64_t shared_bytes = 0;
  uint64_t private_bytes = 0;
  bool uses_microkernels = false;
  std::vector<int> packed_operands;  // see KernelInfo::packed_operands
  // get_rows nodes whose table operand is read in the packed layout (see PlanOptions).
  std::set<const ir::Node*> packed_tables;
};

struct PlanOptions {
  bool microkernels = false;    // the target can call args->mk (x86-64 with microkernels on)
  bool packed_weights = false;  // and may read weight operands in the packed layout
  // Graph values that some kernel reads packed (a product's weight). A get_rows of one of them
  // (tied embeddings: token_embd is also the output weight) reads the packed copy too, so that
  // the stored layout is never needed: an artifact then holds one copy, not two.
  const std::set<const ir::Value*>* packed_values = nullptr;
};

// Plans a region node (its body, operands and results). Errors name the op a kernel cannot
// compute (a quantized type without a quantizer, a weight that is not a buffer).
Result<RegionPlan> plan_region(const ir::Node& region, const PlanOptions& options);

// A value reached from `v` through reshape and view ops: the root value and the byte offset.
struct Root {
  const ir::Value* value = nullptr;
  uint64_t offset = 0;
};
Root strip_free(const ir::Value* v);

// Floats of private scratch the kernel library's attention needs (act16: attention's act is f16),
// and its shared floats.
int64_t attention_private_floats(int64_t D, int64_t Dv, int64_t group, int64_t C, bool act16);
int64_t attention_shared_floats(int64_t units, int64_t Dv, int64_t group);

// A readable summary of a plan (tests and `KILN_CODEGEN_DEBUG`).
std::string describe(const RegionPlan& p);

}  // namespace kiln::cpu::plan
