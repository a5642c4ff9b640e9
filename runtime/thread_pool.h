// The executor's threads: a fixed pool whose calling thread is thread 0, and the barrier that
// separates kernels. Both spin briefly (a kernel of a decode step takes microseconds, so a
// sleeping thread would cost more than the kernel) and then sleep on a futex, so an idle pool or
// an oversubscribed machine does not burn a core.
//
//   ThreadPool pool(4);
//   pool.run(&work, ctx);   // work(ctx, ith, nth) on every thread; returns when all are done
//
// run() allocates nothing, so it may sit in the token loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace kiln::runtime {

// A sense-reversing barrier for a fixed number of threads: spin, then futex wait.
class Barrier {
 public:
  explicit Barrier(int n = 1) : n_(n) {}
  void reset(int n) { n_ = n; }
  int size() const { return n_; }
  void wait();
  // The kernel ABI's barrier callback (KilnKernelArgs::barrier); ctx is the Barrier.
  static void wait_fn(void* ctx) { static_cast<Barrier*>(ctx)->wait(); }

 private:
  int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<uint32_t> gen_{0};
  std::atomic<int> sleepers_{0};
};

// Spins on `word` until it differs from `old`, then sleeps on it (futex) until woken.
void wait_while_equal(std::atomic<uint32_t>& word, uint32_t old, std::atomic<int>& sleepers);
// Wakes every thread sleeping in wait_while_equal on `word` (cheap when none sleeps).
void wake_all(std::atomic<uint32_t>& word, const std::atomic<int>& sleepers);

// Iterations of the spin before sleeping; each is one `pause` (40-140 cycles: 4096 are
// ~0.1-0.3 ms, longer than the gap between two decode kernels, so a decode step rarely sleeps).
// SmolLM2 decode on 2 threads, `KILN_SPIN=N kiln bench -p 16 -n 64 -t 2 -r 3`, idle 2-core
// machine: 0 spins 124 tok/s, 256 125, 1024 360, 2048 406, 4096 406, 8192 404, 16384 384. When
// threads outnumber free cores, long spins lose (the waiter burns the slice the thread it waits
// for needs): on the same machine under a load of ~12, 4096 gave 22 tok/s and 256 gave 39
// (docs/benchmarks.md). $KILN_SPIN overrides it (0: sleep at once).
inline constexpr int kSpinIterations = 4096;
int spin_iterations();

// Hardware threads this process may run on (sched_getaffinity), at least 1.
int available_cores();

class ThreadPool {
 public:
  using WorkFn = void (*)(void* ctx, int ith, int nth);
  // n threads in all, the caller included (n <= 0: available_cores()).
  explicit ThreadPool(int n = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  // Calls fn(ctx, ith, n) on every thread (the caller is ith 0) and waits for all.
  void run(WorkFn fn, void* ctx);
  // A barrier over the pool's threads, for use inside fn.
  Barrier& barrier() { return barrier_; }

 private:
  void worker(int ith);

  int n_;
  std::vector<std::thread> threads_;
  Barrier barrier_;
  WorkFn fn_ = nullptr;
  void* ctx_ = nullptr;
  bool stop_ = false;
  alignas(64) std::atomic<uint32_t> start_gen_{0};
  std::atomic<int> start_sleepers_{0};
  alignas(64) std::atomic<int> done_{0};
  std::atomic<uint32_t> done_gen_{0};
  std::atomic<int> done_sleepers_{0};
};

}  // namespace kiln::runtime
