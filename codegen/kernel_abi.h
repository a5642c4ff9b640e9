// The one kernel ABI. Every compiled kernel — LLVM-generated for the CPU (JIT or object code),
// or its CUDA counterpart's host-side description — is called the same way, so the runtime's
// executor is one loop over a schedule.
//
// A CPU kernel is called once per thread of the pool, with that thread's index; it splits its
// own work (rows, tiles) over `nth` threads. The executor puts a barrier between kernels.
// Everything a kernel reads at run time (the position, the KV length) comes from its buffers,
// so a kernel never depends on them at compile time.
#pragma once

#include <cstdint>

extern "C" {

struct KilnKernelArgs {
  void* const* buffers;   // one pointer per kernel argument: region operands, then results
  void* scratch;          // this thread's scratch (the kernel's scratch_bytes, 64-byte aligned)
  const void* const* mk;  // microkernel function table (codegen/cpu/microkernels.h), or null
  int32_t ith;            // this thread
  int32_t nth;            // threads running this kernel
  // Barrier across the nth threads, for kernels with several stages (normalize, then multiply).
  void (*barrier)(void* ctx);
  void* barrier_ctx;
  // How many of the graph's token rows are real tokens in this run (positions >= 0; the rest a
  // prefill bucket's padding), or null: all of them. llama.cpp picks some product kernels, and
  // so their summation order, by that count; the microkernels follow it (docs/parity.md).
  const int32_t* tokens;
};

typedef void (*KilnKernelFn)(const KilnKernelArgs* args);

}  // extern "C"
