// LLVM IR emission of one planned region: `void symbol(const KilnKernelArgs*)`. Internal to
// codegen/cpu (LLVM builds only). emit_core.cpp: the function, loops, memory, library calls;
// emit_expr.cpp: element expressions and index maps; emit_stages.cpp: the stage loops.
#pragma once

#if KILN_WITH_LLVM

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "codegen/cpu/region_plan.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cpu {

// What the emitter needs to know about the target.
struct EmitTarget {
  bool native_f16 = false;  // F16C or AArch64: half conversions are one instruction
};

// The position of one element of a value, in whichever forms are known (the others are derived
// on demand): the flat row-major index, the multi-index, and — while the element is aligned
// with the current unit — its place in the unit's buffers and, in tile stages, its row and its
// column within the value's rows.
struct Ix {
  const ir::TensorType* type = nullptr;
  llvm::Value* flat = nullptr;
  std::vector<llvm::Value*> dims;
  bool aligned = false;
  llvm::Value* upos = nullptr;  // index into row buffers and product tiles
  int64_t shift = 0;            // tile stages: product column = sink column + shift
  llvm::Value* row = nullptr;   // tile stages: output row m
  llvm::Value* col = nullptr;   //   and column within this value's row
};

std::string lib_suffix(DType t);  // "q4_0", ... : the kernel library's name of a type

class RegionEmitter {
 public:
  RegionEmitter(llvm::Module& m, const EmitTarget& t, const ir::Node& region,
                const plan::RegionPlan& p);
  Status emit(const std::string& symbol, uint64_t scratch_bytes);

 private:
  // ---- emit_core.cpp
  llvm::Value* cst(int64_t v) { return B.getInt64(uint64_t(v)); }
  llvm::Value* cf(double v) { return llvm::ConstantFP::get(f32, v); }
  llvm::FunctionCallee lib(const std::string& name, llvm::Type* ret,
                           std::vector<llvm::Type*> params);
  llvm::Value* call(const std::string& name, llvm::Type* ret, std::vector<llvm::Value*> args);
  // for (i = lo; i < hi; ++i) body(i)
  template <class Body>
  void loop(llvm::Value* lo, llvm::Value* hi, Body&& body);
  void if_then(llvm::Value* cond, const std::function<void()>& then);
  std::pair<llvm::Value*, llvm::Value*> split(llvm::Value* total);
  void barrier();
  llvm::Value* home_ptr(const plan::Home& h);
  // Pointer to the memory of a value that lives in memory (through reshapes and views).
  Result<llvm::Value*> pointer(const ir::Value* v);
  llvm::Value* byte_gep(llvm::Value* p, llvm::Value* bytes) { return B.CreateGEP(i8, p, bytes); }
  llvm::Value* f32_gep(llvm::Value* p, llvm::Value* i) { return B.CreateGEP(f32, p, i); }
  // An element of type t at flat index i of memory p: f32 for floating and quantized types, i64
  // for integers and bool.
  llvm::Value* load(llvm::Value* p, DType t, int64_t row_len, llvm::Value* i);
  void store(llvm::Value* p, DType t, llvm::Value* i, llvm::Value* v);
  llvm::Value* to_f32(llvm::Value* v);
  llvm::Value* to_i64(llvm::Value* v);
  llvm::Value* priv_f32(uint64_t offset) { return byte_gep(priv_base, cst(int64_t(offset))); }
  std::vector<llvm::Value*> delinearize(llvm::Value* x, const ir::Shape& s, size_t from, size_t to);
  llvm::Value* linearize(const std::vector<llvm::Value*>& d, const ir::Shape& s);

