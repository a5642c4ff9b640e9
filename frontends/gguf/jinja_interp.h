// The tree-walking interpreter: scopes, statements, expressions, calls, and the budgets that
// keep a hostile template from hanging or exhausting memory. Builtins (filters, tests, methods,
// globals) live in their own files and reach back through the services declared here.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontends/gguf/jinja_ast.h"
#include "frontends/gguf/jinja_ops.h"
#include "frontends/gguf/jinja_value.h"

namespace kiln::jinja {

struct RenderLimits {
  uint64_t max_steps = 10'000'000;      // nodes evaluated, plus bulk work in builtins
  size_t max_output_bytes = 64u << 20;  // the rendered text and any one string
  int max_depth = 500;                  // nested evaluation (recursion through macros)
};

struct RenderOptions {
  RenderLimits limits;
  // The time strftime_now() formats; unset means the current local time. Tests fix it.
  std::optional<std::tm> fixed_time;
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Binds call arguments to a Python-style signature: positional first, then keywords; unknown
// keywords and extra positionals are errors naming `fn`. Absent parameters are nullopt.
std::vector<std::optional<Value>> bind_args(const CallArgs& a, std::string_view fn,
                                            std::initializer_list<std::string_view> names);

class Interp;

struct Callable {
  virtual ~Callable() = default;
  virtual Value call(Interp& in, CallArgs& args) const = 0;
  virtual std::string describe() const = 0;  // "macro 'm'", "method 'str.upper'"
};

struct Scope {
  Scope* parent = nullptr;
  std::vector<std::pair<std::string, Value>> vars;

  Value* find_local(std::string_view name);
  void set(std::string_view name, Value v);
};

class Interp {
 public:
  explicit Interp(const RenderOptions& options);
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // Renders the program with `context` (a dict of variables) as the template's globals.
  std::string render(const Program& program, const Value& context);

  // --- services for builtins ---
  void charge(uint64_t steps);
  // Charges for the bulk a builtin produced (a step per 64 bytes of string, per list item).
  void charge_value(const Value& v);
  Value eval_expr(const Expr& e, Scope& scope);
  size_t max_bytes() const { return options_.limits.max_output_bytes; }
  const RenderOptions& options() const { return options_; }
  Value call(const Value& fn, CallArgs args);
  Value get_attr(const Value& obj, std::string_view name);
  Value get_item(const Value& obj, const Value& key);
  // A new namespace object, owned by this render (so reference cycles are broken at the end).
  Value make_namespace(std::vector<std::pair<std::string, Value>> entries);
  // Renders a macro or call-block body with `scope` (whose parent chain ends at the globals).
  std::string render_body(const StmtList& body, Scope& scope);
  Scope& globals() { return *root_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_list(const StmtList& list, Scope& scope);
  Flow exec(const Stmt& s, Scope& scope);
  void exec_for(const Stmt& s, Scope& scope);
  Value eval(const Expr& e, Scope& scope);
  Value eval_inner(const Expr& e, Scope& scope);
  Value lookup(std::string_view name, Scope& scope);
  Value eval_call(const Expr& e, Scope& scope);
  Value eval_filter(const Expr& e, Scope& scope, const Value* input);
  Value eval_compare(const Expr& e, Scope& scope);
  Value eval_getitem(const Expr& e, Scope& scope);
  CallArgs eval_args(const Expr& e, Scope& scope, size_t first);
  void assign(const Expr& target, Value v, Scope& scope);
  void write(std::string_view s);

  struct DepthGuard {
    explicit DepthGuard(Interp& in);
    ~DepthGuard() { --in_.depth_; }
    Interp& in_;
  };

  RenderOptions options_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  std::string* out_ = nullptr;
  std::unique_ptr<Scope> root_;
  std::vector<std::shared_ptr<DictData>> namespaces_;
  std::vector<std::shared_ptr<std::optional<Value>>> states_;  // loop.changed() memories
};

}  // namespace kiln::jinja
