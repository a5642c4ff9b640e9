// The kernel function of a region: reads KilnKernelArgs, runs the plan's phases with a barrier
// between them, and the helpers every stage uses (loops, thread split, memory access, calls into
// the kernel library).
#if KILN_WITH_LLVM

#include <cstddef>

#include "codegen/cpu/emit.h"
#include "codegen/kernel_abi.h"

namespace kiln::cpu {

using plan::Home;
using plan::Where;

RegionEmitter::RegionEmitter(llvm::Module& m, const EmitTarget& t, const ir::Node& region,
                             const plan::RegionPlan& p)
    : M(m), C(m.getContext()), B(m.getContext()), T(t), region_(region), P(p) {
  i8 = B.getInt8Ty();
  i16 = B.getInt16Ty();
  i32 = B.getInt32Ty();
  i64 = B.getInt64Ty();
  f32 = B.getFloatTy();
  f64 = B.getDoubleTy();
  ptr = B.getPtrTy();
  void_ = B.getVoidTy();
}

llvm::FunctionCallee RegionEmitter::lib(const std::string& name, llvm::Type* ret,
                                        std::vector<llvm::Type*> params) {
  return M.getOrInsertFunction(name, llvm::FunctionType::get(ret, params, false));
}

llvm::Value* RegionEmitter::call(const std::string& name, llvm::Type* ret,
                                 std::vector<llvm::Value*> args) {
  std::vector<llvm::Type*> types;
  for (llvm::Value* a : args) types.push_back(a->getType());
  return B.CreateCall(lib(name, ret, types), args);
}

void RegionEmitter::if_then(llvm::Value* cond, const std::function<void()>& then) {
  llvm::BasicBlock* yes = llvm::BasicBlock::Create(C, "then", F);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(C, "endif", F);
  B.CreateCondBr(cond, yes, done);
  B.SetInsertPoint(yes);
  auto saved = memo_;
  then();
  memo_ = std::move(saved);
  B.CreateBr(done);
  B.SetInsertPoint(done);
}

// [total * ith / nth, total * (ith + 1) / nth)
std::pair<llvm::Value*, llvm::Value*> RegionEmitter::split(llvm::Value* total) {
  llvm::Value* lo = B.CreateSDiv(B.CreateMul(total, ith), nth);
  llvm::Value* hi = B.CreateSDiv(B.CreateMul(total, B.CreateAdd(ith, cst(1))), nth);
  return {lo, hi};
}

void RegionEmitter::barrier() {
  llvm::Value* has = B.CreateICmpNE(barrier_fn, llvm::ConstantPointerNull::get(B.getPtrTy()));
  if_then(has, [&] {
    B.CreateCall(llvm::FunctionType::get(void_, {ptr}, false), barrier_fn, {barrier_ctx});
  });
}

llvm::Value* RegionEmitter::home_ptr(const Home& h) {
  switch (h.where) {
    case Where::kArg:
      return operands_[size_t(h.index)];
    case Where::kResult:
      return results_[size_t(h.index)];
    case Where::kShared:
      return byte_gep(shared_base, cst(int64_t(h.offset)));
    case Where::kPrivate:
      return byte_gep(priv_base, cst(int64_t(h.offset)));
  }
  return nullptr;
}

Result<llvm::Value*> RegionEmitter::pointer(const ir::Value* v) {
  plan::Root r = plan::strip_free(v);
  auto it = P.homes.find(r.value);
  if (it == P.homes.end())
    return make_error("internal: ", ir::op_name(v->def->op), " ", v->type.str(),
                      " should be in memory");
  return byte_gep(home_ptr(it->second), cst(int64_t(r.offset)));
}

llvm::Value* RegionEmitter::to_f32(llvm::Value* v) {
  if (v->getType()->isFloatTy()) return v;
  return B.CreateSIToFP(v, f32);
}

llvm::Value* RegionEmitter::to_i64(llvm::Value* v) {
  if (v->getType()->isIntegerTy(64)) return v;
  return B.CreateFPToSI(v, i64);
}

namespace {

const char* type_suffix(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
    case DType::BF16:
      return "bf16";
    case DType::Q4_0:
      return "q4_0";
    case DType::Q4_1:
      return "q4_1";
    case DType::Q5_0:
      return "q5_0";
    case DType::Q5_1:
      return "q5_1";
    case DType::Q8_0:
      return "q8_0";
    case DType::Q8_1:
      return "q8_1";
    case DType::Q2_K:
      return "q2_k";
    case DType::Q3_K:
      return "q3_k";
    case DType::Q4_K:
      return "q4_k";
    case DType::Q5_K:
      return "q5_k";
    case DType::Q6_K:
      return "q6_k";
    case DType::Q8_K:
      return "q8_k";
    case DType::IQ4_NL:
      return "iq4_nl";
    case DType::IQ4_XS:
      return "iq4_xs";
    default:
      return nullptr;
  }
}

}  // namespace

