#include "runtime/thread_pool.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace kiln::runtime {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// std::atomic<uint32_t> is a plain 32-bit word on every platform we build for, so the kernel can
// wait on it.
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

void futex_wait(std::atomic<uint32_t>& word, uint32_t old) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr,
          0);
}

void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}

}  // namespace

int spin_iterations() {
  static const int n = [] {
    const char* env = std::getenv("KILN_SPIN");
    if (!env || !*env) return kSpinIterations;
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    return *end == 0 && v >= 0 && v <= (1L << 30) ? int(v) : kSpinIterations;
  }();
  return n;
}

void wait_while_equal(std::atomic<uint32_t>& word, uint32_t old, std::atomic<int>& sleepers) {
  const int spins = spin_iterations();
  for (int i = 0; i < spins; ++i) {
    if (word.load(std::memory_order_acquire) != old) return;
    cpu_relax();
  }
  // Announce the sleep before the last check: the waker bumps `word`, then reads `sleepers` (both
  // sequentially consistent), so either it sees us and wakes us, or we see its new value (or
  // futex_wait does, and returns at once).
  while (word.load(std::memory_order_acquire) == old) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (word.load(std::memory_order_seq_cst) == old) futex_wait(word, old);
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void wake_all(std::atomic<uint32_t>& word, const std::atomic<int>& sleepers) {
  if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake(word);
}

void Barrier::wait() {
  if (n_ <= 1) return;
  const uint32_t g = gen_.load(std::memory_order_acquire);
  if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    count_.store(0, std::memory_order_relaxed);
    gen_.fetch_add(1, std::memory_order_seq_cst);
    wake_all(gen_, sleepers_);
    return;
  }
  wait_while_equal(gen_, g, sleepers_);
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? int(n) : 1;
}

ThreadPool::ThreadPool(int n) : n_(n > 0 ? n : available_cores()), barrier_(n_) {
  threads_.reserve(size_t(n_ - 1));
  for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  start_gen_.fetch_add(1, std::memory_order_seq_cst);
  wake_all(start_gen_, start_sleepers_);
  for (auto& t : threads_) t.join();
}

void ThreadPool::run(WorkFn fn, void* ctx) {
  if (n_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  const uint32_t done = done_gen_.load(std::memory_order_acquire);
  start_gen_.fetch_add(1, std::memory_order_seq_cst);
  wake_all(start_gen_, start_sleepers_);
  fn(ctx, 0, n_);
  wait_while_equal(done_gen_, done, done_sleepers_);
}

void ThreadPool::worker(int ith) {
  uint32_t seen = 0;
  for (;;) {
    wait_while_equal(start_gen_, seen, start_sleepers_);
    seen = start_gen_.load(std::memory_order_acquire);
    if (stop_) return;
    fn_(ctx_, ith, n_);
    if (done_.fetch_add(1, std::memory_order_acq_rel) == n_ - 2) {
      done_.store(0, std::memory_order_relaxed);
      done_gen_.fetch_add(1, std::memory_order_seq_cst);
      wake_all(done_gen_, done_sleepers_);
    }
  }
}

}  // namespace kiln::runtime
