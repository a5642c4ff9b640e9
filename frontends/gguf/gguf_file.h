// A parsed GGUF file (v2 or v3): metadata, tensor infos, and the mmapped tensor data.
// Every count, length, offset and size is checked against the file before use, so a hostile
// file gives an Error naming the field and its byte offset, never a crash or a huge allocation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "frontends/gguf/mapped_file.h"
#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the contiguous (fastest) dimension
  DType type = DType::F32;
  uint64_t offset = 0;  // relative to the start of the data section
  uint64_t bytes = 0;
  uint64_t info_pos = 0;  // byte offset of this tensor's info record (for messages)

  uint64_t elements() const;
  uint64_t rows() const { return dims.empty() ? 0 : elements() / dims[0]; }
  std::string shape_string() const;  // "[576, 49152]"
};

class GgufFile {
 public:
  // Maps and parses a file. The tensor data is not read until used.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses bytes owned by the caller (which must outlive the GgufFile): for tests and fuzzing.
  static Result<std::unique_ptr<GgufFile>> parse(std::span<const uint8_t> bytes,
                                                 std::string name = "<memory>");

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const uint8_t> bytes() const { return bytes_; }

  const Metadata& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  Result<const TensorInfo*> tensor(std::string_view name) const;  // error names the tensor
  const uint8_t* data(const TensorInfo& t) const { return bytes_.data() + data_offset_ + t.offset; }
  std::span<const uint8_t> span(const TensorInfo& t) const { return {data(t), t.bytes}; }

  // general.architecture, or "" when absent.
  std::string architecture() const;

 private:
  GgufFile() = default;
  Status parse_all();

  std::unique_ptr<MappedFile> map_;
  std::span<const uint8_t> bytes_;
  std::string name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace kiln::gguf