std::string lib_suffix(DType t) {
  const char* s = type_suffix(t);
  return s ? s : "";
}

llvm::Value* RegionEmitter::load(llvm::Value* p, DType t, int64_t row_len, llvm::Value* i) {
  switch (t) {
    case DType::F32:
      return B.CreateLoad(f32, f32_gep(p, i));
    case DType::F64:
      return B.CreateFPTrunc(B.CreateLoad(f64, B.CreateGEP(f64, p, i)), f32);
    case DType::F16:
      return call("kl_f16_to_f32", f32, {B.CreateLoad(i16, B.CreateGEP(i16, p, i))});
    case DType::BF16:
      return call("kl_bf16_to_f32", f32, {B.CreateLoad(i16, B.CreateGEP(i16, p, i))});
    case DType::I8:
      return B.CreateSExt(B.CreateLoad(i8, B.CreateGEP(i8, p, i)), i64);
    case DType::I16:
      return B.CreateSExt(B.CreateLoad(i16, B.CreateGEP(i16, p, i)), i64);
    case DType::I32:
      return B.CreateSExt(B.CreateLoad(i32, B.CreateGEP(i32, p, i)), i64);
    case DType::I64:
      return B.CreateLoad(i64, B.CreateGEP(i64, p, i));
    case DType::BOOL:
      return B.CreateZExt(B.CreateICmpNE(B.CreateLoad(i8, B.CreateGEP(i8, p, i)), B.getInt8(0)),
                          i64);
    default: {
      // A quantized element: its row's bytes, then the element within the row.
      const uint64_t rb = row_bytes(t, uint64_t(row_len)).value_or(0);
      llvm::Value* r = B.CreateUDiv(i, cst(row_len));
      llvm::Value* k = B.CreateURem(i, cst(row_len));
      llvm::Value* rp = byte_gep(p, B.CreateMul(r, cst(int64_t(rb))));
      return call("kl_dequant_elem_" + lib_suffix(t), f32, {rp, k});
    }
  }
}

void RegionEmitter::store(llvm::Value* p, DType t, llvm::Value* i, llvm::Value* v) {
  switch (t) {
    case DType::F32:
      B.CreateStore(to_f32(v), f32_gep(p, i));
      return;
    case DType::F64:
      B.CreateStore(B.CreateFPExt(to_f32(v), f64), B.CreateGEP(f64, p, i));
      return;
    case DType::F16:
      B.CreateStore(call("kl_f32_to_f16", i16, {to_f32(v)}), B.CreateGEP(i16, p, i));
      return;
    case DType::BF16:
      B.CreateStore(call("kl_f32_to_bf16", i16, {to_f32(v)}), B.CreateGEP(i16, p, i));
      return;
    case DType::BOOL:
      B.CreateStore(B.CreateZExt(B.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType())), i8),
                    B.CreateGEP(i8, p, i));
      return;
    default: {
      llvm::Type* ty = t == DType::I8 ? i8 : t == DType::I16 ? i16 : t == DType::I32 ? i32 : i64;
      llvm::Value* x = v->getType()->isFloatTy()
                           ? B.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {ty, f32}, {v})
                           : B.CreateTrunc(v, ty);
      B.CreateStore(x, B.CreateGEP(ty, p, i));
      return;
    }
  }
}

