// A static AArch64 program that loads a .kiln artifact compiled with --target aarch64 and runs
// its decode graph, under qemu-user (tests/artifact_aarch64_test.cpp builds the artifact and
// compares with the host's reference interpreter). It is a small stand-in for the runtime's
// loader and CPU executor on a machine without LLVM:
//
//   artifact_harness ARTIFACT LOGITS_OUT STEPS THREADS TOKEN...
//
// maps ARTIFACT and checks it with kiln's own parser (magic, version, header and every section's
// CRC32C), reads the decode graph's IR, memory plan and kernel table, links the graph's object
// code in memory with a minimal ELF linker (elf_link.h), binds every kernel argument as
// runtime/cpu_executor.cpp does (arena slots at their plan offsets, weights in the embedded GGUF,
// derived constants from the constants section, a zeroed KV cache), and runs STEPS decode steps
// on THREADS threads: step i feeds TOKEN i (or, past the given tokens, the previous step's argmax)
// at position i. The logits of every step are appended to LOGITS_OUT (f32); each step prints
// `step I token T next N`. Any error prints `artifact_harness: ...` and exits 1.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "codegen/kernel_abi.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/mapped_file.h"
#include "ir/parser.h"
#include "ir/verifier.h"
#include "passes/graph_util.h"
#include "passes/memory_plan.h"
#include "runtime/artifact_format.h"
#include "runtime/artifact_records.h"
#include "runtime/constant_key.h"
#include "tests/aarch64/elf_link.h"

