// Writes a GGUF v3 file from metadata and tensors. Tensor bytes are referenced, not copied, until
// the write, or produced row by row while the file is written (add_tensor_rows), so a model that
// is generated on the fly never sits in memory whole. The file is written to a temporary name and
// renamed, so a failed write never leaves a half-written model behind.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::gguf {

class GgufWriter {
 public:
  // Writes rows [first_row, first_row + n_rows) of a tensor into `out` (n_rows whole rows in the
  // tensor's type). Called in row order, a few MiB at a time, while the file is written.
  using RowFill =
      std::function<Status(uint64_t first_row, uint64_t n_rows, std::span<uint8_t> out)>;

  // Metadata written as is, in insertion order, except general.alignment (see set_alignment).
  Metadata& metadata() { return metadata_; }
  const Metadata& metadata() const { return metadata_; }

  // dims in ggml order (dims[0] contiguous). `data` must stay alive until write() returns.
  Status add_tensor(std::string name, DType type, std::vector<uint64_t> dims,
                    std::span<const uint8_t> data);
  // Like add_tensor but the writer keeps the bytes.
  Status add_tensor_owned(std::string name, DType type, std::vector<uint64_t> dims,
                          std::vector<uint8_t> data);
  // A tensor whose bytes `fill` produces during the write.
  Status add_tensor_rows(std::string name, DType type, std::vector<uint64_t> dims, RowFill fill);

  // Alignment of the tensor data (a power of two; checked by write). The file's
  // general.alignment always states it: the key is added when the alignment is not the default 32,
  // and a general.alignment set in metadata() is written as this value.
  void set_alignment(uint32_t a) { alignment_ = a; }
  size_t tensor_count() const { return tensors_.size(); }

  Status write(const std::string& path) const;
  // The whole file in memory (tests, fuzz seeds).
  Status to_bytes(std::vector<uint8_t>* out) const;
  // Same, for writers whose tensors cannot fail (no RowFill): empty on error.
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<uint64_t> dims;
    uint64_t bytes = 0;
    std::span<const uint8_t> data;
    size_t owned = SIZE_MAX;  // index into owned_ when the writer holds the bytes
    RowFill fill;             // set for add_tensor_rows
  };
  Result<uint64_t> check_tensor(const std::string& name, DType type,
                                const std::vector<uint64_t>& dims) const;
  template <typename Sink>
  Status emit(Sink& sink) const;
  template <typename Sink>
  Status emit_data(Sink& sink, const Entry& e) const;

  Metadata metadata_;
  std::vector<Entry> tensors_;
  std::unordered_set<std::string> names_;
  std::vector<std::vector<uint8_t>> owned_;
  uint32_t alignment_ = 32;
};

}  // namespace kiln::gguf
