// The GGUF parser. Reads little-endian fields through a cursor that checks every read against
// the end of the file; every error carries the byte offset and the name of the field that was
// wrong ("at byte 24: value of llama.block_count: unexpected end of file").
//
// Memory is bounded by the file: a count is checked against the bytes left before anything is
// reserved for it, so metadata never costs more than 8 bytes of memory per byte of file (an
// array of u8 is held as int64). Arrays of arrays are the one exception to that ratio (an empty
// inner array is 12 bytes on disk but a whole Value in memory), so their number is capped; real
// files never nest arrays at all.
#include <algorithm>
#include <cstring>

#include "frontends/gguf/gguf_file.h"

namespace kiln::gguf {
namespace {

// Nested arrays deeper than this are rejected.
constexpr int kMaxArrayDepth = 4;
// At most this many arrays inside arrays in one file (about 13 MiB of Values).
constexpr uint64_t kMaxNestedArrays = 1 << 16;

class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return b_.size() - pos_; }
  uint64_t nested_arrays = 0;  // arrays read as elements of other arrays so far

  // The next `bytes` bytes (the caller has checked that they are there).
  const uint8_t* take(uint64_t bytes) {
    const uint8_t* p = b_.data() + pos_;
    pos_ += bytes;
    return p;
  }

  template <typename T>
  Status read(T* out, std::string_view field) {
    if (left() < sizeof(T))
      return make_error("at byte ", pos_, ": ", field, ": unexpected end of file");
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status read_string(std::string* out, std::string_view field) {
    uint64_t start = pos_;
    uint64_t len = 0;
    KILN_RETURN_IF_ERROR(read(&len, field));
    if (len > left())
      return make_error("at byte ", start, ": ", field, ": string length ", len,
                        " runs past the end of the file (", left(), " bytes left)");
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), size_t(len));
    pos_ += len;
    return Status::Ok();
  }

 private:
  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one value of type t, used to bound counts before allocating.
uint64_t min_encoded_size(Type t) {
  switch (t) {
    case Type::U8:
    case Type::I8:
    case Type::BOOL:
      return 1;
    case Type::U16:
    case Type::I16:
      return 2;
    case Type::U32:
    case Type::I32:
    case Type::F32:
      return 4;
    case Type::U64:
    case Type::I64:
    case Type::F64:
    case Type::STRING:  // the length
      return 8;
    case Type::ARRAY:  // element type + count
      return 12;
  }
  return 1;
}

Status read_type(Cursor& c, Type* t, std::string_view field) {
  uint64_t at = c.pos();
  uint32_t raw = 0;
  KILN_RETURN_IF_ERROR(c.read(&raw, field));
  if (raw >= kNumTypes)
    return make_error("at byte ", at, ": ", field, ": unknown value type ", raw);
  *t = Type(raw);
  return Status::Ok();
}

Status read_scalar(Cursor& c, Type t, Value* v, std::string_view field) {
  switch (t) {
    case Type::U8: {
      uint8_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->u = x;
      return Status::Ok();
    }
    case Type::I8: {
      int8_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->i = x;
      return Status::Ok();
    }
    case Type::U16: {
      uint16_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->u = x;
      return Status::Ok();
    }
    case Type::I16: {
      int16_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->i = x;
      return Status::Ok();
    }
    case Type::U32: {
      uint32_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->u = x;
      return Status::Ok();
    }
    case Type::I32: {
      int32_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->i = x;
      return Status::Ok();
    }
    case Type::U64:
      return c.read(&v->u, field);
    case Type::I64:
      return c.read(&v->i, field);
    case Type::F32: {
      float x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      v->f = x;
      return Status::Ok();
    }
    case Type::F64:
      return c.read(&v->f, field);
    case Type::BOOL: {
      uint64_t at = c.pos();
      uint8_t x = 0;
      KILN_RETURN_IF_ERROR(c.read(&x, field));
      if (x > 1) return make_error("at byte ", at, ": ", field, ": bool value ", int(x));
      v->b = x != 0;
      return Status::Ok();
    }
    case Type::STRING:
      return c.read_string(&v->s, field);
    case Type::ARRAY:
      break;
  }
  return make_error("at byte ", c.pos(), ": ", field, ": unexpected array");
}

