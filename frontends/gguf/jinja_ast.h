// The parsed template: expression and statement nodes, one plain struct each with a kind tag
// (the node set mirrors jinja2's, minus inheritance, includes and imports).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frontends/gguf/jinja_ops.h"
#include "frontends/gguf/jinja_value.h"

namespace kiln::jinja {

class Interp;
struct CallArgs;
using FilterFn = Value (*)(Interp&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Interp&, const Value& input, CallArgs& args);

enum class ExprKind : uint8_t {
  kConst,    // value
  kName,     // name
  kList,     // args
  kTuple,    // args
  kDict,     // args: key, value, key, value, ...
  kGetAttr,  // args[0].name
  kGetItem,  // args[0][args[1]]
  kSlice,    // args: start, stop, step (each may be null); only as a kGetItem index
  kCall,     // args[0](args[1..], kwargs, *dyn_args, **dyn_kwargs)
  kFilter,   // args[0] | name(args[1..], kwargs); args[0] is null in filter/set blocks
  kTest,     // args[0] is name(args[1..], kwargs)
  kNeg,
  kPos,
  kNot,
  kBinary,  // args[0] op args[1]
  kAnd,
  kOr,
  kCompare,  // args[0] cmp[0] args[1] cmp[1] args[2] ...
  kConcat,   // args[0] ~ args[1] ~ ...
  kCond,     // args[1] if args[0] else args[2] (args[2] may be null)
};

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 0;
  Value value;       // kConst
  std::string name;  // kName, kGetAttr, kFilter, kTest
  BinOp op = BinOp::kAdd;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
  std::vector<CmpOp> cmp;
  FilterFn filter = nullptr;  // resolved at parse time
  TestFn test = nullptr;
  int depth = 1;  // of this subtree, bounded by the parser
};

enum class StmtKind : uint8_t {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // if expr: body, then each elifs[i] (expr: body), else else_body
  kFor,          // for target in expr [if cond]: body else else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filter]: body
  kMacro,        // macro name(params = defaults): body
  kCallBlock,    // call(params) expr: body
  kFilterBlock,  // filter filter: body
  kWith,         // with assigns: body
  kBreak,
  kContinue,
  kBlock,  // a body with no scope of its own ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;  // kText
  std::string name;  // kMacro
  ExprPtr expr;
  ExprPtr target;
  ExprPtr cond;
  ExprPtr filter;  // chain of kFilter nodes whose innermost input is null
  StmtList body, else_body;
  StmtList elifs;                                    // kIf
  std::vector<std::string> params;                   // kMacro, kCallBlock
  std::vector<ExprPtr> defaults;                     // for the last defaults.size() params
  std::vector<std::pair<ExprPtr, ExprPtr>> assigns;  // kWith
  bool uses_loop = false;  // kFor: the body names `loop` (else no loop object is built)
};

struct Program {
  StmtList body;
};

}  // namespace kiln::jinja
