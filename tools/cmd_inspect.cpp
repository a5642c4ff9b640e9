// `kiln inspect FILE.gguf [--json]`: what a model file holds: architecture, hyperparameters,
// tokenizer summary, other metadata, a table of tensors and totals. A file the reader rejects
// gives the reader's message (naming the field and byte offset) on stderr and exit status 1.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "frontends/gguf/gguf_file.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

using gguf::Type;
using gguf::Value;

// Control characters spelled out, so a token or a string value never breaks the layout.
std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else
      out += char(c);
  }
  return out;
}

// A short rendering of a metadata value; long arrays are summarized.
std::string show(const Value& v) {
  char buf[64];
  switch (v.type) {
    case Type::STRING:
      return v.s.size() > 60 ? "\"" + escape(v.s.substr(0, 57)) + "...\" (" +
                                   std::to_string(v.s.size()) + " bytes)"
                             : "\"" + escape(v.s) + "\"";
    case Type::BOOL:
      return v.b ? "true" : "false";
    case Type::F32:
    case Type::F64:
      std::snprintf(buf, sizeof buf, "%g", v.f);
      return buf;
    case Type::ARRAY: {
      if (v.array_size() > 8) return v.describe() + "[" + std::to_string(v.array_size()) + "]";
      std::string s = "[";
      for (size_t i = 0; i < v.array_size(); ++i) {
        if (i) s += ", ";
        if (gguf::is_int_type(v.elem))
          s += std::to_string(v.ints[i]);
        else if (gguf::is_float_type(v.elem)) {
          std::snprintf(buf, sizeof buf, "%g", v.floats[i]);
          s += buf;
        } else if (v.elem == Type::STRING)
          s += "\"" + escape(v.strings[i]) + "\"";
        else if (v.elem == Type::BOOL)
          s += v.bools[i] ? "true" : "false";
        else
          s += "[...]";
      }
      return s + "]";
    }
    default:
      return gguf::is_signed_type(v.type) ? std::to_string(v.i) : std::to_string(v.u);
  }
}

nlohmann::json to_json(const Value& v) {
  switch (v.type) {
    case Type::STRING:
      return v.s;
    case Type::BOOL:
      return v.b;
    case Type::F32:
    case Type::F64:
      return v.f;
    case Type::ARRAY: {
      if (v.array_size() > 64)
        return nlohmann::json{{"type", v.describe()}, {"length", v.array_size()}};
      nlohmann::json a = nlohmann::json::array();
      for (size_t i = 0; i < v.array_size(); ++i) {
        if (gguf::is_int_type(v.elem))
          a.push_back(v.ints[i]);
        else if (gguf::is_float_type(v.elem))
          a.push_back(v.floats[i]);
        else if (v.elem == Type::STRING)
          a.push_back(v.strings[i]);
        else if (v.elem == Type::BOOL)
          a.push_back(bool(v.bools[i]));
        else
          a.push_back(to_json(v.arrays[i]));
      }
      return a;
    }
    default:
      return gguf::is_signed_type(v.type) ? nlohmann::json(v.i) : nlohmann::json(v.u);
  }
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / (1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(b) / (1ull << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.2f KiB", double(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%llu B", (unsigned long long)b);
  return buf;
}

std::string human_count(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull)
    std::snprintf(buf, sizeof buf, "%.2f B", double(n) / 1e9);
  else if (n >= 1000000ull)
    std::snprintf(buf, sizeof buf, "%.1f M", double(n) / 1e6);
  else if (n >= 1000ull)
    std::snprintf(buf, sizeof buf, "%.1f K", double(n) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%llu", (unsigned long long)n);
  return buf;
}

// Tokenizer summary: model, pre-tokenizer, vocab and merges sizes, special tokens.
std::vector<std::pair<std::string, std::string>> tokenizer_summary(const gguf::Metadata& md) {
  std::vector<std::pair<std::string, std::string>> rows;
  auto str = [&](const char* k) {
    auto r = md.get_string(k);
    return r.ok() ? *r : std::string();
  };
  const std::vector<std::string>* tokens = nullptr;
  if (auto t = md.get_string_array("tokenizer.ggml.tokens"); t.ok()) tokens = *t;
  rows.push_back({"model", str("tokenizer.ggml.model")});
  if (md.has("tokenizer.ggml.pre")) rows.push_back({"pre", str("tokenizer.ggml.pre")});
  rows.push_back({"vocab", std::to_string(tokens ? tokens->size() : 0) + " tokens"});
  if (const Value* m = md.find("tokenizer.ggml.merges"))
    rows.push_back({"merges", std::to_string(m->array_size())});
  if (auto types = md.get_int_array("tokenizer.ggml.token_type"); types.ok()) {
    // Token types as llama.cpp numbers them (llama_token_type).
    static const char* const kNames[] = {"undefined",    "normal", "unknown", "control",
                                         "user-defined", "unused", "byte"};
    std::map<int64_t, uint64_t> counts;
    for (int64_t t : *types) counts[t]++;
    std::string s;
    for (const auto& [t, n] : counts) {
      std::string name = t >= 0 && t < 7 ? kNames[t] : "type " + std::to_string(t);
      s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + name;
    }
    rows.push_back({"token types", s});
  }
  for (const char* name : {"bos", "eos", "eot", "eom", "unknown", "padding", "separator"}) {
    std::string key = std::string("tokenizer.ggml.") + name + "_token_id";
    auto id = md.get_uint(key);
    if (!id.ok()) continue;
    std::string text = tokens && *id < tokens->size() ? " '" + escape((*tokens)[*id]) + "'" : "";
    rows.push_back({std::string(name) + " id", std::to_string(*id) + text});
  }
  for (const char* name : {"add_bos_token", "add_eos_token", "add_space_prefix"}) {
    std::string key = std::string("tokenizer.ggml.") + name;
    if (const Value* v = md.find(key)) rows.push_back({name, show(*v)});
  }
  if (const Value* t = md.find("tokenizer.chat_template"))
    rows.push_back({"chat template", std::to_string(t->s.size()) + " bytes"});
  return rows;
}

bool is_big_tokenizer_array(const std::string& key) {
  return key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.scores" ||
         key == "tokenizer.ggml.token_type" || key == "tokenizer.ggml.merges" ||
         key == "tokenizer.chat_template";
}

}  // namespace

