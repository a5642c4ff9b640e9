#include "frontends/gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "frontends/gguf/gguf_file.h"

namespace kiln::gguf {
namespace {

// A generated tensor is produced in chunks of about this many bytes (at least one row).
constexpr uint64_t kChunkBytes = 8u << 20;

// Appends to a byte vector.
struct VecSink {
  std::vector<uint8_t>* out;
  uint64_t written = 0;
  bool failed = false;
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
    case Type::U8:
      put_pod(s, uint8_t(v.u));
      break;
    case Type::I8:
      put_pod(s, int8_t(v.i));
      break;
    case Type::U16:
      put_pod(s, uint16_t(v.u));
      break;
    case Type::I16:
      put_pod(s, int16_t(v.i));
      break;
    case Type::U32:
      put_pod(s, uint32_t(v.u));
      break;
    case Type::I32:
      put_pod(s, int32_t(v.i));
      break;
    case Type::U64:
      put_pod(s, uint64_t(v.u));
      break;
    case Type::I64:
      put_pod(s, int64_t(v.i));
      break;
    case Type::F32:
      put_pod(s, float(v.f));
      break;
    case Type::F64:
      put_pod(s, double(v.f));
      break;
    case Type::BOOL:
      put_pod(s, uint8_t(v.b ? 1 : 0));
      break;
    case Type::STRING:
      put_string(s, v.s);
      break;
    case Type::ARRAY:
      break;
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

uint64_t round_up(uint64_t n, uint64_t a) {
  return (n + a - 1) / a * a;
}

}  // namespace

Result<uint64_t> GgufWriter::check_tensor(const std::string& name, DType type,
                                          const std::vector<uint64_t>& dims) const {
  if (dims.empty() || dims.size() > kMaxDims)
    return make_error("gguf writer: tensor ", name, ": needs 1 to ", kMaxDims, " dims, got ",
                      dims.size());
  uint64_t rows = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) return make_error("gguf writer: tensor ", name, ": dimension ", i, " is 0");
    if (i > 0) {
      if (dims[i] > UINT64_MAX / rows)
        return make_error("gguf writer: tensor ", name, ": size overflows");
      rows *= dims[i];
    }
  }
  auto rb = row_bytes(type, dims[0]);
  if (!rb)
    return make_error("gguf writer: tensor ", name, ": row of ", dims[0],
                      " is not a whole number of ", dtype_name(type), " blocks");
  if (*rb > UINT64_MAX / rows) return make_error("gguf writer: tensor ", name, ": size overflows");
  if (names_.count(name)) return make_error("gguf writer: duplicate tensor ", name);
  return *rb * rows;
}

Status GgufWriter::add_tensor(std::string name, DType type, std::vector<uint64_t> dims,
                              std::span<const uint8_t> data) {
  KILN_ASSIGN_OR_RETURN(uint64_t bytes, check_tensor(name, type, dims));
  if (bytes != data.size())
    return make_error("gguf writer: tensor ", name, ": expected ", bytes, " bytes, got ",
                      data.size());
  names_.insert(name);
  tensors_.push_back({std::move(name), type, std::move(dims), bytes, data, SIZE_MAX, nullptr});
  return Status::Ok();
}

Status GgufWriter::add_tensor_owned(std::string name, DType type, std::vector<uint64_t> dims,
                                    std::vector<uint8_t> data) {
  KILN_ASSIGN_OR_RETURN(uint64_t bytes, check_tensor(name, type, dims));
  if (bytes != data.size())
    return make_error("gguf writer: tensor ", name, ": expected ", bytes, " bytes, got ",
                      data.size());
  names_.insert(name);
  owned_.push_back(std::move(data));
  tensors_.push_back(
      {std::move(name), type, std::move(dims), bytes, {}, owned_.size() - 1, nullptr});
  return Status::Ok();
}