Status read_value(Cursor& c, Type t, Value* v, std::string_view field, int depth) {
  v->type = t;
  if (t != Type::ARRAY) return read_scalar(c, t, v, field);
  uint64_t start = c.pos();
  if (depth >= kMaxArrayDepth)
    return make_error("at byte ", start, ": ", field, ": arrays nested more than ", kMaxArrayDepth,
                      " deep");
  KILN_RETURN_IF_ERROR(read_type(c, &v->elem, field));
  uint64_t at = c.pos();
  uint64_t n = 0;
  KILN_RETURN_IF_ERROR(c.read(&n, field));
  if (n > c.left() / min_encoded_size(v->elem))
    return make_error("at byte ", at, ": ", field, ": array count ", n,
                      " exceeds what the rest of the file can hold (", c.left(), " bytes)");
  if (v->elem == Type::ARRAY) {
    if (n > kMaxNestedArrays - c.nested_arrays)
      return make_error("at byte ", at, ": ", field, ": more than ", kMaxNestedArrays,
                        " arrays inside arrays");
    c.nested_arrays += n;
    v->arrays.resize(size_t(n));
    for (Value& inner : v->arrays)
      KILN_RETURN_IF_ERROR(read_value(c, Type::ARRAY, &inner, field, depth + 1));
    return Status::Ok();
  }
  if (v->elem == Type::STRING) {
    v->strings.resize(size_t(n));
    for (std::string& s : v->strings) KILN_RETURN_IF_ERROR(c.read_string(&s, field));
    return Status::Ok();
  }
  // The tokenizer's arrays (token types, scores: a 262k vocabulary) in one pass, without a
  // Value per element. The count check above guarantees the bytes are there.
  auto bulk = [&](auto tag, auto& out) {
    using T = decltype(tag);
    const uint8_t* p = c.take(n * sizeof(T));
    out.resize(size_t(n));
    for (size_t k = 0; k < size_t(n); ++k) {
      T x;
      std::memcpy(&x, p + k * sizeof(T), sizeof(T));
      out[k] = x;
    }
    return Status::Ok();
  };
  if (v->elem == Type::I32) return bulk(int32_t{}, v->ints);
  if (v->elem == Type::U32) return bulk(uint32_t{}, v->ints);
  if (v->elem == Type::F32) return bulk(float{}, v->floats);
  if (is_int_type(v->elem))
    v->ints.reserve(size_t(n));
  else if (is_float_type(v->elem))
    v->floats.reserve(size_t(n));
  else
    v->bools.reserve(size_t(n));
  Value tmp;
  for (uint64_t k = 0; k < n; ++k) {
    KILN_RETURN_IF_ERROR(read_scalar(c, v->elem, &tmp, field));
    if (is_int_type(v->elem))
      v->ints.push_back(is_signed_type(v->elem) ? tmp.i : int64_t(tmp.u));
    else if (is_float_type(v->elem))
      v->floats.push_back(tmp.f);
    else
      v->bools.push_back(tmp.b ? 1 : 0);
  }
  return Status::Ok();
}

}  // namespace

uint64_t TensorInfo::elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->bytes_ = map->bytes();
  f->map_ = std::move(map);
  f->name_ = path;
  Status st = f->parse_all();
  if (!st.ok()) return st.error().wrap(path);
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes,
                                                  std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->bytes_ = bytes;
  f->name_ = std::move(name);
  Status st = f->parse_all();
  if (!st.ok()) return st.error().wrap(f->name_);
  return f;
}

