// A bounded cache from a word's bytes to its token ids, shared by the threads that encode with
// one tokenizer. Open addressing over flat arrays (no allocation per entry); when it fills up it
// starts over, which keeps it simple and is cheap because common words come right back.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::gguf {

class WordCache {
 public:
  static constexpr size_t kMaxKey = 64;

  // Appends the ids cached for key to out; false when absent.
  bool find(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (slots_.empty()) return false;
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return false;
      if (s.hash == hash && s.key_len == key.size() &&
          std::string_view(keys_).substr(s.key_off, s.key_len) == key) {
        out.insert(out.end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.ids_len);
        return true;
      }
    }
  }

  void insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t n) {
    if (key.empty() || key.size() > kMaxKey || n > 0xFFFF) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (slots_.empty()) slots_.assign(kSlots, Slot{});
    if (used_ * 2 >= kSlots) {  // full: start over
      slots_.assign(kSlots, Slot{});
      keys_.clear();
      ids_.clear();
      used_ = 0;
    }
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key_len == 0) {
        s = Slot{hash, uint32_t(keys_.size()), uint32_t(ids_.size()), uint16_t(key.size()),
                 uint16_t(n)};
        keys_.append(key);
        ids_.insert(ids_.end(), ids, ids + n);
        ++used_;
        return;
      }
      if (s.hash == hash && std::string_view(keys_).substr(s.key_off, s.key_len) == key) return;
    }
  }

 private:
  static constexpr size_t kSlots = 1 << 16;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, ids_off = 0;
    uint16_t key_len = 0, ids_len = 0;  // key_len 0: empty slot
  };
  mutable std::mutex mu_;
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t used_ = 0;
};

}  // namespace kiln::gguf
