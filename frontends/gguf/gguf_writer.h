// Writes a GGUF v3 file from metadata and tensors. Tensor bytes are referenced, not copied, until
// the write; the file is written to a temporary name and renamed, so a failed write never leaves
// a half-written model behind.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::gguf {

class GgufWriter {
 public:
  Metadata& metadata() { return metadata_; }
  // dims in ggml order (dims[0] contiguous). `data` must stay alive until write() returns.
  Status add_tensor(std::string name, DType type, std::vector<uint64_t> dims,
                    std::span<const uint8_t> data);
  // Like add_tensor but the writer keeps the bytes.
  Status add_tensor_owned(std::string name, DType type, std::vector<uint64_t> dims,
                          std::vector<uint8_t> data);
  void set_alignment(uint32_t a) { alignment_ = a; }
  Status write(const std::string& path) const;
  // The whole file in memory (tests, fuzz seeds).
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<uint64_t> dims;
    std::span<const uint8_t> data;
    size_t owned = SIZE_MAX;  // index into owned_ when the writer holds the bytes
  };
  std::span<const uint8_t> bytes_of(const Entry& e) const;
  template <typename Sink>
  void emit(Sink& sink) const;

  Metadata metadata_;
  std::vector<Entry> tensors_;
  std::vector<std::vector<uint8_t>> owned_;
  uint32_t alignment_ = 32;
};

}  // namespace kiln::gguf
