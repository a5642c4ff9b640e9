#include "runtime/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln::runtime {

Result<Mapping> Mapping::create(size_t bytes, bool reserve_only) {
  Mapping m;
  if (bytes == 0) return m;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  bytes = (bytes + page - 1) / page * page;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (reserve_only ? MAP_NORESERVE : 0);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    return make_error("cannot map ", bytes, " bytes of memory: ", std::strerror(errno));
  m.data_ = static_cast<uint8_t*>(p);
  m.size_ = bytes;
  return m;
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, size_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Mapping::~Mapping() {
  if (data_) munmap(data_, size_);
}

void Mapping::discard(size_t offset, size_t bytes) {
  if (!data_ || offset >= size_) return;
  bytes = std::min(bytes, size_ - offset);
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  // Whole pages go back to the system; the partial pages at either end are zeroed by hand.
  size_t first = (offset + page - 1) / page * page, last = (offset + bytes) / page * page;
  if (first >= last) {
    std::memset(data_ + offset, 0, bytes);
    return;
  }
  std::memset(data_ + offset, 0, first - offset);
  madvise(data_ + first, last - first, MADV_DONTNEED);
  std::memset(data_ + last, 0, offset + bytes - last);
}

Result<uint8_t*> StateBuffers::get(const std::string& name, const ir::TensorType& type) {
  auto it = states_.find(name);
  if (it != states_.end()) {
    if (it->second.type != type)
      return make_error("state '", name, "': declared ", type.str(), " here but ",
                        it->second.type.str(), " by a graph that used it first");
    return it->second.memory.data();
  }
  auto bytes = type.bytes();
  if (!bytes) return make_error("state '", name, "': ", type.str(), " is not whole blocks");
  KILN_ASSIGN_OR_RETURN(Mapping m, Mapping::create(*bytes));
  uint8_t* p = m.data();
  states_.emplace(name, Entry{type, std::move(m)});
  return p;
}

void StateBuffers::reset() {
  for (auto& [name, e] : states_) e.memory.discard(0, e.memory.size());
}

size_t StateBuffers::bytes() const {
  size_t n = 0;
  for (const auto& [name, e] : states_) n += e.memory.size();
  return n;
}

}  // namespace kiln::runtime
