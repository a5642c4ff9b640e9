#include "frontends/gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "frontends/gguf/gguf_file.h"

namespace kiln::gguf {
namespace {

// Appends to a byte vector.
struct VecSink {
  std::vector<uint8_t>* out;
  uint64_t written = 0;
  void put(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out->insert(out->end(), b, b + n);
    written += n;
  }
};

// Streams to a FILE*, remembering the first error.
struct FileSink {
  FILE* f;
  uint64_t written = 0;
  bool failed = false;
  void put(const void* p, size_t n) {
    if (!failed && n && std::fwrite(p, 1, n, f) != n) failed = true;
    written += n;
  }
};

template <typename Sink, typename T>
void put_pod(Sink& s, T v) {
  s.put(&v, sizeof v);
}

template <typename Sink>
void put_string(Sink& s, const std::string& str) {
  put_pod<Sink, uint64_t>(s, str.size());
  s.put(str.data(), str.size());
}

template <typename Sink>
void put_scalar(Sink& s, Type t, const Value& v) {
  switch (t) {
    case Type::U8: put_pod(s, uint8_t(v.u)); break;
    case Type::I8: put_pod(s, int8_t(v.i)); break;
    case Type::U16: put_pod(s, uint16_t(v.u)); break;
    case Type::I16: put_pod(s, int16_t(v.i)); break;
    case Type::U32: put_pod(s, uint32_t(v.u)); break;
    case Type::I32: put_pod(s, int32_t(v.i)); break;
    case Type::U64: put_pod(s, uint64_t(v.u)); break;
    case Type::I64: put_pod(s, int64_t(v.i)); break;
    case Type::F32: put_pod(s, float(v.f)); break;
    case Type::F64: put_pod(s, double(v.f)); break;
    case Type::BOOL: put_pod(s, uint8_t(v.b ? 1 : 0)); break;
    case Type::STRING: put_string(s, v.s); break;
    case Type::ARRAY: break;
  }
}

template <typename Sink>
void put_value(Sink& s, const Value& v) {
  if (v.type != Type::ARRAY) return put_scalar(s, v.type, v);
  put_pod(s, uint32_t(v.elem));
  put_pod<Sink, uint64_t>(s, v.array_size());
  Value tmp;
  if (is_int_type(v.elem)) {
    for (int64_t x : v.ints) {
      tmp.i = x;
      tmp.u = uint64_t(x);
      put_scalar(s, v.elem, tmp);
    }
  } else if (is_float_type(v.elem)) {
    for (double x : v.floats) {
      tmp.f = x;
      put_scalar(s, v.elem, tmp);
    }
  } else if (v.elem == Type::BOOL) {
    for (uint8_t x : v.bools) put_pod(s, uint8_t(x ? 1 : 0));
  } else if (v.elem == Type::STRING) {
    for (const std::string& x : v.strings) put_string(s, x);
  } else {
    for (const Value& x : v.arrays) put_value(s, x);
  }
}

template <typename Sink>
void pad_to(Sink& s, uint64_t alignment) {
  static const uint8_t zeros[64] = {};
  while (s.written % alignment) {
    uint64_t n = std::min<uint64_t>(alignment - s.written % alignment, sizeof zeros);
    s.put(zeros, n);
  }
}

}  // namespace

Status GgufWriter::add_tensor(std::string name, DType type, std::vector<uint64_t> dims,
                              std::span<const uint8_t> data) {
  if (dims.empty() || dims.size() > kMaxDims)
    return make_error("gguf writer: tensor ", name, ": needs 1 to 4 dims");
  uint64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  auto rb = row_bytes(type, dims[0]);
  if (!rb) return make_error("gguf writer: tensor ", name, ": row of ", dims[0],
                             " is not a whole number of ", dtype_name(type), " blocks");
  if (*rb * rows != data.size())
    return make_error("gguf writer: tensor ", name, ": expected ", *rb * rows, " bytes, got ",
                      data.size());
  for (const Entry& e : tensors_)
    if (e.name == name) return make_error("gguf writer: duplicate tensor ", name);
  tensors_.push_back({std::move(name), type, std::move(dims), data});
  return Status::Ok();
}

Status GgufWriter::add_tensor_owned(std::string name, DType type, std::vector<uint64_t> dims,
                                    std::vector<uint8_t> data) {
  owned_.push_back(std::move(data));
  KILN_RETURN_IF_ERROR(add_tensor(std::move(name), type, std::move(dims), owned_.back()));
  tensors_.back().owned = owned_.size() - 1;
  return Status::Ok();
}

std::span<const uint8_t> GgufWriter::bytes_of(const Entry& e) const {
  return e.owned == SIZE_MAX ? e.data : std::span<const uint8_t>(owned_[e.owned]);
}

template <typename Sink>
void GgufWriter::emit(Sink& s) const {
  Metadata md = metadata_;
  if (alignment_ != kDefaultAlignment) md.set("general.alignment", Value::of_u32(alignment_));
  put_pod(s, kMagic);
  put_pod(s, uint32_t(3));
  put_pod<Sink, uint64_t>(s, tensors_.size());
  put_pod<Sink, uint64_t>(s, md.size());
  for (const auto& [key, v] : md.entries()) {
    put_string(s, key);
    put_pod(s, uint32_t(v.type));
    put_value(s, v);
  }
  uint64_t offset = 0;
  for (const Entry& e : tensors_) {
    put_string(s, e.name);
    put_pod(s, uint32_t(e.dims.size()));
    for (uint64_t d : e.dims) put_pod(s, d);
    put_pod(s, uint32_t(dtype_info(e.type).ggml_id));
    put_pod(s, offset);
    offset += (bytes_of(e).size() + alignment_ - 1) / alignment_ * alignment_;
  }
  pad_to(s, alignment_);
  for (const Entry& e : tensors_) {
    auto b = bytes_of(e);
    s.put(b.data(), b.size());
    pad_to(s, alignment_);
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  VecSink s{&out};
  emit(s);
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(tmp, ": cannot create: ", std::strerror(errno));
  FileSink s{f};
  emit(s);
  bool close_failed = std::fclose(f) != 0;
  if (s.failed || close_failed) {
    std::remove(tmp.c_str());
    return make_error(path, ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return make_error(path, ": cannot rename from ", tmp, ": ", std::strerror(e));
  }
  return Status::Ok();
}

}  // namespace kiln::gguf
