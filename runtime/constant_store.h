// Derived constants of a model's graphs (docs/ir.md): nodes whose operands are all weights or
// other derived constants, such as the `concat` of q/k/v weights that merge-parallel-matmuls
// builds. Each is evaluated once per model, by the reference interpreter, and shared by every
// graph that computes the same expression (decode and each prefill bucket): the key is the
// expression itself (ops, attributes, types and weight names), not a node of one graph.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "runtime/constant_key.h"
#include "runtime/host_memory.h"
#include "runtime/weights.h"

namespace kiln::runtime {

class ConstantStore {
 public:
  explicit ConstantStore(const WeightSource& weights) : weights_(weights) {}

  // The bytes of derived constant `v` (a result of a node whose operands are all constants),
  // evaluated on first use, for a kernel that reads them as stored: valid as long as the store
  // (release() aside), and never freed by release_unpinned().
  Result<const uint8_t*> get(const ir::Value& v);
  // The same bytes, only to be packed: valid until release_unpinned(v) or release().
  Result<const uint8_t*> peek(const ir::Value& v);
  // Frees the bytes of derived constant `v` unless get() handed them out (packed() has copied
  // them; the packed copy stays). A later get() or peek() evaluates the constant again.
  void release_unpinned(const ir::Value& v);

  // Weight `v` ([N, K], its bytes at `bytes`) in the CPU microkernels' packed layout
  // (mk::pack_weights), which kernels ask for in cpu::KernelInfo::packed_operands. Made on first
  // use and shared by every graph of the model. `bytes` may be null when has_packed(v).
  Result<const uint8_t*> packed(const ir::Value& v, const uint8_t* bytes);

  // Called with stored bytes of a weight as soon as they are copied: by packed() a piece at a
  // time while it packs (page-aligned pieces, in order), and by the evaluation of a derived
  // constant for each weight it reads. The backend gives back their pages at once, so the peak
  // resident size holds each weight about once, not as stored and copied.
  void on_weight_copied(std::function<void(std::span<const uint8_t>)> fn) {
    on_weight_copied_ = std::move(fn);
  }

  // Bytes made ahead of time (an artifact's `constants` section, docs/artifact.md) for the
  // constant or packed weight with this key (constant_key, plus "@mk-packed" for a packed copy):
  // get() and packed() return them as they are, with no evaluation, no repack and no copy. The
  // bytes must outlive the store and be 64-byte aligned.
  void add_mapped(std::string key, std::span<const uint8_t> bytes) {
    mapped_[std::move(key)] = bytes;
  }
  bool has_packed(const ir::Value& v) const;

  // The bytes held for `key` (evaluated, packed or mapped), for the artifact writer.
  Result<std::span<const uint8_t>> bytes_of(const std::string& key) const;

  // Frees the bytes of the constant with this key (constant_key), for one that kernels read only
  // packed: the packed copy stays, and a later get() evaluates the constant again.
  void release(const std::string& key) {
    by_key_.erase(key);
    pinned_.erase(key);
  }

  int64_t evaluations() const { return evaluations_; }
  int64_t packs() const { return packs_; }  // weights repacked (mk::pack_weights) so far
  int64_t mapped_uses() const { return mapped_uses_; }  // get()/packed() answered by add_mapped
  size_t bytes() const;
  // Names of the weights the constants evaluated so far were made from.
  const std::set<std::string>& source_weights() const { return sources_; }

 private:
  const WeightSource& weights_;
  struct Free {
    void operator()(uint8_t* p) const;
  };
  // 64-byte aligned, like every buffer kernels read. Large blobs are mappings of their own, so
  // that freeing one (the unpacked bytes of a constant read only packed) returns its memory at
  // once instead of leaving a hole in the heap under the packed copies that follow.
  struct Blob {
    std::unique_ptr<uint8_t, Free> data;  // small blobs
    Mapping map;                          // large blobs (data is then null)
    size_t size = 0;
    uint8_t* get() const { return map.data() ? map.data() : data.get(); }
  };
  static Status allocate(Blob& b, size_t size);
  std::map<std::string, Blob> by_key_;
  std::set<std::string> sources_;
  std::map<std::string, std::span<const uint8_t>> mapped_;
  int64_t evaluations_ = 0, packs_ = 0, mapped_uses_ = 0;
  std::set<std::string> pinned_;  // keys get() handed out
  std::function<void(std::span<const uint8_t>)> on_weight_copied_;
};

}  // namespace kiln::runtime
