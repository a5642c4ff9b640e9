// The value type of the template interpreter: what Python's jinja2 sees as None, bool, int,
// float, str, list, tuple and dict, plus jinja2's Undefined, its namespace() objects and
// callables (macros, builtins, bound methods). Lists and dicts are immutable once built and
// shared by reference, as in jinja2's ImmutableSandboxedEnvironment; only namespaces change.
// Dicts keep insertion order like Python's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kiln::jinja {

class Value;
struct Callable;  // defined by the interpreter (jinja_interp.h)

struct ListData {
  std::vector<Value> items;
  bool tuple = false;
  int depth = 1;  // nesting depth of containers: a list of scalars has depth 1
};

struct DictData {
  enum class Kind : uint8_t { kDict, kNamespace, kLoop };
  std::vector<std::pair<Value, Value>> entries;
  Kind kind = Kind::kDict;
  int depth = 1;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Replaces the value of an equal key in place, or appends.
  void set(Value key, Value value);
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kCallable
  };

  Value() = default;                              // undefined
  static Value undefined(std::string hint = {});  // hint: what was missing, for messages
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  // Later entries replace earlier ones with an equal key, keeping the first position.
  static Value dict(std::vector<std::pair<Value, Value>> entries);
  static Value object(std::vector<std::pair<std::string, Value>> entries);  // string keys
  static Value namespace_object(std::vector<std::pair<std::string, Value>> entries);
  static Value callable(std::shared_ptr<const Callable> fn);
  static Value from_dict_data(std::shared_ptr<DictData> d);

  Kind kind() const { return Kind(v_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is int
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }  // list or tuple
  bool is_tuple() const { return is_list() && std::get<kList>(v_)->tuple; }
  bool is_dict() const { return kind() == Kind::kDict; }  // dict, namespace or loop
  bool is_mapping() const { return is_dict() && dict_data().kind == DictData::Kind::kDict; }
  bool is_namespace() const;
  bool is_loop() const;
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<kBool>(v_); }
  int64_t as_int() const;   // int or bool
  double as_float() const;  // int, bool or float
  const std::string& as_string() const { return std::get<kString>(v_); }
  const std::vector<Value>& items() const { return std::get<kList>(v_)->items; }
  const DictData& dict_data() const { return *std::get<kDict>(v_); }
  DictData& mutable_dict_data() const { return *std::get<kDict>(v_); }
  const std::shared_ptr<DictData>& dict_ptr() const { return std::get<kDict>(v_); }
  const std::shared_ptr<const Callable>& callable_ptr() const { return std::get<kCallable>(v_); }
  const std::string& undefined_hint() const { return std::get<kUndefined>(v_).hint; }

  // Member lookup on a dict (string key); nullptr when absent or not a dict.
  const Value* get(std::string_view key) const;
  // Nesting depth of lists and dicts (0 for scalars; namespaces count as 1).
  int depth() const;
  // Python type name: "str", "int", "dict", "NoneType", ...
  std::string_view type_name() const;

 private:
  struct Undef {
    std::string hint;
  };
  struct NoneT {};
  // Variant indexes, in the order of Kind.
  enum : size_t { kUndefined = 0, kBool = 2, kString = 5, kList = 6, kDict = 7, kCallable = 8 };
  using Storage = std::variant<Undef, NoneT, bool, int64_t, double, std::string,
                               std::shared_ptr<const ListData>, std::shared_ptr<DictData>,
                               std::shared_ptr<const Callable>>;
  explicit Value(Storage v) : v_(std::move(v)) {}
  Storage v_;
};

}  // namespace kiln::jinja
