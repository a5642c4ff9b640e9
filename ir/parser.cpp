#include "ir/parser.h"

#include <cctype>
#include <charconv>
#include <unordered_map>

#include "ir/infer.h"
#include "ir/verifier.h"

namespace kiln::ir {
namespace {

// Bounds that keep hostile input from exhausting memory or the stack.
constexpr int kMaxRegionDepth = 16;
constexpr size_t kMaxRank = 8;

enum class Tok { End, Ident, Value, Int, Float, String, Punct };

struct Token {
  Tok kind = Tok::End;
  std::string text;  // identifier, value name (without %), number text, string contents, punct
  int line = 1, col = 1;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Result<Token> next() {
    skip_space();
    Token t;
    t.line = line_;
    t.col = col_;
    if (p_ >= s_.size()) return t;
    char c = s_[p_];
    if (c == '%') {
      advance();
      t.kind = Tok::Value;
      t.text = ident_chars();
      if (t.text.empty()) return error(t, "expected a value name after '%'");
      return t;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      t.kind = Tok::Ident;
      t.text = ident_chars();
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+') {
      size_t start = p_;
      advance();
      bool is_float = false;
      while (p_ < s_.size()) {
        char d = s_[p_];
        if (std::isdigit(static_cast<unsigned char>(d))) {
          advance();
        } else if (d == '.' || d == 'e' || d == 'E' ||
                   ((d == '-' || d == '+') && (s_[p_ - 1] == 'e' || s_[p_ - 1] == 'E'))) {
          is_float = true;
          advance();
        } else if (std::isalpha(static_cast<unsigned char>(d))) {  // inf, nan
          is_float = true;
          advance();
        } else {
          break;
        }
      }
      t.kind = is_float ? Tok::Float : Tok::Int;
      t.text = std::string(s_.substr(start, p_ - start));
      return t;
    }
    if (c == '"') {
      advance();
      t.kind = Tok::String;
      while (true) {
        if (p_ >= s_.size() || s_[p_] == '\n') return error(t, "unterminated string");
        char d = s_[p_];
        advance();
        if (d == '"') break;
        if (d == '\\') {
          if (p_ >= s_.size()) return error(t, "unterminated string");
          char e = s_[p_];
          advance();
          if (e == 'x') {
            if (p_ + 2 > s_.size()) return error(t, "bad \\x escape");
            int v = 0;
            auto r = std::from_chars(s_.data() + p_, s_.data() + p_ + 2, v, 16);
            if (r.ptr != s_.data() + p_ + 2) return error(t, "bad \\x escape");
            advance();
            advance();
            t.text += char(v);
          } else {
            t.text += e;
          }
        } else {
          t.text += d;
        }
      }
      return t;
    }
    if (std::string_view("{}[]=:,").find(c) != std::string_view::npos) {
      advance();
      t.kind = Tok::Punct;
      t.text = std::string(1, c);
      return t;
    }
    return error(t, std::string("unexpected character '") + c + "'");
  }

 private:
  static Error error(const Token& t, const std::string& msg) {
    return make_error("line ", t.line, ", column ", t.col, ": ", msg);
  }
  void advance() {
    if (s_[p_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++p_;
  }
  void skip_space() {
    while (p_ < s_.size()) {
      char c = s_[p_];
      if (c == '#' || (c == '/' && p_ + 1 < s_.size() && s_[p_ + 1] == '/')) {  // comments
        while (p_ < s_.size() && s_[p_] != '\n') advance();
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        advance();
      } else {
        break;
      }
    }
  }
  std::string ident_chars() {
    size_t start = p_;
    while (p_ < s_.size()) {
      char c = s_[p_];
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')
        advance();
      else
        break;
    }
    return std::string(s_.substr(start, p_ - start));
  }

  std::string_view s_;
  size_t p_ = 0;
  int line_ = 1, col_ = 1;
};

}  // namespace

class Parser {
 public:
  explicit Parser(std::string_view text) : lex_(text) {}

  Result<std::unique_ptr<Graph>> run() {
    KILN_RETURN_IF_ERROR(advance());
    KILN_RETURN_IF_ERROR(expect_ident("graph"));
    if (tok_.kind != Tok::Ident) return error("expected the graph's name");
    auto g = std::make_unique<Graph>(tok_.text);
    KILN_RETURN_IF_ERROR(advance());
    KILN_RETURN_IF_ERROR(expect_punct("{"));
    KILN_RETURN_IF_ERROR(parse_body(*g, 0));
    if (tok_.kind != Tok::End) return error("unexpected text after the graph");
    Status st = verify(*g);
    if (!st.ok()) return make_error("invalid graph: ", st.message());
    return g;
  }