std::vector<llvm::Value*> RegionEmitter::delinearize(llvm::Value* x, const ir::Shape& s,
                                                     size_t from, size_t to) {
  std::vector<llvm::Value*> d(to - from);
  int64_t stride = 1;
  for (size_t k = to; k-- > from;) {
    llvm::Value* q = stride == 1 ? x : B.CreateUDiv(x, cst(stride));
    if (s[k] == 1)
      d[k - from] = cst(0);
    else
      d[k - from] = k == from ? q : B.CreateURem(q, cst(s[k]));
    stride *= s[k];
  }
  return d;
}

llvm::Value* RegionEmitter::linearize(const std::vector<llvm::Value*>& d, const ir::Shape& s) {
  llvm::Value* x = cst(0);
  int64_t stride = 1;
  for (size_t k = s.size(); k-- > 0;) {
    if (s[k] != 1) x = B.CreateAdd(x, stride == 1 ? d[k] : B.CreateMul(d[k], cst(stride)));
    stride *= s[k];
  }
  return x;
}

Status RegionEmitter::emit(const std::string& symbol, uint64_t scratch_bytes) {
  F = llvm::Function::Create(llvm::FunctionType::get(void_, {ptr}, false),
                             llvm::Function::ExternalLinkage, symbol, M);
  F->addFnAttr(llvm::Attribute::NoUnwind);
  llvm::Argument* args = F->getArg(0);
  args->addAttr(llvm::Attribute::NoAlias);
  B.SetInsertPoint(llvm::BasicBlock::Create(C, "entry", F));
  auto field = [&](size_t off, llvm::Type* ty) {
    return B.CreateLoad(ty, byte_gep(args, cst(int64_t(off))));
  };
  llvm::Value* buffers = field(offsetof(KilnKernelArgs, buffers), ptr);
  llvm::Value* scratch = field(offsetof(KilnKernelArgs, scratch), ptr);
  mk = field(offsetof(KilnKernelArgs, mk), ptr);
  ith = B.CreateSExt(field(offsetof(KilnKernelArgs, ith), i32), i64);
  nth = B.CreateSExt(field(offsetof(KilnKernelArgs, nth), i32), i64);
  barrier_fn = field(offsetof(KilnKernelArgs, barrier), ptr);
  barrier_ctx = field(offsetof(KilnKernelArgs, barrier_ctx), ptr);
  args_ = args;
  const int nops = region_.num_operands();
  for (int i = 0; i < nops + int(region_.results.size()); ++i) {
    llvm::Value* p = B.CreateLoad(ptr, B.CreateGEP(ptr, buffers, cst(i)));
    (i < nops ? operands_ : results_).push_back(p);
  }
  shared_base = byte_gep(scratch, B.CreateMul(ith, cst(-int64_t(scratch_bytes))));
  priv_base = byte_gep(scratch, cst(int64_t(P.shared_bytes)));

  for (size_t p = 0; p < P.phases.size(); ++p) {
    if (p > 0) barrier();
    for (const plan::Stage& st : P.phases[p]) {
      Status s;
      switch (st.kind) {
        case plan::Stage::kFlat:
          s = flat_stage(st.flat);
          break;
        case plan::Stage::kTile:
          s = tile_stage(st.tile);
          break;
        case plan::Stage::kAttention:
          s = attention_stage(st.attn);
          break;
        case plan::Stage::kBatched:
          s = batched_stage(st.batched);
          break;
      }
      KILN_RETURN_IF_ERROR(s);
    }
  }
  B.CreateRetVoid();
  return Status::Ok();
}

llvm::Value* RegionEmitter::real_tokens() {
  llvm::Value* p =
      B.CreateLoad(ptr, byte_gep(args_, cst(int64_t(offsetof(KilnKernelArgs, tokens)))));
  llvm::BasicBlock* from = B.GetInsertBlock();
  llvm::BasicBlock* read = llvm::BasicBlock::Create(C, "tokens.read", F);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(C, "tokens.done", F);
  B.CreateCondBr(B.CreateIsNull(p), done, read);
  B.SetInsertPoint(read);
  llvm::Value* v = B.CreateLoad(i32, p);
  B.CreateBr(done);
  B.SetInsertPoint(done);
  llvm::PHINode* phi = B.CreatePHI(i32, 2);
  phi->addIncoming(B.getInt32(0), from);
  phi->addIncoming(v, read);
  return phi;
}

}  // namespace kiln::cpu

#endif  // KILN_WITH_LLVM