// Issue 6: a .kiln artifact (tools/inspect_artifact.cpp).
bool is_artifact_path(const std::string& path);
int inspect_artifact(const std::string& path, bool json);

namespace {

int run_inspect(const std::string& path, bool json) {
  if (is_artifact_path(path)) return inspect_artifact(path, json);
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) return fail("inspect", file.message());
  const gguf::GgufFile& f = **file;
  const gguf::Metadata& md = f.metadata();
  std::string arch = f.architecture();

  uint64_t params = 0, bytes = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // count, bytes
  for (const auto& t : f.tensors()) {
    params += t.elements();
    bytes += t.bytes;
    auto& e = by_type[std::string(dtype_name(t.type))];
    e.first++;
    e.second += t.bytes;
  }

  if (json) {
    nlohmann::json j;
    j["file"] = path;
    j["gguf_version"] = f.version();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    j["file_bytes"] = f.file_size();
    j["architecture"] = arch;
    nlohmann::json hp = nlohmann::json::object();
    for (const auto& [k, v] : md.entries())
      if (!arch.empty() && k.rfind(arch + ".", 0) == 0) hp[k.substr(arch.size() + 1)] = to_json(v);
    j["hyperparameters"] = hp;
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [k, v] : md.entries())
      if (!is_big_tokenizer_array(k)) meta[k] = to_json(v);
    j["metadata"] = meta;
    nlohmann::json tok = nlohmann::json::object();
    for (const auto& [k, v] : tokenizer_summary(md)) tok[k] = v;
    j["tokenizer"] = tok;
    nlohmann::json ts = nlohmann::json::array();
    for (const auto& t : f.tensors())
      ts.push_back({{"name", t.name},
                    {"type", dtype_name(t.type)},
                    {"shape", t.dims},
                    {"offset", f.data_offset() + t.offset},
                    {"bytes", t.bytes}});
    j["tensors"] = ts;
    nlohmann::json types = nlohmann::json::object();
    for (const auto& [type, e] : by_type) types[type] = {{"tensors", e.first}, {"bytes", e.second}};
    j["totals"] = {{"tensors", f.tensors().size()},
                   {"parameters", params},
                   {"bytes", bytes},
                   {"bits_per_weight", params ? 8.0 * double(bytes) / double(params) : 0.0},
                   {"by_type", types}};
    // Metadata strings need not be UTF-8: replace bad bytes rather than throw.
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }

  std::printf("file          %s (%s)\n", path.c_str(), human_bytes(f.file_size()).c_str());
  std::printf("format        GGUF v%u, %zu metadata keys, %zu tensors, alignment %u\n", f.version(),
              md.size(), f.tensors().size(), f.alignment());
  std::printf("architecture  %s\n", arch.empty() ? "(none)" : escape(arch).c_str());
  if (auto name = md.get_string("general.name"); name.ok())
    std::printf("name          %s\n", escape(*name).c_str());

  std::printf("\nhyperparameters\n");
  for (const auto& [k, v] : md.entries())
    if (!arch.empty() && k.rfind(arch + ".", 0) == 0)
      std::printf("  %-40s %s\n", escape(k.substr(arch.size() + 1)).c_str(), show(v).c_str());

  std::printf("\ntokenizer\n");
  for (const auto& [k, v] : tokenizer_summary(md))
    std::printf("  %-40s %s\n", k.c_str(), v.c_str());

  std::printf("\nother metadata\n");
  for (const auto& [k, v] : md.entries()) {
    if ((!arch.empty() && k.rfind(arch + ".", 0) == 0) || k.rfind("tokenizer.", 0) == 0) continue;
    std::printf("  %-40s %s\n", escape(k).c_str(), show(v).c_str());
  }

  std::printf("\ntensors\n  %-36s %-7s %-22s %12s\n", "name", "type", "shape", "bytes");
  for (const auto& t : f.tensors())
    std::printf("  %-36s %-7s %-22s %12llu\n", escape(t.name).c_str(),
                std::string(dtype_name(t.type)).c_str(), t.shape_string().c_str(),
                (unsigned long long)t.bytes);

  std::printf(
      "\ntotals        %zu tensors, %llu parameters (%s), %s of weights, %.2f bits/weight\n",
      f.tensors().size(), (unsigned long long)params, human_count(params).c_str(),
      human_bytes(bytes).c_str(), params ? 8.0 * double(bytes) / double(params) : 0.0);
  for (const auto& [type, e] : by_type)
    std::printf("  %-7s %4llu tensors  %s\n", type.c_str(), (unsigned long long)e.first,
                human_bytes(e.second).c_str());
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    inspect, Command{"inspect", "Show a GGUF model's metadata, tokenizer and tensors", 10,
                     [](CLI::App& app) -> std::function<int()> {
                       auto path = std::make_shared<std::string>();
                       auto json = std::make_shared<bool>(false);
                       app.add_option("model", *path, "GGUF file (or .kiln artifact)")->required();
                       app.add_flag("--json", *json, "Print JSON instead of text");
                       return [=] { return run_inspect(*path, *json); };
                     }});

}  // namespace kiln::tools