  // ---- emit_expr.cpp
  llvm::Value* flat_of(Ix& ix);
  const std::vector<llvm::Value*>& dims_of(Ix& ix);
  Ix operand_ix(const ir::Node& n, int k, Ix& out);
  // `computing`: v is the value a sink is writing, so it is computed even though it has a home.
  Result<llvm::Value*> elem(const ir::Value* v, Ix ix, bool computing = false);
  Result<llvm::Value*> felem(const ir::Value* v, Ix ix);
  Result<llvm::Value*> ielem(const ir::Value* v, Ix ix);
  Result<llvm::Value*> compute(const ir::Value* v, Ix& ix);
  Result<llvm::Value*> concat(const ir::Node& n, Ix& ix);
  // The angle table of a rope's position (kl_rope_angles), one per distinct (n_dims, freq_base,
  // freq_scale) in the function, recomputed only when a row's position differs from the last
  // one's: cosf/sinf per pair are too slow to call for every head row.
  struct RopeAngles {
    llvm::Value* cs = nullptr;   // float[n_dims], cos and sin per pair
    llvm::Value* pos = nullptr;  // i64: the position cs holds (INT64_MIN: none)
    float theta_scale = 0;
  };
  RopeAngles& rope_angles(const ir::Node& rope);

  // ---- emit_stages.cpp
  Status flat_stage(const plan::FlatStage& f);
  Status tile_stage(const plan::TileStage& t);
  Status attention_stage(const plan::AttentionStage& a);
  Status batched_stage(const plan::BatchedStage& b);
  // A row op over `nsub` rows of its value starting at flat index `start`, into its unit buffer
  // at `ubase`; tmp: two temporaries of tmp_row floats; m, c: tile row and column (or null).
  Status row_op(const plan::RowOp& r, llvm::Value* start, llvm::Value* ubase, llvm::Value* nsub,
                llvm::Value* tmp, int64_t tmp_row, llvm::Value* m, llvm::Value* c);
  Status sink_rows(const plan::Sink& s, llvm::Value* start, llvm::Value* ubase, llvm::Value* nrows,
                   llvm::Value* tmp, llvm::Value* m, llvm::Value* c);
  Status store_elems(const plan::Sink& s, llvm::Value* start, llvm::Value* width, int64_t unit_len,
                     llvm::Value* ubase, bool whole_rows, llvm::Value* m, llvm::Value* c);

  struct Unit {
    std::unordered_map<const ir::Node*, llvm::Value*> rowbuf;  // float* per row op
    std::vector<std::pair<int64_t, llvm::Value*>> tiles;       // product tiles by shift
    const ir::Node* mm = nullptr;
    int64_t mrows = 1;
  };

  llvm::Module& M;
  llvm::LLVMContext& C;
  llvm::IRBuilder<> B;
  const EmitTarget& T;
  const ir::Node& region_;
  const plan::RegionPlan& P;
  llvm::Function* F = nullptr;
  llvm::Type *i8, *i16, *i32, *i64, *f32, *f64, *ptr, *void_;
  llvm::Value *ith = nullptr, *nth = nullptr, *mk = nullptr;
  llvm::Value *barrier_fn = nullptr, *barrier_ctx = nullptr;
  llvm::Value* args_ = nullptr;  // the KilnKernelArgs
  // The run's real token count (KilnKernelArgs::tokens), 0 when the executor gives none.
  llvm::Value* real_tokens();
  llvm::Value *shared_base = nullptr, *priv_base = nullptr;
  std::vector<llvm::Value*> operands_, results_;
  Unit U;
  std::map<std::vector<const void*>, llvm::Value*> memo_;
  std::map<std::tuple<int64_t, double, double>, RopeAngles> rope_angles_;
};

template <class Body>
void RegionEmitter::loop(llvm::Value* lo, llvm::Value* hi, Body&& body) {
  llvm::BasicBlock* pre = B.GetInsertBlock();
  llvm::BasicBlock* head = llvm::BasicBlock::Create(C, "loop", F);
  llvm::BasicBlock* bodyb = llvm::BasicBlock::Create(C, "body", F);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(C, "exit", F);
  B.CreateBr(head);
  B.SetInsertPoint(head);
  llvm::PHINode* iv = B.CreatePHI(i64, 2, "i");
  iv->addIncoming(lo, pre);
  B.CreateCondBr(B.CreateICmpSLT(iv, hi), bodyb, exit);
  B.SetInsertPoint(bodyb);
  auto saved = memo_;
  body(static_cast<llvm::Value*>(iv));
  memo_ = std::move(saved);
  llvm::Value* next = B.CreateAdd(iv, cst(1), "", /*HasNUW=*/true, /*HasNSW=*/true);
  iv->addIncoming(next, B.GetInsertBlock());
  B.CreateBr(head);
  B.SetInsertPoint(exit);
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
