#include "ir/printer.h"

#include <unordered_map>

namespace kiln::ir {
namespace {

class Printer {
 public:
  std::string graph(const Graph& g, int indent) {
    std::string out = std::string(size_t(indent), ' ') + "graph " + g.name() + " {\n";
    body(g, indent + 2, out);
    out += std::string(size_t(indent), ' ') + "}\n";
    return out;
  }

  void body(const Graph& g, int indent, std::string& out) {
    for (const auto& n : g.nodes()) {
      out += std::string(size_t(indent), ' ') + line(*n);
      if (n->body) {
        out += " {\n";
        body(*n->body, indent + 2, out);
        out += std::string(size_t(indent), ' ') + "}";
      }
      out += "\n";
    }
  }

  std::string line(const Node& n) {
    std::string s;
    for (size_t i = 0; i < n.results.size(); ++i) s += (i ? ", " : "") + name(n.results[i]);
    if (!n.results.empty()) s += " = ";
    s += n.info().name;
    for (size_t i = 0; i < n.operands.size(); ++i) s += (i ? ", " : " ") + name(n.operands[i]);
    if (!n.attrs.list().empty()) {
      s += " {";
      for (size_t i = 0; i < n.attrs.list().size(); ++i) {
        const Attr& a = n.attrs.list()[i];
        s += (i ? ", " : "") + a.name + "=" + attr_value_str(a.value);
      }
      s += "}";
    }
    if (!n.results.empty()) {
      s += " :";
      for (size_t i = 0; i < n.results.size(); ++i)
        s += (i ? ", " : " ") + n.results[i]->type.str();
    }
    return s;
  }

  std::string name(const Value* v) {
    if (!v->name.empty()) return "%" + v->name;
    auto it = numbers_.find(v);
    if (it == numbers_.end()) it = numbers_.emplace(v, next_++).first;
    return "%" + std::to_string(it->second);
  }

 private:
  std::unordered_map<const Value*, int> numbers_;
  int next_ = 0;
};

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      o += ' ';
    else
      o += c;
  }
  return o;
}

}  // namespace

std::string print(const Graph& g) {
  return Printer().graph(g, 0);
}

std::string print_node(const Node& n) {
  return Printer().line(n);
}

std::string print_dot(const Graph& g) {
  Printer p;
  std::string out = "digraph \"" + g.name() + "\" {\n  node [shape=box, fontname=monospace];\n";
  std::unordered_map<const Node*, int> ids;
  int k = 0;
  for (const auto& n : g.nodes()) ids[n.get()] = k++;
  for (const auto& n : g.nodes()) {
    std::string label = std::string(n->info().name);
    if (const AttrValue* nm = n->attrs.find("name")) label += " " + attr_value_str(*nm);
    if (!n->results.empty()) label += "\\n" + n->result()->type.str();
    std::string esc;
    for (char c : label) esc += c == '"' ? '\'' : c;
    out += "  n" + std::to_string(ids[n.get()]) + " [label=\"" + esc + "\"];\n";
    for (Value* o : n->operands)
      out += "  n" + std::to_string(ids[o->def]) + " -> n" + std::to_string(ids[n.get()]) + ";\n";
  }
  return out + "}\n";
}

std::string print_json(const Graph& g) {
  Printer p;
  std::string out = "{\"graph\": \"" + json_escape(g.name()) + "\", \"nodes\": [\n";
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = *g.nodes()[i];
    out += "  {\"op\": \"" + std::string(n.info().name) + "\", \"results\": [";
    for (size_t r = 0; r < n.results.size(); ++r)
      out += std::string(r ? ", " : "") + "{\"name\": \"" + json_escape(p.name(n.results[r])) +
             "\", \"type\": \"" + n.results[r]->type.str() + "\"}";
    out += "], \"operands\": [";
    for (size_t o = 0; o < n.operands.size(); ++o)
      out += std::string(o ? ", " : "") + "\"" + json_escape(p.name(n.operands[o])) + "\"";
    out += "], \"attrs\": {";
    for (size_t a = 0; a < n.attrs.list().size(); ++a) {
      const Attr& at = n.attrs.list()[a];
      std::string v = attr_value_str(at.value);
      if (kind_of(at.value) == AttrKind::DType) v = "\"" + v + "\"";
      out += std::string(a ? ", " : "") + "\"" + at.name + "\": " + v;
    }
    out += "}";
    if (n.body) out += ", \"body\": " + print_json(*n.body);
    out += i + 1 < g.nodes().size() ? "},\n" : "}\n";
  }
  return out + "]}";
}

}  // namespace kiln::ir