Status GgufWriter::add_tensor_rows(std::string name, DType type, std::vector<uint64_t> dims,
                                   RowFill fill) {
  KILN_ASSIGN_OR_RETURN(uint64_t bytes, check_tensor(name, type, dims));
  if (!fill) return make_error("gguf writer: tensor ", name, ": no fill function");
  names_.insert(name);
  tensors_.push_back(
      {std::move(name), type, std::move(dims), bytes, {}, SIZE_MAX, std::move(fill)});
  return Status::Ok();
}

template <typename Sink>
Status GgufWriter::emit_data(Sink& s, const Entry& e) const {
  if (!e.fill) {
    if (e.owned != SIZE_MAX)
      s.put(owned_[e.owned].data(), owned_[e.owned].size());
    else
      s.put(e.data.data(), e.data.size());
    return Status::Ok();
  }
  uint64_t row = *row_bytes(e.type, e.dims[0]);
  uint64_t rows = e.bytes / row;
  uint64_t chunk_rows = std::max<uint64_t>(1, kChunkBytes / row);
  std::vector<uint8_t> buf(size_t(std::min(rows, chunk_rows) * row));
  for (uint64_t r = 0; r < rows && !s.failed; r += chunk_rows) {
    uint64_t n = std::min(chunk_rows, rows - r);
    std::span<uint8_t> out(buf.data(), size_t(n * row));
    Status st = e.fill(r, n, out);
    if (!st.ok()) return st.error().wrap("tensor " + e.name);
    s.put(out.data(), out.size());
  }
  return Status::Ok();
}

template <typename Sink>
Status GgufWriter::emit(Sink& s) const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > (1u << 20))
    return make_error("gguf writer: alignment ", alignment_, " is not a power of two up to 1 MiB");
  // general.alignment always states the alignment used: a value the caller set is replaced, and
  // the key is added when the alignment is not the default.
  bool has_alignment = metadata_.has("general.alignment");
  bool add_alignment = alignment_ != kDefaultAlignment && !has_alignment;
  put_pod(s, kMagic);
  put_pod(s, uint32_t(3));
  put_pod<Sink, uint64_t>(s, tensors_.size());
  put_pod<Sink, uint64_t>(s, metadata_.size() + (add_alignment ? 1 : 0));
  for (const auto& [key, v] : metadata_.entries()) {
    put_string(s, key);
    if (key == "general.alignment") {
      put_pod(s, uint32_t(Type::U32));
      put_pod(s, alignment_);
      continue;
    }
    put_pod(s, uint32_t(v.type));
    put_value(s, v);
  }
  if (add_alignment) {
    put_string(s, std::string("general.alignment"));
    put_pod(s, uint32_t(Type::U32));
    put_pod(s, alignment_);
  }
  uint64_t offset = 0;
  for (const Entry& e : tensors_) {
    put_string(s, e.name);
    put_pod(s, uint32_t(e.dims.size()));
    for (uint64_t d : e.dims) put_pod(s, d);
    put_pod(s, uint32_t(dtype_info(e.type).ggml_id));
    put_pod(s, offset);
    offset += round_up(e.bytes, alignment_);
  }
  pad_to(s, alignment_);
  for (const Entry& e : tensors_) {
    KILN_RETURN_IF_ERROR(emit_data(s, e));
    pad_to(s, alignment_);
  }
  return Status::Ok();
}

Status GgufWriter::to_bytes(std::vector<uint8_t>* out) const {
  out->clear();
  VecSink s{out};
  Status st = emit(s);
  if (!st.ok()) out->clear();
  return st;
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  (void)to_bytes(&out);
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(tmp, ": cannot create: ", std::strerror(errno));
  FileSink s{f};
  Status st = emit(s);
  bool close_failed = std::fclose(f) != 0;
  if (!st.ok() || s.failed || close_failed) {
    std::remove(tmp.c_str());
    if (!st.ok()) return st.error().wrap(path);
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
