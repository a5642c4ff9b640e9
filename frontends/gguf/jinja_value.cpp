#include "frontends/gguf/jinja_value.h"

#include <algorithm>

#include "frontends/gguf/jinja_ops.h"

namespace kiln::jinja {

const Value* DictData::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : entries)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (key.is_string() ? (k.is_string() && k.as_string() == key.as_string()) : equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  if (kind == Kind::kDict) depth = std::max(depth, 1 + std::max(key.depth(), value.depth()));
  entries.emplace_back(std::move(key), std::move(value));
}

Value Value::undefined(std::string hint) {
  return Value(Storage(Undef{std::move(hint)}));
}
Value Value::none() {
  return Value(Storage(NoneT{}));
}
Value Value::boolean(bool b) {
  return Value(Storage(b));
}
Value Value::integer(int64_t i) {
  return Value(Storage(i));
}
Value Value::number(double d) {
  return Value(Storage(d));
}
Value Value::string(std::string s) {
  return Value(Storage(std::move(s)));
}

Value Value::list(std::vector<Value> items) {
  auto d = std::make_shared<ListData>();
  for (const Value& v : items) d->depth = std::max(d->depth, 1 + v.depth());
  d->items = std::move(items);
  return Value(Storage(std::shared_ptr<const ListData>(std::move(d))));
}

Value Value::tuple(std::vector<Value> items) {
  auto d = std::make_shared<ListData>();
  for (const Value& v : items) d->depth = std::max(d->depth, 1 + v.depth());
  d->items = std::move(items);
  d->tuple = true;
  return Value(Storage(std::shared_ptr<const ListData>(std::move(d))));
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
  auto d = std::make_shared<DictData>();
  d->entries.reserve(entries.size());
  for (auto& [k, v] : entries) d->set(std::move(k), std::move(v));
  return Value(Storage(std::move(d)));
}

Value Value::object(std::vector<std::pair<std::string, Value>> entries) {
  auto d = std::make_shared<DictData>();
  d->entries.reserve(entries.size());
  for (auto& [k, v] : entries) d->set(Value::string(std::move(k)), std::move(v));
  return Value(Storage(std::move(d)));
}

Value Value::namespace_object(std::vector<std::pair<std::string, Value>> entries) {
  auto d = std::make_shared<DictData>();
  d->kind = DictData::Kind::kNamespace;
  for (auto& [k, v] : entries) d->set(Value::string(std::move(k)), std::move(v));
  return Value(Storage(std::move(d)));
}

Value Value::callable(std::shared_ptr<const Callable> fn) {
  return Value(Storage(std::move(fn)));
}
Value Value::from_dict_data(std::shared_ptr<DictData> d) {
  return Value(Storage(std::move(d)));
}

bool Value::is_namespace() const {
  return is_dict() && dict_data().kind == DictData::Kind::kNamespace;
}
bool Value::is_loop() const {
  return is_dict() && dict_data().kind == DictData::Kind::kLoop;
}

int64_t Value::as_int() const {
  return is_bool() ? int64_t(as_bool()) : std::get<int64_t>(v_);
}

double Value::as_float() const {
  if (is_float()) return std::get<double>(v_);
  return double(as_int());
}

const Value* Value::get(std::string_view key) const {
  return is_dict() ? dict_data().find(key) : nullptr;
}

int Value::depth() const {
  if (is_list()) return std::get<kList>(v_)->depth;
  if (is_dict()) return dict_data().kind == DictData::Kind::kDict ? dict_data().depth : 1;
  return 0;
}

std::string_view Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return is_tuple() ? "tuple" : "list";
    case Kind::kDict:
      return is_namespace() ? "Namespace" : is_loop() ? "LoopContext" : "dict";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

}  // namespace kiln::jinja
