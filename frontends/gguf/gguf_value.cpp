#include "frontends/gguf/gguf_value.h"

#include <limits>

namespace kiln::gguf {

std::string_view type_name(Type t) {
  switch (t) {
    case Type::U8:
      return "u8";
    case Type::I8:
      return "i8";
    case Type::U16:
      return "u16";
    case Type::I16:
      return "i16";
    case Type::U32:
      return "u32";
    case Type::I32:
      return "i32";
    case Type::F32:
      return "f32";
    case Type::BOOL:
      return "bool";
    case Type::STRING:
      return "string";
    case Type::ARRAY:
      return "array";
    case Type::U64:
      return "u64";
    case Type::I64:
      return "i64";
    case Type::F64:
      return "f64";
  }
  return "unknown";
}

bool is_int_type(Type t) {
  switch (t) {
    case Type::U8:
    case Type::I8:
    case Type::U16:
    case Type::I16:
    case Type::U32:
    case Type::I32:
    case Type::U64:
    case Type::I64:
      return true;
    default:
      return false;
  }
}
bool is_signed_type(Type t) {
  return t == Type::I8 || t == Type::I16 || t == Type::I32 || t == Type::I64;
}
bool is_float_type(Type t) {
  return t == Type::F32 || t == Type::F64;
}

size_t Value::array_size() const {
  if (type != Type::ARRAY) return 0;
  if (is_int_type(elem)) return ints.size();
  if (is_float_type(elem)) return floats.size();
  if (elem == Type::BOOL) return bools.size();
  if (elem == Type::STRING) return strings.size();
  return arrays.size();
}

std::string Value::describe() const {
  if (type != Type::ARRAY) return std::string(type_name(type));
  return "array of " + std::string(type_name(elem));
}

Value Value::of_u32(uint32_t v) {
  Value x;
  x.type = Type::U32;
  x.u = v;
  return x;
}
Value Value::of_i32(int32_t v) {
  Value x;
  x.type = Type::I32;
  x.i = v;
  return x;
}
Value Value::of_u64(uint64_t v) {
  Value x;
  x.type = Type::U64;
  x.u = v;
  return x;
}
Value Value::of_i64(int64_t v) {
  Value x;
  x.type = Type::I64;
  x.i = v;
  return x;
}
Value Value::of_f32(float v) {
  Value x;
  x.type = Type::F32;
  x.f = v;
  return x;
}
Value Value::of_f64(double v) {
  Value x;
  x.type = Type::F64;
  x.f = v;
  return x;
}
Value Value::of_bool(bool v) {
  Value x;
  x.type = Type::BOOL;
  x.b = v;
  return x;
}
Value Value::of_string(std::string v) {
  Value x;
  x.type = Type::STRING;
  x.s = std::move(v);
  return x;
}
Value Value::of_strings(std::vector<std::string> v) {
  Value x;
  x.type = Type::ARRAY;
  x.elem = Type::STRING;
  x.strings = std::move(v);
  return x;
}
Value Value::of_ints(Type elem, std::vector<int64_t> v) {
  Value x;
  x.type = Type::ARRAY;
  x.elem = elem;
  x.ints = std::move(v);
  return x;
}
Value Value::of_floats(std::vector<float> v) {
  Value x;
  x.type = Type::ARRAY;
  x.elem = Type::F32;
  x.floats.assign(v.begin(), v.end());
  return x;
}
Value Value::of_arrays(std::vector<Value> v) {
  Value x;
  x.type = Type::ARRAY;
  x.elem = Type::ARRAY;
  x.arrays = std::move(v);
  return x;
}

void Metadata::set(std::string key, Value v) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(v);
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(v));
}

const Value* Metadata::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void Metadata::erase(std::string_view key) {
  auto it = index_.find(std::string(key));
  if (it == index_.end()) return;
  entries_.erase(entries_.begin() + long(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
}

Result<const Value*> Metadata::require(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return make_error("missing key ", key);
  return v;
}

static Error wrong_type(std::string_view key, std::string_view want, const Value& v) {
  return make_error("key ", key, ": expected ", want, ", found ", v.describe());
}

Result<std::string> Metadata::get_string(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (v->type != Type::STRING) return wrong_type(key, "string", *v);
  return v->s;
}

Result<uint64_t> Metadata::get_uint(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (!is_int_type(v->type)) return wrong_type(key, "integer", *v);
  if (is_signed_type(v->type)) {
    if (v->i < 0) return make_error("key ", key, ": expected a non-negative integer, found ", v->i);
    return uint64_t(v->i);
  }
  return v->u;
}

Result<int64_t> Metadata::get_int(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (!is_int_type(v->type)) return wrong_type(key, "integer", *v);
  if (is_signed_type(v->type)) return v->i;
  if (v->u > uint64_t(std::numeric_limits<int64_t>::max()))
    return make_error("key ", key, ": value ", v->u, " does not fit in i64");
  return int64_t(v->u);
}

Result<double> Metadata::get_float(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (is_float_type(v->type)) return v->f;
  if (is_int_type(v->type)) return is_signed_type(v->type) ? double(v->i) : double(v->u);
  return wrong_type(key, "number", *v);
}

Result<bool> Metadata::get_bool(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (v->type != Type::BOOL) return wrong_type(key, "bool", *v);
  return v->b;
}

Result<const std::vector<std::string>*> Metadata::get_string_array(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (v->type != Type::ARRAY || v->elem != Type::STRING)
    return wrong_type(key, "array of string", *v);
  return &v->strings;
}

Result<std::vector<int64_t>> Metadata::get_int_array(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (v->type != Type::ARRAY || !is_int_type(v->elem))
    return wrong_type(key, "array of integer", *v);
  return v->ints;
}

Result<std::vector<float>> Metadata::get_float_array(std::string_view key) const {
  KILN_ASSIGN_OR_RETURN(const Value* v, require(key));
  if (v->type != Type::ARRAY || !is_float_type(v->elem)) return wrong_type(key, "array of f32", *v);
  return std::vector<float>(v->floats.begin(), v->floats.end());
}

Result<uint64_t> Metadata::get_uint_or(std::string_view key, uint64_t fallback) const {
  return has(key) ? get_uint(key) : Result<uint64_t>(fallback);
}
Result<double> Metadata::get_float_or(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : Result<double>(fallback);
}
Result<bool> Metadata::get_bool_or(std::string_view key, bool fallback) const {
  return has(key) ? get_bool(key) : Result<bool>(fallback);
}
Result<std::string> Metadata::get_string_or(std::string_view key, std::string fallback) const {
  return has(key) ? get_string(key) : Result<std::string>(std::move(fallback));
}

}  // namespace kiln::gguf
