#include "frontends/gguf/jinja_interp.h"

#include <algorithm>

#include "frontends/gguf/jinja_builtins.h"

namespace kiln::jinja {

std::vector<std::optional<Value>> bind_args(const CallArgs& a, std::string_view fn,
                                            std::initializer_list<std::string_view> names) {
  std::vector<std::string_view> params(names);
  std::vector<std::optional<Value>> out(params.size());
  if (a.pos.size() > params.size())
    fail(fn, "() takes at most ", format_int(int64_t(params.size())), " argument(s), ",
         format_int(int64_t(a.pos.size())), " given");
  for (size_t i = 0; i < a.pos.size(); ++i) out[i] = a.pos[i];
  for (const auto& [k, v] : a.kw) {
    auto it = std::find(params.begin(), params.end(), k);
    if (it == params.end()) fail(fn, "() got an unexpected keyword argument '", k, "'");
    size_t i = size_t(it - params.begin());
    if (out[i]) fail(fn, "() got multiple values for argument '", k, "'");
    out[i] = v;
  }
  return out;
}

Value* Scope::find_local(std::string_view name) {
  for (auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Scope::set(std::string_view name, Value v) {
  if (Value* slot = find_local(name))
    *slot = std::move(v);
  else
    vars.emplace_back(std::string(name), std::move(v));
}

namespace {

// A macro: binds arguments like jinja2 (positional, then keywords, then defaults; extras go to
// `varargs` and `kwargs`) and renders its body in a scope whose parent is the template's.
struct MacroFn : Callable {
  const Stmt* def = nullptr;
  Scope* parent = nullptr;      // the render's global scope (alive for the whole render)
  std::shared_ptr<bool> alive;  // false once the block that made it (a call block) is done

  std::string describe() const override {
    return def->kind == StmtKind::kMacro ? "macro '" + def->name + "'" : "caller()";
  }

  Value call(Interp& in, CallArgs& args) const override {
    if (alive && !*alive) fail("caller() used outside of its call block");
    Scope sc;
    sc.parent = parent;
    const auto& params = def->params;
    size_t first_default = params.size() - def->defaults.size();
    std::vector<bool> bound(params.size(), false);
    size_t npos = std::min(args.pos.size(), params.size());
    for (size_t i = 0; i < npos; ++i) {
      sc.set(params[i], args.pos[i]);
      bound[i] = true;
    }
    std::vector<Value> extra(args.pos.begin() + long(npos), args.pos.end());
    std::vector<std::pair<std::string, Value>> extra_kw;
    for (auto& [k, v] : args.kw) {
      auto it = std::find(params.begin(), params.end(), k);
      if (it != params.end()) {
        size_t i = size_t(it - params.begin());
        if (bound[i]) fail(describe(), " got multiple values for argument '", k, "'");
        sc.set(k, v);
        bound[i] = true;
      } else if (k == "caller") {
        sc.set("caller", v);
      } else {
        extra_kw.emplace_back(k, v);
      }
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (bound[i]) continue;
      if (i >= first_default)
        sc.set(params[i], in.eval_expr(*def->defaults[i - first_default], sc));
      else
        sc.set(params[i], Value::undefined("parameter '" + params[i] + "' was not provided"));
    }
    sc.set("varargs", Value::tuple(std::move(extra)));
    sc.set("kwargs", Value::object(std::move(extra_kw)));
    return Value::string(in.render_body(def->body, sc));
  }
};

struct CycleFn : Callable {
  int64_t index0 = 0;
  std::string describe() const override { return "loop.cycle"; }
  Value call(Interp&, CallArgs& args) const override {
    if (!args.kw.empty()) fail("loop.cycle() takes no keyword arguments");
    if (args.pos.empty()) fail("no items for cycling given");
    return args.pos[size_t(index0 % int64_t(args.pos.size()))];
  }
};

struct ChangedFn : Callable {
  std::shared_ptr<std::optional<Value>> last = std::make_shared<std::optional<Value>>();
  std::string describe() const override { return "loop.changed"; }
  Value call(Interp&, CallArgs& args) const override {
    Value now = Value::list(args.pos);
    if (*last && equals(**last, now)) return Value::boolean(false);
    *last = now;
    return Value::boolean(true);
  }
};

// The `loop` variable of iteration i: jinja2's LoopContext as a read-only dict.
Value loop_object(const std::vector<Value>& items, int64_t i,
                  const std::shared_ptr<ChangedFn>& changed) {
  int64_t n = int64_t(items.size());
  auto loop = std::make_shared<DictData>();
  loop->kind = DictData::Kind::kLoop;
  loop->entries.reserve(13);
  auto put = [&](const char* k, Value v) {
    loop->entries.emplace_back(Value::string(k), std::move(v));
  };
  put("index", Value::integer(i + 1));
  put("index0", Value::integer(i));
  put("revindex", Value::integer(n - i));
  put("revindex0", Value::integer(n - i - 1));
  put("first", Value::boolean(i == 0));
  put("last", Value::boolean(i == n - 1));
  put("length", Value::integer(n));
  put("depth", Value::integer(1));
  put("depth0", Value::integer(0));
  if (i > 0) put("previtem", items[size_t(i - 1)]);
  if (i + 1 < n) put("nextitem", items[size_t(i + 1)]);
  auto cycle = std::make_shared<CycleFn>();
  cycle->index0 = i;
  put("cycle", Value::callable(std::move(cycle)));
  put("changed", Value::callable(changed));
  return Value::from_dict_data(std::move(loop));
}

}  // namespace

Interp::DepthGuard::DepthGuard(Interp& in) : in_(in) {
  if (++in_.depth_ > in_.options_.limits.max_depth) {
    --in_.depth_;
    fail("template recursion too deep (more than ", format_int(in_.options_.limits.max_depth),
         " nested evaluations)");
  }
}

Interp::Interp(const RenderOptions& options) : options_(options) {}

Interp::~Interp() {
  // Namespaces may hold themselves; emptying them breaks every reference cycle.
  for (auto& ns : namespaces_) ns->entries.clear();
  for (auto& state : states_) state->reset();
}

void Interp::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > options_.limits.max_steps)
    fail("template exceeded its budget of ", format_int(int64_t(options_.limits.max_steps)),
         " steps");
}

void Interp::charge_value(const Value& v) {
  if (v.is_string()) {
    if (v.as_string().size() > max_bytes()) fail("string too long");
    charge(v.as_string().size() / 64);
  } else if (v.is_list()) {
    charge(v.items().size());
  } else if (v.is_dict()) {
    charge(v.dict_data().entries.size());
  }
}

Value Interp::make_namespace(std::vector<std::pair<std::string, Value>> entries) {
  Value ns = Value::namespace_object(std::move(entries));
  namespaces_.push_back(ns.dict_ptr());
  return ns;
}

void Interp::write(std::string_view s) {
  if (out_->size() + s.size() > max_bytes())
    fail("rendered output exceeds the limit of ", format_int(int64_t(max_bytes())), " bytes");
  out_->append(s);
}

std::string Interp::render(const Program& program, const Value& context) {
  root_ = std::make_unique<Scope>();
  if (context.is_dict())
    for (const auto& [k, v] : context.dict_data().entries)
      if (k.is_string()) root_->set(k.as_string(), v);
  std::string out;
  out_ = &out;
  exec_list(program.body, *root_);
  out_ = nullptr;
  return out;
}

std::string Interp::render_body(const StmtList& body, Scope& scope) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  try {
    exec_list(body, scope);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buf;
}

Interp::Flow Interp::exec_list(const StmtList& list, Scope& scope) {
  for (const auto& s : list) {
    Flow f = exec(*s, scope);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interp::Flow Interp::exec(const Stmt& s, Scope& scope) {
  DepthGuard g(*this);
  charge(1);
  try {
    switch (s.kind) {
      case StmtKind::kText:
        write(s.text);
        break;
      case StmtKind::kOutput: {
        Value v = eval(*s.expr, scope);
        if (v.is_string())
          write(v.as_string());
        else
          write(to_str(v));
        break;
      }
      case StmtKind::kIf:
        if (truthy(eval(*s.expr, scope))) return exec_list(s.body, scope);
        for (const auto& elif : s.elifs)
          if (truthy(eval(*elif->expr, scope))) return exec_list(elif->body, scope);
        return exec_list(s.else_body, scope);
      case StmtKind::kFor:
        exec_for(s, scope);
        break;
      case StmtKind::kSet:
        assign(*s.target, eval(*s.expr, scope), scope);
        break;
      case StmtKind::kSetBlock: {
        Scope inner;
        inner.parent = &scope;
        Value v = Value::string(render_body(s.body, inner));
        if (s.filter) v = eval_filter(*s.filter, scope, &v);
        assign(*s.target, std::move(v), scope);
        break;
      }
      case StmtKind::kMacro: {
        auto fn = std::make_shared<MacroFn>();
        fn->def = &s;
        fn->parent = root_.get();
        scope.set(s.name, Value::callable(std::move(fn)));
        break;
      }
      case StmtKind::kCallBlock: {
        auto caller = std::make_shared<MacroFn>();
        caller->def = &s;
        caller->parent = &scope;
        caller->alive = std::make_shared<bool>(true);
        std::shared_ptr<bool> alive = caller->alive;
        const Expr& call = *s.expr;
        Value fn = eval(*call.args[0], scope);
        CallArgs args = eval_args(call, scope, 1);
        args.kw.emplace_back("caller", Value::callable(std::move(caller)));
        Value out;
        try {
          out = this->call(fn, std::move(args));
        } catch (...) {
          *alive = false;
          throw;
        }
        *alive = false;
        write(to_str(out));
        break;
      }
      case StmtKind::kFilterBlock: {
        Value v = Value::string(render_body(s.body, scope));
        write(to_str(eval_filter(*s.filter, scope, &v)));
        break;
      }
      case StmtKind::kWith: {
        Scope inner;
        inner.parent = &scope;
        for (const auto& [target, value] : s.assigns) assign(*target, eval(*value, scope), inner);
        return exec_list(s.body, inner);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kBlock: {  // transformers renders {% generation %} as a call block
        Scope inner;
        inner.parent = &scope;
        return exec_list(s.body, inner);
      }
    }
  } catch (Failure& f) {
    if (!f.line) f.line = s.line;
    throw;
  }
  return Flow::kNormal;
}

void Interp::exec_for(const Stmt& s, Scope& scope) {
  Value seq = eval(*s.expr, scope);
  std::vector<Value> items = iterate(seq);
  charge(items.size());
  if (s.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      Scope tmp;
      tmp.parent = &scope;
      assign(*s.target, item, tmp);
      if (truthy(eval(*s.cond, tmp))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_list(s.else_body, scope);
    return;
  }
  std::shared_ptr<ChangedFn> changed;
  if (s.uses_loop) {
    changed = std::make_shared<ChangedFn>();
    states_.push_back(changed->last);  // `loop.changed(loop)` would otherwise leak a cycle
  }
  int64_t n = int64_t(items.size());
  for (int64_t i = 0; i < n; ++i) {
    Scope body;
    body.parent = &scope;
    if (s.uses_loop) body.set("loop", loop_object(items, i, changed));
    assign(*s.target, items[size_t(i)], body);
    if (exec_list(s.body, body) == Flow::kBreak) break;
  }
}

void Interp::assign(const Expr& target, Value v, Scope& scope) {
  if (target.kind == ExprKind::kName) {
    scope.set(target.name, std::move(v));
    return;
  }
  if (target.kind == ExprKind::kTuple) {
    std::vector<Value> items = iterate(v);
    size_t want = target.args.size();
    if (items.size() > want)
      fail("too many values to unpack (expected ", format_int(int64_t(want)), ")");
    if (items.size() < want)
      fail("not enough values to unpack (expected ", format_int(int64_t(want)), ", got ",
           format_int(int64_t(items.size())), ")");
    for (size_t i = 0; i < want; ++i) assign(*target.args[i], items[i], scope);
    return;
  }
  // `ns.attr = v`
  Value obj = lookup(target.args[0]->name, scope);
  if (!obj.is_namespace()) fail("cannot assign attribute on non-namespace object");
  obj.mutable_dict_data().set(Value::string(target.name), std::move(v));
}

}  // namespace kiln::jinja