 private:
  using Scope = std::unordered_map<std::string, Value*>;

  Error error(const std::string& msg) const {
    return make_error("line ", tok_.line, ", column ", tok_.col, ": ", msg);
  }
  Status advance() {
    KILN_ASSIGN_OR_RETURN(tok_, lex_.next());
    return Status::Ok();
  }
  bool is_punct(const char* p) const { return tok_.kind == Tok::Punct && tok_.text == p; }
  Status expect_punct(const char* p) {
    if (!is_punct(p)) return error(std::string("expected '") + p + "'" + found());
    return advance();
  }
  Status expect_ident(const char* w) {
    if (tok_.kind != Tok::Ident || tok_.text != w)
      return error(std::string("expected '") + w + "'" + found());
    return advance();
  }
  std::string found() const {
    if (tok_.kind == Tok::End) return ", found the end of the text";
    return ", found '" + tok_.text + "'";
  }

  // Parses nodes up to and including the closing '}'.
  Status parse_body(Graph& g, int depth) {
    Scope scope;
    while (!is_punct("}")) {
      if (tok_.kind == Tok::End) return error("missing '}' at the end of graph " + g.name());
      KILN_RETURN_IF_ERROR(parse_node(g, scope, depth));
    }
    return advance();
  }

  Status parse_node(Graph& g, Scope& scope, int depth) {
    int line = tok_.line, col = tok_.col;
    std::vector<Token> result_names;
    if (tok_.kind == Tok::Value) {
      while (true) {
        if (tok_.kind != Tok::Value) return error("expected a result name" + found());
        result_names.push_back(tok_);
        KILN_RETURN_IF_ERROR(advance());
        if (!is_punct(",")) break;
        KILN_RETURN_IF_ERROR(advance());
      }
      KILN_RETURN_IF_ERROR(expect_punct("="));
    }
    if (tok_.kind != Tok::Ident) return error("expected an op name" + found());
    auto op = op_from_name(tok_.text);
    if (!op) return error("unknown op '" + tok_.text + "'");
    KILN_RETURN_IF_ERROR(advance());

    std::vector<Value*> operands;
    while (tok_.kind == Tok::Value) {
      auto it = scope.find(tok_.text);
      if (it == scope.end())
        return error("value %" + tok_.text + " is not defined before this use");
      operands.push_back(it->second);
      KILN_RETURN_IF_ERROR(advance());
      if (!is_punct(",")) break;
      KILN_RETURN_IF_ERROR(advance());
      if (tok_.kind != Tok::Value) return error("expected an operand" + found());
    }

    Attrs attrs;
    if (is_punct("{")) KILN_RETURN_IF_ERROR(parse_attrs(attrs));

    std::vector<TensorType> types;
    if (is_punct(":")) {
      KILN_RETURN_IF_ERROR(advance());
      while (true) {
        TensorType t;
        KILN_RETURN_IF_ERROR(parse_type(t));
        types.push_back(std::move(t));
        if (!is_punct(",")) break;
        KILN_RETURN_IF_ERROR(advance());
      }
    }
    if (types.size() != result_names.size())
      return make_error("line ", line, ", column ", col, ": ", result_names.size(),
                        " result names but ", types.size(), " types");

    std::unique_ptr<Graph> body;
    if (is_punct("{")) {
      if (*op != Op::Region) return error("only a region has a body");
      if (depth + 1 > kMaxRegionDepth) return error("regions nested too deeply");
      KILN_RETURN_IF_ERROR(advance());
      body = std::make_unique<Graph>("region");
      KILN_RETURN_IF_ERROR(parse_body(*body, depth + 1));
    }

    auto node = g.add_node(*op, operands, attrs, types);
    if (!node.ok()) return make_error("line ", line, ", column ", col, ": ", node.message());
    Node* n = *node;
    if (body) {
      if (const AttrValue* nm = n->attrs.find("name"))
        if (std::holds_alternative<std::string>(*nm)) body->set_name(std::get<std::string>(*nm));
      n->body = std::move(body);
    }
    auto inferred = infer_types(*n);
    if (!inferred.ok())
      return make_error("line ", line, ", column ", col, ": ", inferred.message());
    if (!n->has(kSource)) {
      if (inferred->size() != n->results.size())
        return make_error("line ", line, ", column ", col, ": ", n->info().name, " has ",
                          inferred->size(), " results, found ", n->results.size(), " names");
      for (size_t i = 0; i < n->results.size(); ++i)
        if ((*inferred)[i] != n->results[i]->type)
          return make_error("line ", line, ", column ", col, ": declared type ",
                            n->results[i]->type.str(), " but ", n->info().name, " gives ",
                            (*inferred)[i].str());
    } else if (n->results.size() != 1) {
      return make_error("line ", line, ", column ", col, ": ", n->info().name, " has one result");
    }
    for (size_t i = 0; i < result_names.size(); ++i) {
      const Token& rn = result_names[i];
      if (scope.count(rn.text))
        return make_error("line ", rn.line, ", column ", rn.col, ": value %", rn.text,
                          " defined twice");
      bool numeric = rn.text.find_first_not_of("0123456789") == std::string::npos;
      if (!numeric) g.set_value_name(n->results[i], rn.text);
      scope[rn.text] = n->results[i];
    }
    return Status::Ok();
  }