namespace kiln {
namespace {

ir::Shape strip_leading_ones(ir::Shape s) {
  while (s.size() > 1 && s.front() == 1) s.erase(s.begin());
  return s;
}

struct Buffer {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> p;
};

Result<Buffer> alloc_zeroed(uint64_t bytes) {
  const uint64_t cap = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  Buffer b;
  b.p.reset(static_cast<uint8_t*>(std::aligned_alloc(64, cap)));
  if (!b.p) return make_error("out of memory (", cap, " bytes)");
  std::memset(b.p.get(), 0, cap);
  return b;
}

// A barrier over the threads of one run (the runtime's pool has the same contract).
struct SpinBarrier {
  int n = 1;
  std::atomic<int> count{0};
  std::atomic<int> gen{0};
  static void wait_fn(void* ctx) {
    auto* b = static_cast<SpinBarrier*>(ctx);
    const int g = b->gen.load();
    if (b->count.fetch_add(1) + 1 == b->n) {
      b->count.store(0);
      b->gen.fetch_add(1);
      return;
    }
    while (b->gen.load() == g) sched_yield();
  }
};

struct Io {
  const ir::TensorType* type = nullptr;
  uint8_t* data = nullptr;
};

// The decode graph of an artifact, linked and bound.
struct Program {
  std::unique_ptr<MappedFile> map;
  std::unique_ptr<gguf::GgufFile> weights;
  std::unique_ptr<ir::Graph> graph;
  a64::LinkedObject code;
  Buffer arena, scratch;
  std::vector<Buffer> states;
  std::vector<KilnKernelFn> kernels;
  std::vector<std::vector<void*>> buffers;   // per kernel
  std::vector<uint64_t> scratch_per_thread;  // per kernel
  std::map<std::string, Io> inputs, outputs;
};

Result<std::unique_ptr<Program>> load(const std::string& path, int nth) {
  auto prog = std::make_unique<Program>();
  KILN_ASSIGN_OR_RETURN(prog->map, MappedFile::open(path));
  // Magic, version, head checksum, section table, and every section's CRC32C.
  KILN_ASSIGN_OR_RETURN(artifact::ArtifactView v, artifact::parse(prog->map->bytes(), path));
  auto err = [&](auto&&... parts) { return make_error(path, ": ", parts...); };
  if (v.header.get("target.arch") != "aarch64")
    return err("compiled for ", v.header.get("target.arch"), ", this harness runs aarch64");
  const std::vector<std::string> graphs = v.header.get_list("graphs");
  if (graphs.empty()) return err("no graphs");
  const std::string name = graphs[0];  // decode first
  auto section = [&](artifact::SectionKind k) -> Result<const artifact::SectionEntry*> {
    const artifact::SectionEntry* s = v.find(k, name);
    if (!s) return err("graph ", name, " has no ", artifact::section_kind_name(k), " section");
    return s;
  };
  KILN_ASSIGN_OR_RETURN(auto spec_s, section(artifact::SectionKind::kGraphSpec));
  KILN_ASSIGN_OR_RETURN(lower::GraphSpec spec, artifact::decode_spec(v.text(*spec_s)));
  if (spec.tokens != 1 || spec.batch != 1 || spec.all_logits)
    return err("graph ", name, " is not a one-token decode graph");
  KILN_ASSIGN_OR_RETURN(auto ir_s, section(artifact::SectionKind::kGraphIr));
  KILN_ASSIGN_OR_RETURN(prog->graph, ir::parse(v.text(*ir_s)));
  KILN_RETURN_IF_ERROR(ir::verify(*prog->graph));
  const ir::Graph& g = *prog->graph;
  KILN_ASSIGN_OR_RETURN(auto plan_s, section(artifact::SectionKind::kGraphPlan));
  KILN_ASSIGN_OR_RETURN(passes::MemoryPlan plan, passes::MemoryPlan::parse(v.text(*plan_s)));
  KILN_RETURN_IF_ERROR(passes::validate(plan, g));
  KILN_ASSIGN_OR_RETURN(auto k_s, section(artifact::SectionKind::kGraphKernels));
  KILN_ASSIGN_OR_RETURN(auto infos, artifact::decode_kernels(v.text(*k_s)));
  KILN_ASSIGN_OR_RETURN(auto obj_s, section(artifact::SectionKind::kGraphObject));

  // The object code, linked here; kernels may call only memcpy/memset and the C library's
  // cosf/sinf/expf, which llama.cpp's rope and softmax call (codegen-cpu.md).
  const std::map<std::string, void*> externals = {
      {"memcpy", reinterpret_cast<void*>(&memcpy)}, {"memmove", reinterpret_cast<void*>(&memmove)},
      {"memset", reinterpret_cast<void*>(&memset)}, {"cosf", reinterpret_cast<void*>(&cosf)},
      {"sinf", reinterpret_cast<void*>(&sinf)},     {"expf", reinterpret_cast<void*>(&expf)},
  };
  auto linked = a64::link_object(v.data(*obj_s), externals);
  if (!linked.ok()) return linked.error().wrap(path + ": graph.object " + name);
  prog->code = std::move(*linked);
  for (const auto& [type, count] : prog->code.relocations())
    std::printf("relocation %s %d\n", type.c_str(), count);

  const artifact::SectionEntry* w = v.find(artifact::SectionKind::kWeights);
  if (!w) return err("no embedded weights (--weights reference is not supported here)");
  KILN_ASSIGN_OR_RETURN(prog->weights,
                        gguf::GgufFile::parse(v.data(*w), path + " (weights section)"));
  std::unordered_map<std::string, std::span<const uint8_t>> stored;
  if (const artifact::SectionEntry* c = v.find(artifact::SectionKind::kConstants)) {
    KILN_ASSIGN_OR_RETURN(auto cs, artifact::decode_constants(v.data(*c)));
    for (artifact::StoredConstant& s : cs) stored[s.key] = s.bytes;
  }
  KILN_ASSIGN_OR_RETURN(prog->arena, alloc_zeroed(plan.arena_bytes));

  // Addresses, as CpuExecutor::bind gives them. A derived constant the artifact does not store
  // is an error only when a kernel reads it.
  std::map<std::pair<int, int>, const passes::PlanEntry*> entries;
  for (const passes::PlanEntry& e : plan.entries) entries[{e.node, e.result}] = &e;
  const auto constants = passes::constant_values(g);
  std::unordered_map<const ir::Value*, uint8_t*> addr;
  std::unordered_map<const ir::Value*, std::string> missing;
  auto arena_addr = [&](int i, int r) -> Result<uint8_t*> {
    auto it = entries.find({i, r});
    if (it == entries.end() || it->second->storage == passes::Storage::kExternal)
      return err("node ", i, " result ", r, " has no arena slot in the memory plan");
    if (it->second->offset + it->second->bytes > plan.arena_bytes)
      return err("node ", i, ": arena slot outside the arena");
    return prog->arena.p.get() + it->second->offset;
  };
  auto resolve = [&](const ir::Value* o) -> Result<uint8_t*> {
    if (auto m = missing.find(o); m != missing.end()) return err(m->second);
    auto a = addr.find(o);
    if (a == addr.end()) return err("value %", o->id, " has no address");
    return a->second;
  };
  uint64_t scratch_max = 0;
  size_t kernel = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    const int ni = int(i);
    if (n.op == ir::Op::Input) {
      KILN_ASSIGN_OR_RETURN(uint8_t * p, arena_addr(ni, 0));
      addr[n.result()] = p;
      prog->inputs[n.attrs.s("name")] = Io{&n.result()->type, p};
    } else if (n.op == ir::Op::Weight) {
      const std::string wn = n.attrs.s("name");
      const ir::TensorType& want = n.result()->type;
      const gguf::TensorInfo* t = prog->weights->find_tensor(wn);
      if (!t) {  // the embedded GGUF keeps only the weights kernels read as stored
        missing[n.result()] = "weight " + wn + " is not in the embedded GGUF";
        continue;
      }
      ir::Shape shape;
      for (auto it = t->dims.rbegin(); it != t->dims.rend(); ++it) shape.push_back(int64_t(*it));
      if (t->type != want.dtype || strip_leading_ones(shape) != strip_leading_ones(want.shape) ||
          want.bytes().value_or(0) != t->bytes)
        return err("weight ", wn, ": the graph declares ", want.str(), ", the GGUF differs");
      addr[n.result()] = const_cast<uint8_t*>(prog->weights->data(*t));
    } else if (n.op == ir::Op::State) {
      KILN_ASSIGN_OR_RETURN(Buffer b, alloc_zeroed(n.result()->type.bytes().value_or(0)));
      addr[n.result()] = b.p.get();
      prog->states.push_back(std::move(b));
    } else if (n.op == ir::Op::Output) {
      KILN_ASSIGN_OR_RETURN(uint8_t * p, resolve(n.operand(0)));
      if (n.operand(0)->type.dtype != DType::F32) return err("output is not f32");
      prog->outputs[n.attrs.s("name")] = Io{&n.operand(0)->type, p};
    } else if (passes::is_free(n)) {
      auto a = passes::alias_of(n, 0);
      if (!a) return err("node ", i, ": a view without alias");
      if (auto m = missing.find(n.operand(0)); m != missing.end()) {
        missing[n.result()] = m->second;
      } else {
        KILN_ASSIGN_OR_RETURN(uint8_t * p, resolve(n.operand(0)));
        addr[n.result()] = p + a->offset;
      }
    } else if (n.op != ir::Op::Region) {
      if (!constants.count(n.result())) return err("node ", i, " is not in a region");
      for (const ir::Value* r : n.results) {
        const std::string key = runtime::constant_key(*r);
        auto s = stored.find(key);
        if (s == stored.end()) {
          missing[r] = "derived constant " + key + " is not in the constants section";
        } else if (s->second.size() != r->type.bytes().value_or(0)) {
          return err("stored constant ", key, " has ", s->second.size(), " bytes");
        } else {
          addr[r] = const_cast<uint8_t*>(s->second.data());
        }
      }
    } else {
      if (kernel >= infos.size()) return err("more regions than kernels");
      const cpu::KernelInfo& k = infos[kernel];
      if (k.num_args != int(n.operands.size() + n.results.size()))
        return err("kernel ", k.name, " takes ", k.num_args, " arguments");
      if (k.uses_microkernels) return err("kernel ", k.name, " uses x86 microkernels");
      std::vector<void*> args;
      for (size_t j = 0; j < n.operands.size(); ++j) {
        const bool packed = std::find(k.packed_operands.begin(), k.packed_operands.end(), int(j)) !=
                            k.packed_operands.end();
        if (packed) {
          auto s = stored.find(runtime::packed_key(*n.operands[j]));
          if (s == stored.end()) return err("kernel ", k.name, ": no packed copy stored");
          args.push_back(const_cast<uint8_t*>(s->second.data()));
          continue;
        }
        KILN_ASSIGN_OR_RETURN(uint8_t * p, resolve(n.operands[j]));
        args.push_back(p);
      }
      for (size_t r = 0; r < n.results.size(); ++r) {
        uint8_t* p;
        if (auto a = passes::alias_of(n, int(r))) {
          KILN_ASSIGN_OR_RETURN(uint8_t * b, resolve(n.operand(a->operand)));
          p = b + a->offset;
        } else {
          KILN_ASSIGN_OR_RETURN(p, arena_addr(ni, int(r)));
        }
        addr[n.results[r]] = p;
        args.push_back(p);
      }
      KILN_ASSIGN_OR_RETURN(void* fn, prog->code.symbol(k.symbol));
      prog->kernels.push_back(reinterpret_cast<KilnKernelFn>(fn));
      prog->buffers.push_back(std::move(args));
      prog->scratch_per_thread.push_back(k.scratch_bytes);
      scratch_max = std::max<uint64_t>(scratch_max, uint64_t(nth) * k.scratch_bytes);
      ++kernel;
    }
  }
  if (kernel != infos.size()) return err(infos.size(), " kernels, ", kernel, " regions");
  for (const char* in : {"tokens", "pos", "seq"})
    if (!prog->inputs.count(in)) return err("the graph has no input '", in, "'");
  if (!prog->outputs.count("logits")) return err("the graph has no output 'logits'");
  KILN_ASSIGN_OR_RETURN(prog->scratch, alloc_zeroed(scratch_max));
  return prog;
}

// Every thread runs every kernel, with a barrier between kernels (CpuExecutor::schedule).
void run(Program& p, int nth) {
  SpinBarrier barrier;
  barrier.n = nth;
  auto work = [&](int ith) {
    for (size_t k = 0; k < p.kernels.size(); ++k) {
      KilnKernelArgs a{};
      a.buffers = p.buffers[k].data();
      a.scratch = p.scratch.p.get() + size_t(ith) * p.scratch_per_thread[k];
      a.mk = nullptr;
      a.ith = ith;
      a.nth = nth;
      a.barrier = &SpinBarrier::wait_fn;
      a.barrier_ctx = &barrier;
      p.kernels[k](&a);
      if (k + 1 < p.kernels.size()) SpinBarrier::wait_fn(&barrier);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < nth; ++t) threads.emplace_back(work, t);
  work(0);
  for (std::thread& t : threads) t.join();
}

int fail(const std::string& message) {
  std::fprintf(stderr, "artifact_harness: %s\n", message.c_str());
  return 1;
}

int harness_main(int argc, char** argv) {
  if (argc < 6) return fail("usage: artifact_harness ARTIFACT LOGITS_OUT STEPS THREADS TOKEN...");
  const int steps = std::atoi(argv[3]), nth = std::atoi(argv[4]);
  if (steps < 1 || steps > 4096 || nth < 1 || nth > 16) return fail("bad STEPS or THREADS");
  std::vector<int32_t> prompt;
  for (int i = 5; i < argc; ++i) prompt.push_back(int32_t(std::atoi(argv[i])));
  auto prog = load(argv[1], nth);
  if (!prog.ok()) return fail(prog.message());
  Program& p = **prog;
  const Io& logits = p.outputs.at("logits");
  const int64_t vocab = logits.type->numel();
  std::FILE* out = std::fopen(argv[2], "wb");
  if (!out) return fail(std::string("cannot write ") + argv[2]);
  int32_t next = 0;
  for (int s = 0; s < steps; ++s) {
    const int32_t token = size_t(s) < prompt.size() ? prompt[size_t(s)] : next;
    if (token < 0 || token >= vocab)
      return fail("token " + std::to_string(token) + " not in vocab");
    const int32_t pos = s, seq = 0;
    std::memcpy(p.inputs.at("tokens").data, &token, 4);
    std::memcpy(p.inputs.at("pos").data, &pos, 4);
    std::memcpy(p.inputs.at("seq").data, &seq, 4);
    run(p, nth);
    const float* l = reinterpret_cast<const float*>(logits.data);
    next = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (l[i] > l[next]) next = int32_t(i);
    if (std::fwrite(l, sizeof(float), size_t(vocab), out) != size_t(vocab))
      return fail(std::string("cannot write ") + argv[2]);
    std::printf("step %d token %d next %d\n", s, token, next);
  }
  if (std::fclose(out) != 0) return fail(std::string("cannot write ") + argv[2]);
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  return kiln::harness_main(argc, argv);
}