Status GgufFile::parse_all() {
  Cursor c(bytes_);
  uint32_t magic = 0;
  KILN_RETURN_IF_ERROR(c.read(&magic, "magic"));
  if (magic != kMagic) return make_error("at byte 0: magic: not a GGUF file (bad magic)");
  KILN_RETURN_IF_ERROR(c.read(&version_, "version"));
  if (version_ == 1)
    return make_error("at byte 4: version: GGUF v1 is not supported (need 2 or 3)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && version_ != 0)
      return make_error("at byte 4: version: ", version_,
                        " looks like a big-endian file, which is not supported");
    return make_error("at byte 4: version: unsupported GGUF version ", version_, " (need 2 or 3)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  KILN_RETURN_IF_ERROR(c.read(&n_tensors, "tensor count"));
  KILN_RETURN_IF_ERROR(c.read(&n_kv, "metadata count"));
  // A tensor info takes at least 8 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset)
  // bytes, a key/value at least 8 (key) + 4 (type) + 1 (value).
  if (n_tensors > c.left() / 32)
    return make_error("at byte 8: tensor count: ", n_tensors, " exceeds what the file can hold");
  if (n_kv > c.left() / 13)
    return make_error("at byte 16: metadata count: ", n_kv, " exceeds what the file can hold");

  uint64_t alignment_pos = 0;
  for (uint64_t k = 0; k < n_kv; ++k) {
    uint64_t at = c.pos();
    std::string key;
    KILN_RETURN_IF_ERROR(c.read_string(&key, "metadata key"));
    if (metadata_.has(key))
      return make_error("at byte ", at, ": metadata key '", key, "': duplicate key");
    std::string field = "value of " + key;
    Type t;
    KILN_RETURN_IF_ERROR(read_type(c, &t, field));
    if (key == "general.alignment") alignment_pos = c.pos();
    Value v;
    KILN_RETURN_IF_ERROR(read_value(c, t, &v, field, 0));
    metadata_.set(std::move(key), std::move(v));
  }

  // The data section's alignment: a u32 power of two (ggml rejects any other type too).
  if (const Value* a = metadata_.find("general.alignment")) {
    if (a->type != Type::U32)
      return make_error("at byte ", alignment_pos, ": general.alignment: expected u32, found ",
                        a->describe());
    if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20))
      return make_error("at byte ", alignment_pos, ": general.alignment: ", a->u,
                        " is not a power of two up to 1 MiB");
    alignment_ = uint32_t(a->u);
  }

  tensors_.reserve(size_t(n_tensors));
  std::vector<uint64_t> offset_pos;  // where each tensor's offset field is, for messages
  offset_pos.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo t;
    t.info_pos = c.pos();
    KILN_RETURN_IF_ERROR(c.read_string(&t.name, "tensor name"));
    if (tensor_index_.count(t.name))
      return make_error("at byte ", t.info_pos, ": tensor name '", t.name, "': duplicate name");
    std::string field = "tensor '" + t.name + "'";
    uint64_t at = c.pos();
    uint32_t n_dims = 0;
    KILN_RETURN_IF_ERROR(c.read(&n_dims, field + " n_dims"));
    if (n_dims == 0 || n_dims > kMaxDims)
      return make_error("at byte ", at, ": ", field, " n_dims: ", n_dims, " not in 1..", kMaxDims);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      at = c.pos();
      uint64_t dim = 0;
      KILN_RETURN_IF_ERROR(c.read(&dim, field + " dims"));
      if (dim == 0) return make_error("at byte ", at, ": ", field, " dims: dimension ", d, " is 0");
      if (dim > (uint64_t(1) << 62) / elems)
        return make_error("at byte ", at, ": ", field, " dims: element count overflows 2^62");
      elems *= dim;
      t.dims.push_back(dim);
    }
    at = c.pos();
    uint32_t raw_type = 0;
    KILN_RETURN_IF_ERROR(c.read(&raw_type, field + " type"));
    auto dt = dtype_from_ggml(raw_type);
    if (!dt)
      return make_error("at byte ", at, ": ", field, " type: unknown tensor type ", raw_type);
    t.type = *dt;
    uint32_t blk = dtype_info(t.type).block_elems;
    if (t.dims[0] % blk != 0)
      return make_error("at byte ", at, ": ", field, " type: row length ", t.dims[0],
                        " is not a multiple of the ", dtype_name(t.type), " block size ", blk);
    auto rb = row_bytes(t.type, t.dims[0]);
    uint64_t rows = elems / t.dims[0];
    if (!rb || *rb > UINT64_MAX / rows)
      return make_error("at byte ", at, ": ", field, " type: byte size overflows");
    t.bytes = *rb * rows;
    at = c.pos();
    KILN_RETURN_IF_ERROR(c.read(&t.offset, field + " offset"));
    if (t.offset % alignment_ != 0)
      return make_error("at byte ", at, ": ", field, " offset: ", t.offset,
                        " is not a multiple of the alignment ", alignment_);
    offset_pos.push_back(at);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  uint64_t end_of_infos = c.pos();
  data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors > 0 && data_offset_ > bytes_.size())
    return make_error("at byte ", end_of_infos, ": data section: starts at byte ", data_offset_,
                      ", past the end of the file (", bytes_.size(), " bytes)");
  uint64_t data_size = bytes_.size() > data_offset_ ? bytes_.size() - data_offset_ : 0;

  for (size_t k = 0; k < tensors_.size(); ++k) {
    const TensorInfo& t = tensors_[k];
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      return make_error("at byte ", offset_pos[k], ": tensor '", t.name, "' offset: data [",
                        t.offset, ", +", t.bytes,
                        ") runs past the end of the file (data section is ", data_size, " bytes)");
  }
  // Tensors must not overlap: sort by offset and compare neighbours.
  std::vector<size_t> by_offset(tensors_.size());
  for (size_t k = 0; k < by_offset.size(); ++k) by_offset[k] = k;
  std::sort(by_offset.begin(), by_offset.end(), [&](size_t a, size_t b) {
    return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset
                                                    : a < b;
  });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const TensorInfo& a = tensors_[by_offset[k - 1]];
    const TensorInfo& b = tensors_[by_offset[k]];
    if (a.offset + a.bytes > b.offset)
      return make_error("at byte ", offset_pos[by_offset[k]], ": tensor '", b.name,
                        "' offset: data [", b.offset, ", +", b.bytes, ") overlaps tensor '", a.name,
                        "' [", a.offset, ", +", a.bytes, ")");
  }
  return Status::Ok();
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<const TensorInfo*> GgufFile::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) return make_error(name_, ": missing tensor ", name);
  return t;
}

std::string GgufFile::architecture() const {
  auto r = metadata_.get_string("general.architecture");
  return r.ok() ? *r : std::string();
}

}  // namespace kiln::gguf
