// Internals of the CUDA code generator (docs/cuda.md): the element-program emitter that turns
// the IR ops of a region body into CUDA statements for one element at a time, and the kernel
// builders (rows, contraction, attention) that put those statements in loops.
//
// Vocabulary:
//  - An *activation row* m is one of the M rows a kernel splits its work by (the product's M,
//    the rows of a norm); a block handles MT of them, starting at m0.
//  - An *index* says which element of a value a statement computes: a flat row-major index, and
//    when possible its *affine form* flat = m * L + e + c, where L is the value's elements per
//    activation row, e a run-time expression and c a constant. Slices along the rows, reshapes and
//    elementwise ops keep the form, so a contraction's epilogue knows at compile time which
//    columns of the product (the *shifts* c) an output tile needs.
//  - A *stat* is what a reduction needs of a whole row before its elements can be computed (the
//    rms scale, mean and rstd, softmax max and sum, argmax): computed by a stage of one warp per
//    row into shared memory, before the loops that read it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "codegen/cuda/cuda_codegen.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cuda::detail {

inline constexpr int kThreads = 256;  // rows and contraction kernels
inline constexpr int kWarps = kThreads / 32;

std::string num(int64_t v);
std::string flt(double v);  // a float literal that round-trips ("1.5e-05f")
std::string dbl(double v);  // a double literal

// Text with indentation.
class Code {
 public:
  void line(const std::string& s);
  void open(const std::string& head);  // "head {"
  void close(const std::string& tail = "}");
  void raw(const std::string& s) { out_ += s; }
  const std::string& str() const { return out_; }
  int depth() const { return depth_; }

 private:
  std::string out_;
  int depth_ = 0;
};

struct Idx {
  std::string flat;  // a C expression of the flat index (always valid)
  bool aff = false;  // flat == m * L + e + c
  std::string m, e;
  int64_t L = 0, c = 0;

  static Idx affine(std::string m, std::string e, int64_t L, int64_t c);
  static Idx plain(std::string flat);
  std::string key() const;
};

enum class StatKind { kRms, kNorm, kSoftmax, kArgmax };

struct Stat {
  const ir::Node* node = nullptr;  // the reduction
  StatKind kind = StatKind::kRms;
  int64_t c = 0;      // tile spaces: the constant of the affine index of its rows
  int id = 0;         // st<id>_*
  int64_t row = 0;    // elements per row (last dim)
  int64_t rpm = 0;    // rows per activation row inside the block's space
  int64_t L = 0;      // the value's elements per activation row
  bool sink = false;  // argmax whose result the region yields
};

// Where the kernel's element loops run: whole rows (rows kernels, contraction prologues) or a
// tile [e0, e0 + tw) of each activation row (contraction epilogues).
struct Space {
  bool tile = false;
  int64_t M = 1;   // activation rows in all
  int64_t MT = 1;  // per block (m0 = first)
  int64_t tw = 0;  // tile spaces
};

// What the element emitter needs from the kernel being built.
struct KernelCtx {
  const ir::Node* region = nullptr;
  const ir::Graph* body = nullptr;
  std::vector<std::string> arg_names;  // C names of the region's operands ("a0", ...)
  std::vector<ArgLayout> layouts;      // per operand
  Space space;
  bool analysis = false;  // first pass: only collect stats and shifts

  // Stats, by (node, c).
  std::map<std::pair<const ir::Node*, int64_t>, Stat> stats;
  // Contraction epilogues: the product and the shifts (columns) a tile reads.
  const ir::Node* mm = nullptr;
  std::vector<int64_t> shifts;
  int64_t N = 0;
  // Attention kernels: the value the kernel computes whole (not per element).
  std::set<const ir::Value*> opaque_ok;

  // The module's host-made tables and those this kernel reads (shared by every copy of the
  // context); rope tables have rope_positions rows (the graph's cache length).
  std::vector<HostTable>* host_tables = nullptr;
  std::vector<int>* tables_used = nullptr;
  int64_t rope_positions = 0;
  // The kernel argument holding table t, registering it ("((const float*)args.p[23])").
  std::string table_arg(const HostTable& t);

  int next_var = 0;
  std::string var(const char* prefix) { return prefix + std::to_string(next_var++); }
  int slot_of(int64_t shift);  // index into `shifts`, registering it in analysis mode
};

// Emits the statements computing single elements of body values.
class ElemEmitter {
 public:
  ElemEmitter(KernelCtx& k, Code& code) : k_(k), code_(code) {}
  // A variable holding v at idx (float, or int for integer values). Emits what it needs.
  Result<std::string> value(const ir::Value* v, const Idx& idx);
  // Forgets cached variables (a new loop body).
  void reset() { memo_.clear(); }

 private:
  Result<std::string> compute(const ir::Value* v, const Idx& idx);
  Result<std::string> arg(int index, const ir::Value* v, const Idx& idx);
  Result<std::string> operand_at(const ir::Node& n, int i, const Idx& idx);
  Result<std::string> reduction(const ir::Node& n, const Idx& idx);
  Result<std::string> rope(const ir::Node& n, const Idx& idx);
  Result<std::string> product(const ir::Node& n, const Idx& idx);
  std::string flat(const Idx& idx);
  std::string emit(const std::string& type, const char* prefix, const std::string& expr);

  KernelCtx& k_;
  Code& code_;
  std::map<std::string, std::string> memo_;
};

// Helpers shared by the builders.
int64_t numel(const ir::Value* v);
bool is_int_type(DType t);
std::string c_type(DType t);                            // element type of a pointer to values of t
std::string store_expr(DType t, const std::string& v);  // value -> stored element
bool depends_on(const ir::Value* v, const ir::Value* on);
// The arg index a value comes from through free ops (and its byte offset), or -1.
int arg_root(const ir::Value* v, uint64_t* offset = nullptr);
// Values a region yields that need no write (aliases of operands: kv_write results, args).
bool yield_is_alias(const ir::Value* v);
const ir::Node* find_op(const ir::Graph& body, ir::Op op);
std::string rope_table_name(const ir::Node& rope);

// The kernel kinds. Each appends one __global__ function to `out` and fills the spec's launch
// configuration.
Status build_rows(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out);
Status build_contraction(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out,
                         const Options& o);
Status build_attention(KernelCtx& k, const std::string& entry, KernelSpec& spec, Code& out);

// Emits the stat stages of k.stats (in schedule order), each followed by __syncthreads().
// `m_expr`, `e_base` give the space: element e of local row lr is at m = m0 + lr / rpm and
// e = e_base + (lr % rpm) * row + j.
Status emit_stats(KernelCtx& k, Code& out, const std::string& e_base);
// Runs the analysis pass until no new stat appears (stats of stats included).
Status close_stats(KernelCtx& k);

// The device helpers every module starts with (NVRTC or host emulation flavor).
std::string prelude(bool emulation);
// Rope frequency tables the module's kernels use (`__device__ const double ...[]`).
std::string rope_tables(const std::vector<const ir::Node*>& ropes);

}  // namespace kiln::cuda::detail
