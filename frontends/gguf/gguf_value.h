// GGUF metadata values and typed access with errors that name the key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ir/status.h"

namespace kiln::gguf {

// The GGUF metadata value types, with their on-disk ids.
enum class Type : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
constexpr uint32_t kNumTypes = 13;

std::string_view type_name(Type t);  // "u32", "string", "array"
bool is_int_type(Type t);
bool is_signed_type(Type t);
bool is_float_type(Type t);

// One metadata value. Scalars live in the scalar slots; an array holds its elements in the one
// vector that matches its element type (ints keep signed and unsigned values as 64-bit bits).
struct Value {
  Type type = Type::U32;
  Type elem = Type::U8;  // element type when type == ARRAY

  uint64_t u = 0;  // unsigned integers
  int64_t i = 0;   // signed integers
  double f = 0;    // f32 and f64
  bool b = false;
  std::string s;

  std::vector<int64_t> ints;  // array of any integer type (u64 stored as its bits)
  std::vector<double> floats;
  std::vector<uint8_t> bools;
  std::vector<std::string> strings;
  std::vector<Value> arrays;  // array of arrays

  size_t array_size() const;
  std::string describe() const;  // "u32", "array of string"

  static Value of_u32(uint32_t v);
  static Value of_i32(int32_t v);
  static Value of_u64(uint64_t v);
  static Value of_i64(int64_t v);
  static Value of_f32(float v);
  static Value of_f64(double v);
  static Value of_bool(bool v);
  static Value of_string(std::string v);
  static Value of_strings(std::vector<std::string> v);
  static Value of_ints(Type elem, std::vector<int64_t> v);
  static Value of_floats(std::vector<float> v);
  static Value of_arrays(std::vector<Value> v);  // array of arrays
};

// Ordered key/value metadata (file order is kept so a rewrite is stable).
class Metadata {
 public:
  void set(std::string key, Value v);
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  void erase(std::string_view key);
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  Result<std::string> get_string(std::string_view key) const;
  Result<uint64_t> get_uint(std::string_view key) const;  // any non-negative integer
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;  // f32, f64 or an integer
  Result<bool> get_bool(std::string_view key) const;
  Result<const std::vector<std::string>*> get_string_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;

  // Like the getters, but an absent key gives the fallback (a present key of the wrong type is
  // still an error).
  Result<uint64_t> get_uint_or(std::string_view key, uint64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;
  Result<bool> get_bool_or(std::string_view key, bool fallback) const;
  Result<std::string> get_string_or(std::string_view key, std::string fallback) const;

 private:
  Result<const Value*> require(std::string_view key) const;
  std::vector<std::pair<std::string, Value>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace kiln::gguf
