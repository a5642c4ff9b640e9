// Memory the CPU executor owns outside the C++ heap: page-aligned anonymous mappings whose pages
// cost nothing until touched, so a KV cache sized for the whole context, or an arena reserved for
// the largest graph a model may ever run, is resident only as far as it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ir/status.h"
#include "ir/tensor_type.h"

namespace kiln::runtime {

// An anonymous private mapping, zero-filled and populated lazily by the kernel.
class Mapping {
 public:
  // `bytes` of address space; reserve_only: MAP_NORESERVE (for reservations far larger than what
  // will be touched).
  static Result<Mapping> create(size_t bytes, bool reserve_only = false);
  Mapping() = default;
  Mapping(Mapping&& o) noexcept { *this = std::move(o); }
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Gives the pages of [offset, offset + bytes) back: they read as zeros again.
  void discard(size_t offset, size_t bytes);

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// The persistent buffers of a model's graphs (`state` nodes: the KV cache), by name. Every graph
// of a model (decode and each prefill bucket) binds the same buffer for `cache_k.L`; the type must
// agree. Allocated once, zeroed, never moved.
class StateBuffers {
 public:
  // The buffer of state `name`, created on first use.
  Result<uint8_t*> get(const std::string& name, const ir::TensorType& type);
  // Zeroes every buffer (the pages are given back to the system).
  void reset();
  size_t bytes() const;  // address space reserved for all of them
  size_t size() const { return states_.size(); }

 private:
  struct Entry {
    ir::TensorType type;
    Mapping memory;
  };
  std::map<std::string, Entry> states_;
};

}  // namespace kiln::runtime
