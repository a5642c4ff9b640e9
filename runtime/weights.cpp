#include "runtime/weights.h"

#include "frontends/gguf/gguf_file.h"
#include "runtime/buffer.h"

namespace kiln::runtime {
namespace {

ir::Shape strip_leading_ones(ir::Shape s) {
  size_t i = 0;
  while (i + 1 < s.size() && s[i] == 1) ++i;
  return ir::Shape(s.begin() + std::ptrdiff_t(i), s.end());
}

}  // namespace

Result<std::span<const uint8_t>> GgufWeights::get(const std::string& name,
                                                  const ir::TensorType& want) const {
  const gguf::TensorInfo* t = file_.find_tensor(name);
  if (!t) return make_error("weight '", name, "': no such tensor in ", file_.path());
  ir::Shape shape;
  for (auto it = t->dims.rbegin(); it != t->dims.rend(); ++it) shape.push_back(int64_t(*it));
  ir::TensorType have{t->type, shape};
  if (have.dtype != want.dtype || strip_leading_ones(have.shape) != strip_leading_ones(want.shape))
    return make_error("weight '", name, "': the graph declares ", want.str(), " but ", file_.path(),
                      " holds ", have.str(), " (ggml dims ", t->shape_string(), ")");
  auto bytes = want.bytes();
  if (!bytes || *bytes != t->bytes)
    return make_error("weight '", name, "': ", t->bytes, " bytes in the file, ", want.str(),
                      " needs ", bytes.value_or(0));
  return file_.span(*t);
}

Status MemoryWeights::add(const std::string& name, ir::TensorType type,
                          std::vector<uint8_t> bytes) {
  auto need = type.bytes();
  if (!need || *need != bytes.size())
    return make_error("weight '", name, "': ", bytes.size(), " bytes given, ", type.str(),
                      " needs ", need.value_or(0));
  entries_[name] = Entry{std::move(type), std::move(bytes)};
  return Status::Ok();
}

Status MemoryWeights::add_f32(const std::string& name, DType dtype, ir::Shape shape,
                              std::span<const float> values) {
  ir::TensorType type{dtype, std::move(shape)};
  if (int64_t(values.size()) != type.numel())
    return make_error("weight '", name, "': ", values.size(), " values given for ", type.str());
  auto need = type.bytes();
  if (!need) return make_error("weight '", name, "': ", type.str(), " is not whole blocks");
  std::vector<uint8_t> bytes(*need);
  Status st = from_f32(dtype, values.data(), bytes.data(), values.size());
  if (!st.ok()) return st.error().wrap("weight '" + name + "'");
  return add(name, std::move(type), std::move(bytes));
}

Result<std::span<const uint8_t>> MemoryWeights::get(const std::string& name,
                                                    const ir::TensorType& want) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return make_error("weight '", name, "': not in the memory weights");
  if (it->second.type != want)
    return make_error("weight '", name, "': the graph declares ", want.str(), " but memory holds ",
                      it->second.type.str());
  return std::span<const uint8_t>(it->second.bytes);
}

}  // namespace kiln::runtime