  Status parse_attrs(Attrs& attrs) {
    KILN_RETURN_IF_ERROR(advance());  // '{'
    while (!is_punct("}")) {
      if (tok_.kind != Tok::Ident) return error("expected an attribute name" + found());
      std::string name = tok_.text;
      KILN_RETURN_IF_ERROR(advance());
      KILN_RETURN_IF_ERROR(expect_punct("="));
      AttrValue v;
      KILN_RETURN_IF_ERROR(parse_literal(v));
      if (attrs.find(name)) return error("attribute '" + name + "' given twice");
      attrs.set(name, std::move(v));
      if (is_punct(","))
        KILN_RETURN_IF_ERROR(advance());
      else if (!is_punct("}"))
        return error("expected ',' or '}'" + found());
    }
    return advance();
  }

  Status parse_literal(AttrValue& v) {
    switch (tok_.kind) {
      case Tok::Int:
      case Tok::Float: {
        auto r =
            parse_attr_literal(tok_.kind == Tok::Int ? AttrKind::Int : AttrKind::Float, tok_.text);
        if (!r.ok()) return error(r.message());
        v = *r;
        return advance();
      }
      case Tok::String:
        v = tok_.text;
        return advance();
      case Tok::Ident: {
        auto d = dtype_from_name(tok_.text);
        if (!d) return error("unknown dtype '" + tok_.text + "'");
        v = *d;
        return advance();
      }
      case Tok::Punct:
        if (tok_.text == "[") {
          std::vector<int64_t> list;
          KILN_RETURN_IF_ERROR(parse_int_list(list));
          v = std::move(list);
          return Status::Ok();
        }
        [[fallthrough]];
      default:
        return error("expected an attribute value" + found());
    }
  }

  Status parse_int_list(std::vector<int64_t>& out) {
    KILN_RETURN_IF_ERROR(expect_punct("["));
    while (!is_punct("]")) {
      if (tok_.kind != Tok::Int) return error("expected an integer" + found());
      int64_t x = 0;
      auto r = std::from_chars(tok_.text.data(), tok_.text.data() + tok_.text.size(), x);
      if (r.ec != std::errc() || r.ptr != tok_.text.data() + tok_.text.size())
        return error("bad integer '" + tok_.text + "'");
      if (out.size() >= kMaxRank * 8) return error("list too long");
      out.push_back(x);
      KILN_RETURN_IF_ERROR(advance());
      if (is_punct(","))
        KILN_RETURN_IF_ERROR(advance());
      else if (!is_punct("]"))
        return error("expected ',' or ']'" + found());
    }
    return advance();
  }

  Status parse_type(TensorType& t) {
    if (tok_.kind != Tok::Ident) return error("expected a type like f32[1, 576]" + found());
    auto d = dtype_from_name(tok_.text);
    if (!d) return error("unknown dtype '" + tok_.text + "'");
    t.dtype = *d;
    KILN_RETURN_IF_ERROR(advance());
    KILN_RETURN_IF_ERROR(parse_int_list(t.shape));
    if (t.shape.size() > kMaxRank) return error("rank above " + std::to_string(kMaxRank));
    for (int64_t dim : t.shape)
      if (dim <= 0) return error("dimensions must be positive");
    if (!shape_in_range(t.shape)) return error("tensor too large");
    return Status::Ok();
  }

  Lexer lex_;
  Token tok_;
};

Result<std::unique_ptr<Graph>> parse(std::string_view text) {
  return Parser(text).run();
}

}  // namespace kiln::ir
