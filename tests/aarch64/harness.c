// A static AArch64 program that runs kernels from an object file emitted by
// kiln::cpu::emit_object, under qemu-user (tests/cpu_codegen_aarch64_test.cpp builds and runs it).
//
//   harness DIR
//
// DIR/calls.txt lists kernel calls, run in order; each is
//   call KERNEL NTH SCRATCH_BYTES NBUF
// followed by NBUF buffer lines, the kernel's operands then its results:
//   in PATH BYTES      read from PATH
//   inout PATH BYTES   read from PATH, written back after the call (KV caches)
//   out PATH BYTES     written to PATH after the call
//   alias INDEX OFFSET the memory of buffer INDEX of this call, OFFSET bytes in
// The kernel table (kiln_kernels, kiln_num_kernels) comes from a generated C file.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// codegen/kernel_abi.h, in C.
struct KilnKernelArgs {
  void* const* buffers;
  void* scratch;
  const void* const* mk;
  int32_t ith;
  int32_t nth;
  void (*barrier)(void* ctx);
  void* barrier_ctx;
  const int32_t* tokens;
};
typedef void (*KilnKernelFn)(const struct KilnKernelArgs* args);

extern KilnKernelFn kiln_kernels[];
extern int kiln_num_kernels;

struct Barrier {
  int n;
  atomic_int count;
  atomic_int gen;
};

static void barrier_wait(void* ctx) {
  struct Barrier* b = ctx;
  int g = atomic_load(&b->gen);
  if (atomic_fetch_add(&b->count, 1) + 1 == b->n) {
    atomic_store(&b->count, 0);
    atomic_fetch_add(&b->gen, 1);
    return;
  }
  while (atomic_load(&b->gen) == g) sched_yield();
}

struct Thread {
  KilnKernelFn fn;
  struct KilnKernelArgs args;
};

static void* run_thread(void* p) {
  struct Thread* t = p;
  t->fn(&t->args);
  return NULL;
}

static void* alloc64(size_t n) {
  size_t cap = (n + 63) / 64 * 64;
  if (cap == 0) cap = 64;
  void* p = aligned_alloc(64, cap);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  memset(p, 0xFF, cap);
  return p;
}

static void read_file(const char* path, void* dst, size_t n) {
  FILE* f = fopen(path, "rb");
  if (!f || fread(dst, 1, n, f) != n) {
    fprintf(stderr, "cannot read %zu bytes of %s\n", n, path);
    exit(2);
  }
  fclose(f);
}

static void write_file(const char* path, const void* src, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(src, 1, n, f) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  fclose(f);
}

enum { kIn, kInout, kOut, kAlias };

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: harness DIR\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/calls.txt", argv[1]);
  FILE* calls = fopen(path, "r");
  if (!calls) {
    fprintf(stderr, "cannot open %s\n", path);
    return 2;
  }
  int kernel, nth, nbuf;
  unsigned long long scratch_bytes;
  int ncalls = 0;
  while (fscanf(calls, " call %d %d %llu %d", &kernel, &nth, &scratch_bytes, &nbuf) == 4) {
    if (kernel < 0 || kernel >= kiln_num_kernels || nbuf < 0 || nbuf > 256 || nth < 1 || nth > 16) {
      fprintf(stderr, "bad call %d\n", ncalls);
      return 2;
    }
    void* bufs[256];
    int kind[256];
    char files[256][512];
    size_t sizes[256];
    for (int i = 0; i < nbuf; ++i) {
      char what[16];
      unsigned long long a = 0, b = 0;
      if (fscanf(calls, " %15s", what) != 1) return 2;
      if (strcmp(what, "alias") == 0) {
        if (fscanf(calls, " %llu %llu", &a, &b) != 2 || a >= (unsigned long long)i) return 2;
        kind[i] = kAlias;
        bufs[i] = (char*)bufs[a] + b;
        continue;
      }
      if (fscanf(calls, " %511s %llu", files[i], &a) != 2) return 2;
      sizes[i] = (size_t)a;
      kind[i] = strcmp(what, "in") == 0 ? kIn : strcmp(what, "inout") == 0 ? kInout : kOut;
      bufs[i] = alloc64(sizes[i]);
      if (kind[i] != kOut) read_file(files[i], bufs[i], sizes[i]);
    }
    size_t sb = scratch_bytes ? (size_t)scratch_bytes : 64;
    char* scratch = alloc64(sb * (size_t)nth);
    struct Barrier bar = {nth, 0, 0};
    struct Thread threads[16];
    pthread_t ids[16];
    for (int t = 0; t < nth; ++t) {
      threads[t].fn = kiln_kernels[kernel];
      struct KilnKernelArgs a = {bufs, scratch + (size_t)t * sb,      NULL, t,
                                 nth,  nth > 1 ? barrier_wait : NULL, &bar};
      threads[t].args = a;
    }
    for (int t = 1; t < nth; ++t) pthread_create(&ids[t], NULL, run_thread, &threads[t]);
    run_thread(&threads[0]);
    for (int t = 1; t < nth; ++t) pthread_join(ids[t], NULL);
    for (int i = 0; i < nbuf; ++i)
      if (kind[i] == kOut || kind[i] == kInout) write_file(files[i], bufs[i], sizes[i]);
    for (int i = 0; i < nbuf; ++i)
      if (kind[i] != kAlias) free(bufs[i]);
    free(scratch);
    ++ncalls;
  }
  printf("ran %d calls\n", ncalls);
  return 0;
}
