// The priority queue of candidate merges shared by both BPE flavours: smallest rank first, then
// leftmost position. A plain binary heap of a million candidates (one word of a megabyte of
// "aaaa...") spends its time in cache misses, so candidates go into one bucket per rank instead:
// a bucket fills in position order as merges sweep left to right and is then a simple FIFO,
// turning into a heap only when a candidate arrives out of order; a small heap holds the ranks
// whose buckets are not empty. Short words (the usual case) use a plain heap instead, which is
// cheaper when there are only a handful of candidates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace kiln::gguf {

struct MergeCandidate {
  int32_t pos;  // left symbol: the tie-break, leftmost first
  int32_t a, b;
};

class RankQueue {
 public:
  // Prepares for ranks in [0, num_ranks); cheap after the first call (only what the last use
  // touched is cleared).
  void reset(size_t num_ranks, size_t num_symbols) {
    small_ = num_symbols <= kSmall;
    small_heap_.clear();
    if (small_) return;
    for (int32_t r : touched_) bucket_of_rank_[r] = -1;
    touched_.clear();
    if (bucket_of_rank_.size() < num_ranks) bucket_of_rank_.resize(num_ranks, -1);
    for (size_t i = 0; i < used_buckets_; ++i) buckets_[i].clear();
    used_buckets_ = 0;
    active_.clear();
  }

  void push(int32_t rank, MergeCandidate c) {
    if (small_) {
      small_heap_.push_back({uint64_t(uint32_t(rank)) << 32 | uint32_t(c.pos), c});
      std::push_heap(small_heap_.begin(), small_heap_.end(), Keyed::later);
      return;
    }
    int32_t bi = bucket_of_rank_[rank];
    if (bi < 0) {
      if (used_buckets_ == buckets_.size()) buckets_.emplace_back();
      bi = int32_t(used_buckets_++);
      bucket_of_rank_[rank] = bi;
      touched_.push_back(rank);
    }
    Bucket& b = buckets_[bi];
    if (b.empty()) {
      b.clear();
      active_.push_back(rank);
      std::push_heap(active_.begin(), active_.end(), std::greater<>());
    }
    if (b.sorted && b.head < b.items.size() && c.pos < b.items.back().pos) {
      b.items.erase(b.items.begin(), b.items.begin() + std::ptrdiff_t(b.head));
      b.head = 0;
      b.sorted = false;
      std::make_heap(b.items.begin(), b.items.end(), later);
    }
    b.items.push_back(c);
    if (!b.sorted) std::push_heap(b.items.begin(), b.items.end(), later);
  }

  bool pop(int32_t* rank, MergeCandidate* c) {
    if (small_) {
      if (small_heap_.empty()) return false;
      std::pop_heap(small_heap_.begin(), small_heap_.end(), Keyed::later);
      *rank = int32_t(small_heap_.back().key >> 32);
      *c = small_heap_.back().c;
      small_heap_.pop_back();
      return true;
    }
    if (active_.empty()) return false;
    const int32_t r = active_.front();
    Bucket& b = buckets_[bucket_of_rank_[r]];
    if (b.sorted) {
      *c = b.items[b.head++];
    } else {
      std::pop_heap(b.items.begin(), b.items.end(), later);
      *c = b.items.back();
      b.items.pop_back();
    }
    if (b.empty()) {
      std::pop_heap(active_.begin(), active_.end(), std::greater<>());
      active_.pop_back();
    }
    *rank = r;
    return true;
  }

 private:
  static constexpr size_t kSmall = 48;
  struct Keyed {
    uint64_t key;  // rank << 32 | pos
    MergeCandidate c;
    static bool later(const Keyed& x, const Keyed& y) { return x.key > y.key; }
  };
  static bool later(const MergeCandidate& x, const MergeCandidate& y) { return x.pos > y.pos; }
  struct Bucket {
    std::vector<MergeCandidate> items;
    size_t head = 0;  // FIFO mode: items before head are consumed
    bool sorted = true;
    bool empty() const { return sorted ? head == items.size() : items.empty(); }
    void clear() {
      items.clear();
      head = 0;
      sorted = true;
    }
  };
  std::vector<int32_t> bucket_of_rank_;
  std::vector<int32_t> touched_;
  std::vector<Bucket> buckets_;
  size_t used_buckets_ = 0;
  std::vector<int32_t> active_;  // min-heap of ranks with a non-empty bucket
  bool small_ = false;
  std::vector<Keyed> small_heap_;
};

}  // namespace kiln::gguf
