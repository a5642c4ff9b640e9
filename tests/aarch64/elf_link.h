// A minimal run-time linker for the relocatable AArch64 ELF objects of kiln::cpu::emit_object,
// for the artifact harness (artifact_harness.cpp) under qemu-user: it maps the object's
// allocated sections into fresh memory, resolves symbols (the object's own, and a few external
// ones against functions of this program), applies the relocations and makes the code
// executable. Only what kiln's LLVM output can contain is supported; any other relocation type,
// a symbol that cannot be resolved or a malformed object is an error naming it, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "ir/status.h"

namespace kiln::a64 {

class LinkedObject {
 public:
  LinkedObject() = default;
  LinkedObject(const LinkedObject&) = delete;
  LinkedObject& operator=(const LinkedObject&) = delete;
  LinkedObject(LinkedObject&& o) noexcept { *this = std::move(o); }
  LinkedObject& operator=(LinkedObject&& o) noexcept;
  ~LinkedObject();

  // The address of a global function or object defined by the object.
  Result<void*> symbol(const std::string& name) const;
  // Relocations applied, by type name ("R_AARCH64_ADR_PREL_PG_HI21" → count).
  const std::map<std::string, int>& relocations() const { return relocations_; }

 private:
  friend Result<LinkedObject> link_object(std::span<const uint8_t>,
                                          const std::map<std::string, void*>&);
  void* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, void*> globals_;
  std::map<std::string, int> relocations_;
};

// Links `object` (an ELF64 little-endian AArch64 relocatable file) into this process. `externals`
// resolves undefined symbols (memcpy, ...); calls to them go through stubs in the mapped memory,
// since the program's own code may be more than ±128 MiB away from it.
Result<LinkedObject> link_object(std::span<const uint8_t> object,
                                 const std::map<std::string, void*>& externals);

}  // namespace kiln::a64
