// JSON (nlohmann) to Jinja values, for the places that take conversations and test cases as JSON
// files: `kiln template` and the template tests. Header-only so the library itself does not
// depend on nlohmann-json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "frontends/gguf/jinja_value.h"

namespace kiln::jinja {

// ordered_json keeps key order, which the tojson filter's output depends on.
inline Value from_json(const nlohmann::ordered_json& j) {
  using Json = nlohmann::ordered_json;
  switch (j.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case Json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      return u > uint64_t(INT64_MAX) ? Value::number(double(u)) : Value::integer(int64_t(u));
    }
    case Json::value_t::number_float:
      return Value::number(j.get<double>());
    case Json::value_t::string:
      return Value::string(j.get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const Json& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<std::string, Value>> entries;
      for (auto it = j.begin(); it != j.end(); ++it) entries.emplace_back(it.key(), from_json(*it));
      return Value::object(std::move(entries));
    }
    default:
      return Value();
  }
}

}  // namespace kiln::jinja
