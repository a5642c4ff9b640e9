// Where the bytes of `weight` nodes come from. A graph names its weights (GGUF tensor names) and
// declares their types; a WeightSource hands out the bytes of each, checked against that type,
// without copying them.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "ir/status.h"
#include "ir/tensor_type.h"

namespace kiln::gguf {
class GgufFile;
}

namespace kiln::runtime {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The bytes of weight `name`, which the graph declares as `want`. An error names the weight
  // and both types when the stored tensor differs. The bytes live as long as the source.
  virtual Result<std::span<const uint8_t>> get(const std::string& name,
                                               const ir::TensorType& want) const = 0;
};

// Weights of a GGUF file, by tensor name. A tensor with ggml dims [ne0, ne1, ...] has IR shape
// [..., ne1, ne0]; leading 1s of the IR shape are ignored in the comparison (a bias may be
// declared f32[1, n] or f32[n]). The dtype must equal the GGUF tensor's: the interpreter never
// converts a weight behind the graph's back. The file must outlive this object.
class GgufWeights : public WeightSource {
 public:
  explicit GgufWeights(const gguf::GgufFile& file) : file_(file) {}
  Result<std::span<const uint8_t>> get(const std::string& name,
                                       const ir::TensorType& want) const override;

 private:
  const gguf::GgufFile& file_;
};

// Weights held in memory, for tests and for constants made at run time.
class MemoryWeights : public WeightSource {
 public:
  // Takes the bytes (type.bytes() of them).
  Status add(const std::string& name, ir::TensorType type, std::vector<uint8_t> bytes);
  // f32 values, or values converted by the reference quantizer when `dtype` is not f32
  // (shape's last dim must then be a whole number of blocks).
  Status add_f32(const std::string& name, DType dtype, ir::Shape shape,
                 std::span<const float> values);
  Result<std::span<const uint8_t>> get(const std::string& name,
                                       const ir::TensorType& want) const override;

 private:
  struct Entry {
    ir::TensorType type;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace kiln::runtime
