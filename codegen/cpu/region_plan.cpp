// Region planning: homes, stages and phases of one kernel (region_plan.h has the vocabulary).
//
// The plan is a fixed point. Start with the values that must be in memory (the region's results,
// and what only a library call or a row reduction produces: attention, argmax, a quantizing
// cast, a product whose weight is batched). Walk each one's expression: elementwise ops and data
// movement are recomputed per element; a row op read at the element's own position is computed
// per unit in the same stage; any other read of a row op or a product needs it in memory, so it
// becomes a value of its own, produced by an earlier phase. Repeat until nothing new is needed.
//
// A region with one 2-D product (a contraction) tries to run its whole epilogue inside the
// product's column tiles: every value computed from the product must read it at its own row and
// at its column plus a constant shift (slices of a merged product), with row ops inside aligned
// tiles. When that fails, the product goes to memory first and the epilogue runs as flat stages
// after a barrier: slower, always correct.
#include "codegen/cpu/region_plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "codegen/cpu/cpu_codegen.h"
#include "codegen/cpu/microkernels.h"

namespace kiln::cpu::plan {
namespace {

using ir::Node;
using ir::Op;
using ir::Value;

uint64_t align64(uint64_t x) {
  return (x + 63) & ~uint64_t(63);
}

int64_t prod(const ir::Shape& s, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to; ++i) n *= s[i];
  return n;
}

bool is_row_op(const Node& n) {
  switch (n.op) {
    case Op::RmsNorm:
    case Op::Norm:
    case Op::Softmax:
    case Op::Rope:
      return true;
    case Op::GetRows:
      return is_quantized(n.operand(0)->type.dtype);
    default:
      return false;
  }
}

bool is_pointwise(Op op) {
  switch (op) {
    case Op::Add:
    case Op::Sub:
    case Op::Mul:
    case Op::Div:
    case Op::Scale:
    case Op::Silu:
    case Op::Gelu:
    case Op::Tanh:
    case Op::Exp:
    case Op::Cast:
      return true;
    default:
      return false;
  }
}

bool quant_cast(const Node& n) {
  return n.op == Op::Cast && is_quantized(n.attrs.dtype("to"));
}

// Types a kernel can write row by row (kl_quantize_row_*).
bool can_store_rows(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
      return true;
    default:
      return false;
  }
}

// Types the library reads element by element / row by row (kl_dequant_*).
bool can_read(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F64:
    case DType::I8:
    case DType::I16:
    case DType::I32:
    case DType::I64:
    case DType::BOOL:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q8_1:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K:
    case DType::IQ4_NL:
    case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

int mk_index_of(DType t) {
  for (int i = 0; i < kNumMicrokernelTypes; ++i)
    if (kMicrokernelTypes[i] == t) return i;
  return -1;
}

// A thing a stage must produce.
struct Target {
  SinkKind kind = SinkKind::kStore;
  const Value* value = nullptr;
  const Value* source = nullptr;
  const Node* node = nullptr;
  Home dest;
};

// What walking one target's expression found.
struct Walk {
  bool ok = true;
  std::string why;
  std::vector<std::pair<const Node*, int64_t>> rowops;  // dependency order, with shifts
  std::set<int64_t> shifts;
  std::set<const Value*> reads;    // values loaded from memory
  std::set<const Value*> demands;  // values that must be put in memory first
  int64_t align = 1;
  bool touches_mm = false;
};

class Planner {
 public:
  Planner(const Node& region, const PlanOptions& o)
      : region_(region), body_(*region.body), opt_(o) {}

  Result<RegionPlan> run();

 private:
  bool homed(const Value* v) const { return plan_.homes.count(v) || wanted_.count(v); }
  bool is_arg(const Value* v) const { return v->def->op == Op::Arg; }
  void want(const Value* v) {
    if (homed(v)) return;
    wanted_.insert(v);
    want_order_.push_back(v);
  }
  // A value in memory that readers load; the others in memory (results of flat stages) are
  // recomputed where they are read, so that no stage reads what it writes itself.
  bool must_read(const Value* v) const {
    if (!homed(v)) return false;
    if (auto h = plan_.homes.find(v); h != plan_.homes.end() && h->second.where == Where::kArg)
      return true;
    const Node& n = *v->def;
    if (n.op == Op::MulMat || n.op == Op::Attention || n.op == Op::Argmax || quant_cast(n))
      return true;
    if (demanded_.count(v)) return true;
    return !tile_mm_ && fused_ && depends_mm(v);
  }
  bool depends_mm(const Value* v) const { return mm_deps_.count(v) > 0; }

  Status init();
  void walk(const Value* v, bool aligned, int64_t shift, Walk& w) const;
  void row_op(const Value* v, bool aligned, int64_t shift, Walk& w) const;
  void fail(Walk& w, std::string why) const {
    if (w.ok) w.why = std::move(why);
    w.ok = false;
  }
  // An operand a library call needs as a pointer: its root must be in memory.
  void need_pointer(const Value* v, Walk& w) const {
    Root r = strip_free(v);
    if (homed(r.value))
      w.reads.insert(r.value);
    else
      w.demands.insert(r.value);
  }
  bool x_direct(const Node& mm) const;
  bool packable_weight(const Node& mm, const std::vector<TileGroup>& groups, int64_t N) const;
  Walk analyze(const Target& t, bool tile) const;
  Walk analyze_value(const Value* v) const;
  Status check_types() const;
  Status build();
  FlatStage make_flat(const std::vector<Target>& ts, const std::vector<const Walk*>& ws,
                      bool split);
  uint64_t priv(uint64_t bytes) {
    uint64_t o = priv_top_;
    priv_top_ += align64(bytes);
    return o;
  }

  const Node& region_;
  const ir::Graph& body_;
  PlanOptions opt_;
  RegionPlan plan_;
  std::set<const Value*> wanted_;
  std::set<const Value*> demanded_;  // wanted because some reader needs them in memory
  bool fused_ = false;               // the primary product runs fused with its epilogue
  std::vector<const Value*> want_order_;
  std::vector<Target> yield_copies_;  // results that need a copy (value already stored elsewhere)
  std::vector<const Node*> kvs_;
  const Node* primary_ = nullptr;  // the one 2-D product, fused with its epilogue when possible
  std::set<const Value*> mm_deps_;
  int64_t mrows_ = 1;
  // Set while walking in tile mode.
  mutable const Node* tile_mm_ = nullptr;
  uint64_t priv_top_ = 0;
};

Status Planner::init() {
  for (const auto& n : body_.nodes())
    if (n->op == Op::Arg) plan_.homes[n->result()] = {Where::kArg, int(n->attrs.i("index")), 0};
  std::vector<const Node*> mms;
  for (const auto& up : body_.nodes()) {
    const Node& n = *up;
    switch (n.op) {
      case Op::KvWrite: {
        Root c = strip_free(n.operand(0));
        if (!is_arg(c.value) || c.offset != 0)
          return make_error("kv_write: the cache must be a region operand");
        plan_.homes[n.result()] = plan_.homes.at(c.value);
        kvs_.push_back(&n);
        break;
      }
      case Op::Attention:
      case Op::Argmax:
        want(n.result());
        break;
      case Op::Cast:
        if (quant_cast(n)) want(n.result());
        break;
      case Op::MulMat:
        if (n.operand(1)->type.rank() == 2)
          mms.push_back(&n);
        else
          want(n.result());
        break;
      default:
        break;
    }
  }
  // Results: each yielded value's root (through reshapes) is computed straight into the result.
  const Node* y = body_.nodes().back().get();
  if (y->op != Op::Yield) return make_error("region body does not end in yield");
  if (y->num_operands() != int(region_.results.size()))
    return make_error("region yields ", y->num_operands(), " values for ", region_.results.size(),
                      " results");
  for (int i = 0; i < y->num_operands(); ++i) {
    const Value* v = y->operand(i);
    const Value* r = v;
    while (r->def->op == Op::Reshape || (r->def->op == Op::View && r->def->attrs.i("offset") == 0))
      r = r->def->operand(0);
    if (is_arg(r) || r->def->op == Op::KvWrite) continue;  // the result aliases an operand
    Home dest{Where::kResult, i, 0};
    if (!plan_.homes.count(r)) {
      if (!wanted_.count(r)) {
        wanted_.insert(r);
        want_order_.push_back(r);
      }
      plan_.homes[r] = dest;
    } else {
      yield_copies_.push_back({SinkKind::kStore, v, v, nullptr, dest});
    }
  }
  if (mms.size() == 1) {
    primary_ = mms[0];
    mrows_ = primary_->operand(0)->type.numel() / primary_->operand(0)->type.dim(-1);
    // Forward closure over the body in schedule order.
    mm_deps_.insert(primary_->result());
    for (const auto& n : body_.nodes())
      for (const Value* o : n->operands)
        if (mm_deps_.count(o)) {
          for (const Value* r : n->results) mm_deps_.insert(r);
          break;
        }
  } else {
    for (const Node* m : mms) want(m->result());
  }
  return check_types();
}

Status Planner::check_types() const {
  for (const auto& n : body_.nodes()) {
    if (n->op == Op::Yield) continue;
    for (const Value* o : n->operands)
      if (!can_read(o->type.dtype) && !(n->op == Op::KvWrite && o == n->operand(0)))
        return make_error(ir::op_name(n->op), ": cannot read ", dtype_name(o->type.dtype));
    if (quant_cast(*n) && !can_store_rows(n->attrs.dtype("to")))
      return make_error("cast to ", dtype_name(n->attrs.dtype("to")),
                        ": no quantizer in the kernel library");
    if (n->op == Op::MulMat) {
      const DType act = n->attrs.dtype("act");
      if (act != DType::F32 && act != DType::F16 && act != DType::BF16 && act != DType::Q8_0 &&
          act != DType::Q8_1 && act != DType::Q8_K)
        return make_error("mul_mat: activations of type ", dtype_name(act), " are not supported");
      if (n->operand(0)->type.dim(-1) % int64_t(dtype_info(act).block_elems))
        return make_error("mul_mat: ", n->operand(0)->type.dim(-1), " activations are not whole ",
                          dtype_name(act), " blocks");
    }
    if (n->op == Op::KvWrite && !can_store_rows(n->operand(0)->type.dtype))
      return make_error("kv_write: no quantizer for a ", dtype_name(n->operand(0)->type.dtype),
                        " cache");
    if (n->op == Op::Attention)
      for (int i = 1; i <= 2; ++i)
        if (!can_store_rows(n->operand(i)->type.dtype))
          return make_error("attention: ", dtype_name(n->operand(i)->type.dtype),
                            " caches are not supported");
    if ((n->op == Op::Reshape || n->op == Op::View || n->op == Op::Permute || n->op == Op::Slice ||
         n->op == Op::Concat) &&
        is_quantized(n->result()->type.dtype)) {
      // Quantized data movement is fine for weights read through a pointer (views); anything
      // that copies blocks is not supported inside a kernel.
      if (n->op != Op::Reshape && n->op != Op::View)
        return make_error(ir::op_name(n->op), " of quantized ", dtype_name(n->result()->type.dtype),
                          " data inside a kernel");
    }
  }
  return Status::Ok();
}

void Planner::row_op(const Value* v, bool aligned, int64_t shift, Walk& w) const {
  const Node& n = *v->def;
  const int64_t row = v->type.dim(-1);
  if (!aligned) {
    if (tile_mm_ && depends_mm(v))
      return fail(w, std::string(ir::op_name(n.op)) + " read across rows");
    if (homed(v))
      w.reads.insert(v);
    else
      w.demands.insert(v);
    return;
  }
  if (tile_mm_) {
    const int64_t numel = v->type.numel();
    if (numel % mrows_ || (numel / mrows_) % row || shift % row) {
      if (depends_mm(v)) return fail(w, std::string(ir::op_name(n.op)) + " rows straddle tiles");
      w.demands.insert(v);
      return;
    }
  }
  for (auto& [rn, rs] : w.rowops)
    if (rn == &n) {
      if (rs != shift) fail(w, "a row op read at two column shifts");
      return;
    }
  switch (n.op) {
    case Op::RmsNorm:
    case Op::Norm:
      walk(n.operand(0), true, shift, w);
      break;
    case Op::Softmax:
      walk(n.operand(0), true, shift, w);
      if (n.num_operands() > 1)
        walk(n.operand(1), n.operand(1)->type.shape == v->type.shape, shift, w);
      break;
    case Op::Rope:
      walk(n.operand(0), true, shift, w);
      walk(n.operand(1), false, 0, w);
      break;
    case Op::GetRows:
      need_pointer(n.operand(0), w);
      walk(n.operand(1), false, 0, w);
      break;
    default:
      break;
  }
  w.rowops.push_back({&n, shift});
  w.align = std::lcm(w.align, row);
}

void Planner::walk(const Value* v, bool aligned, int64_t shift, Walk& w) const {
  if (must_read(v)) {
    if (tile_mm_ && !is_arg(v) && depends_mm(v))
      fail(w, "reads a stored value computed from the product");
    w.reads.insert(v);
    return;
  }
  const Node& n = *v->def;
  if (&n == tile_mm_) {
    w.touches_mm = true;
    if (!aligned) return fail(w, "the product is read across columns");
    w.shifts.insert(shift);
    return;
  }
  if (is_row_op(n)) return row_op(v, aligned, shift, w);
  if (is_pointwise(n.op)) {
    if (quant_cast(n)) {
      w.demands.insert(v);
      return;
    }
    for (const Value* o : n.operands) walk(o, aligned && o->type.shape == v->type.shape, shift, w);
    return;
  }
  switch (n.op) {
    case Op::Reshape:
      return walk(n.operand(0), aligned, shift, w);
    case Op::View: {
      const int64_t off = n.attrs.i("offset");
      if (aligned && off == 0) return walk(n.operand(0), true, shift, w);
      if (aligned && tile_mm_ && mrows_ == 1) return walk(n.operand(0), true, shift + off, w);
      return walk(n.operand(0), false, 0, w);
    }
    case Op::Slice: {
      const ir::Shape& s = n.operand(0)->type.shape;
      const size_t axis = size_t(n.attrs.i("axis"));
      if (aligned && tile_mm_ && prod(s, 0, axis) == mrows_)
        return walk(n.operand(0), true, shift + n.attrs.i("start") * prod(s, axis + 1, s.size()),
                    w);
      return walk(n.operand(0), false, 0, w);
    }
    case Op::Permute:
    case Op::Concat:
    case Op::AttnMask:
    case Op::GetRows:
      for (const Value* o : n.operands) walk(o, false, 0, w);
      return;
    default:
      // Products, attention, argmax, stores: computed by a stage of their own.
      if (tile_mm_ && depends_mm(v))
        return fail(w, std::string(ir::op_name(n.op)) + " after the product");
      w.demands.insert(v);
      return;
  }
}

// The activation of a product can be read where it lies: an f32 value in memory, contiguous.
bool Planner::x_direct(const Node& mm) const {
  Root r = strip_free(mm.operand(0));
  return homed(r.value) && r.value->type.dtype == DType::F32;
}

// The weight can be read in the microkernels' packed layout: an operand of the region read only
// by this product, every tile starting on a group of mk::kPackRows rows.
bool Planner::packable_weight(const Node& mm, const std::vector<TileGroup>& groups,
                              int64_t N) const {
  const Value* w = mm.operand(1);
  if (!is_arg(w) || !mk::pack_pays(w->type.dtype)) return false;
  for (const auto& n : body_.nodes())
    for (const Value* o : n->operands)
      if (o == w && n.get() != &mm) return false;
  for (const TileGroup& g : groups)
    for (int64_t s : g.shifts)
      if (s % mk::kPackRows || ((g.ny + s) % mk::kPackRows && g.ny + s != N)) return false;
  return true;
}

Walk Planner::analyze(const Target& t, bool tile) const {
  Walk w;
  tile_mm_ = tile ? primary_ : nullptr;
  switch (t.kind) {
    case SinkKind::kStore:
      walk(t.source, true, 0, w);
      break;
    case SinkKind::kQuant:
    case SinkKind::kArgmax:
      if (tile) fail(w, "a row reduction of the product");
      walk(t.source, true, 0, w);
      w.align = std::lcm(w.align, t.source->type.dim(-1));
      break;
    case SinkKind::kKv: {
      const Node& n = *t.node;
      walk(n.operand(1), true, 0, w);
      walk(n.operand(2), false, 0, w);
      walk(n.operand(3), false, 0, w);
      w.align = std::lcm(w.align, n.operand(1)->type.dim(-1));
      if (tile) {
        const int64_t numel = n.operand(1)->type.numel();
        if (numel % mrows_ || (numel / mrows_) % n.operand(1)->type.dim(-1))
          fail(w, "kv rows straddle tiles");
      }
      break;
    }
  }
  tile_mm_ = nullptr;
  return w;
}

// Analysis of a value target whose producer is not a flat stage.
Walk Planner::analyze_value(const Value* v) const {
  Walk w;
  const Node& n = *v->def;
  if (n.op == Op::Attention) {
    for (const Value* o : n.operands) need_pointer(o, w);
  } else if (n.op == Op::MulMat && n.operand(1)->type.rank() > 2) {
    need_pointer(n.operand(0), w);
    need_pointer(n.operand(1), w);
  } else if (n.op == Op::MulMat) {
    need_pointer(n.operand(1), w);
    if (x_direct(n)) {
      w.reads.insert(strip_free(n.operand(0)).value);
    } else {
      walk(n.operand(0), true, 0, w);
    }
  }
  return w;
}

// Producer kind of a value in memory.
enum class Maker { kFlat, kTile, kBatched, kAttention };
Maker maker_of(const Value* v) {
  const Node& n = *v->def;
  if (n.op == Op::Attention) return Maker::kAttention;
  if (n.op == Op::MulMat) return n.operand(1)->type.rank() > 2 ? Maker::kBatched : Maker::kTile;
  return Maker::kFlat;
}

Target target_of(const Value* v, Home dest) {
  const Node& n = *v->def;
  if (n.op == Op::Argmax) return {SinkKind::kArgmax, v, n.operand(0), &n, dest};
  if (quant_cast(n)) return {SinkKind::kQuant, v, n.operand(0), &n, dest};
  return {SinkKind::kStore, v, v, nullptr, dest};
}

Sink sink_of(const Target& t) {
  Sink s{t.kind, t.value, t.source, t.node, t.dest, 1};
  if (t.kind == SinkKind::kKv) s.row = t.node->operand(1)->type.dim(-1);
  if (t.kind == SinkKind::kQuant || t.kind == SinkKind::kArgmax) s.row = t.source->type.dim(-1);
  return s;
}

FlatStage Planner::make_flat(const std::vector<Target>& ts, const std::vector<const Walk*>& ws,
                             bool split) {
  FlatStage f;
  f.split = split;
  f.numel = ts[0].source->type.numel();
  int64_t align = 1, tmp_row = 0;
  std::set<const Node*> seen;
  for (size_t i = 0; i < ts.size(); ++i) {
    f.sinks.push_back(sink_of(ts[i]));
    align = std::lcm(align, ws[i]->align);
    if (ts[i].kind != SinkKind::kStore) tmp_row = std::max(tmp_row, f.sinks.back().row);
    for (auto& [n, shift] : ws[i]->rowops)
      if (seen.insert(n).second) {
        f.rowops.push_back({n, n->result()->type.dim(-1), 0, 0});
        tmp_row = std::max(tmp_row, n->result()->type.dim(-1));
      }
  }
  // Row ops of different sinks in schedule order (each sink's list is in dependency order).
  std::map<const Node*, size_t> pos;
  for (size_t i = 0; i < body_.size(); ++i) pos[body_.nodes()[i].get()] = i;
  std::sort(f.rowops.begin(), f.rowops.end(),
            [&](const RowOp& a, const RowOp& b) { return pos[a.node] < pos[b.node]; });
  // Units: whole rows of every row op and row sink; with none, rows of the common last dim, cut
  // into chunks when there are few rows (decode vectors), so every thread gets work.
  int64_t last = 0;
  for (const Sink& s : f.sinks) {
    const int64_t l = s.source->type.rank() ? s.source->type.dim(-1) : 1;
    last = last == 0 ? l : (last == l ? l : -1);
  }
  f.unit = align;
  if (align == 1 && last > 0 && f.numel % last == 0) {
    f.unit = last;
    const int64_t rows = f.numel / last;
    if (split && rows < 8 && last >= 512) f.chunks = std::min<int64_t>(16, last / 256);
  } else if (align == 1) {
    f.unit = std::gcd(f.numel, int64_t(256));
  }
  for (RowOp& r : f.rowops) r.buf = priv(uint64_t(f.unit) * 4);
  f.tmp_row = tmp_row;
  if (tmp_row) f.tmp = priv(uint64_t(tmp_row) * 8);
  return f;
}

Status Planner::build() {
  // Targets: wanted values (by their producers), result copies, kv stores.
  std::vector<Target> targets;
  for (const Value* v : want_order_) {
    Home h = plan_.homes.count(v) ? plan_.homes.at(v) : Home{Where::kShared, 0, 0};
    targets.push_back(target_of(v, h));
  }
  for (const Target& t : yield_copies_) targets.push_back(t);
  for (const Node* kv : kvs_)
    targets.push_back(
        {SinkKind::kKv, kv->result(), kv->operand(1), kv, plan_.homes.at(kv->result())});

  const bool fused = primary_ && !wanted_.count(primary_->result());
  fused_ = fused;
  for (const Value* v : want_order_) {
    tile_mm_ = primary_;
    if (!must_read(v) && !is_row_op(*v->def)) plan_.recompute.insert(v);
    tile_mm_ = nullptr;
    if (fused && depends_mm(v)) plan_.tile_values.insert(v);
  }
  std::vector<Walk> walks(targets.size());
  std::vector<bool> in_tile(targets.size(), false);
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    if (t.kind == SinkKind::kStore && t.value == t.source && maker_of(t.value) != Maker::kFlat) {
      walks[i] = analyze_value(t.value);
      continue;
    }
    if (fused && depends_mm(t.source)) {
      walks[i] = analyze(t, true);
      in_tile[i] = true;
      if (!walks[i].ok)
        return make_error("internal: tile analysis failed after planning: ", walks[i].why);
    } else {
      walks[i] = analyze(t, false);
    }
  }

  // Phases: one after every phase whose values a target reads.
  std::map<const Value*, size_t> producer;
  for (size_t i = 0; i < targets.size(); ++i) producer.emplace(targets[i].value, i);
  std::vector<int> phase(targets.size(), -1);
  std::function<int(size_t)> phase_of = [&](size_t i) -> int {
    if (phase[i] >= 0) return phase[i];
    int p = 0;
    auto reads_of = [&](size_t k) {
      for (const Value* r : walks[k].reads) {
        if (is_arg(r)) continue;
        auto it = producer.find(r);
        if (it == producer.end() || it->second == i) continue;
        if (in_tile[i] && in_tile[it->second]) continue;
        p = std::max(p, phase_of(it->second) + 1);
      }
    };
    reads_of(i);
    if (in_tile[i]) {
      // The fused tile stage is one stage: every tile target takes the latest phase of all.
      for (size_t k = 0; k < targets.size(); ++k)
        if (in_tile[k] && k != i) reads_of(k);
      if (primary_ && !x_direct(*primary_)) {
        Walk xw;
        walk(primary_->operand(0), true, 0, xw);
        for (const Value* r : xw.reads)
          if (!is_arg(r) && producer.count(r)) p = std::max(p, phase_of(producer[r]) + 1);
      } else if (primary_) {
        const Value* r = strip_free(primary_->operand(0)).value;
        if (!is_arg(r) && producer.count(r)) p = std::max(p, phase_of(producer[r]) + 1);
      }
    }
    return phase[i] = p;
  };
  int nphases = 0;
  for (size_t i = 0; i < targets.size(); ++i) nphases = std::max(nphases, phase_of(i) + 1);
  plan_.phases.assign(size_t(nphases), {});

  // Shared homes of the wanted values that are not results.
  uint64_t shared = 0;
  for (Target& t : targets)
    if (t.dest.where == Where::kShared) {
      t.dest.offset = shared;
      plan_.homes[t.value] = t.dest;
      shared += align64(t.value->type.bytes().value_or(0));
    }

  auto tile_stage = [&](const Node& mm, std::vector<size_t> members) -> Result<Stage> {
    Stage st;
    st.kind = Stage::kTile;
    TileStage& ts = st.tile;
    ts.mm = &mm;
    const DType wt = mm.operand(1)->type.dtype;
    ts.K = mm.operand(0)->type.dim(-1);
    ts.N = mm.operand(1)->type.dim(0);
    ts.M = mm.operand(0)->type.numel() / ts.K;
    ts.act = mm.attrs.dtype("act");
    ts.mk_index = mk_index_of(wt);
    ts.microkernel = opt_.microkernels && ts.mk_index >= 0 && ts.act == mk::act_type(wt);
    if (!x_direct(mm)) {
      Target xt{SinkKind::kStore, mm.operand(0), mm.operand(0), nullptr, {Where::kPrivate, 0, 0}};
      Walk xw;
      walk(mm.operand(0), true, 0, xw);
      ts.has_prologue = true;
      ts.prologue = make_flat({xt}, {&xw}, false);
      ts.prologue.sinks[0].dest.offset = priv(uint64_t(ts.M * ts.K) * 4);
    }
    if (ts.microkernel) {
      ts.xq_row = mk::act_bytes(wt, int(ts.K));
      ts.xq = priv(ts.xq_row * uint64_t(ts.M));
      plan_.uses_microkernels = true;
    } else {
      ts.wtmp = priv(uint64_t(ts.K) * 4);
      if (ts.act != DType::F32) {
        ts.rounded = true;
        ts.xr = priv(uint64_t(ts.M * ts.K) * 4);
        if (ts.act == DType::Q8_1 && (wt == DType::Q4_1 || wt == DType::Q5_1)) {
          ts.sums = true;
          ts.xs = priv(uint64_t(ts.M * ts.K / 32) * 4);
        }
      }
    }
    // Groups by (columns, shifts).
    std::map<std::pair<int64_t, std::vector<int64_t>>, size_t> key;
    for (size_t i : members) {
      const Target& t = targets[i];
      const int64_t numel = t.source->type.numel();
      std::vector<int64_t> shifts(walks[i].shifts.begin(), walks[i].shifts.end());
      auto k = std::make_pair(numel / ts.M, shifts);
      if (!key.count(k)) {
        key[k] = ts.groups.size();
        ts.groups.push_back({});
        ts.groups.back().ny = numel / ts.M;
        ts.groups.back().shifts = shifts;
      }
      TileGroup& g = ts.groups[key[k]];
      g.sinks.push_back(sink_of(t));
      g.tile = std::lcm(g.tile ? g.tile : 1, walks[i].align);
      for (auto& [n, shift] : walks[i].rowops) {
        bool dup = false;
        for (RowOp& r : g.rowops)
          if (r.node == n) {
            if (r.shift != shift) return make_error("internal: row op at two shifts");
            dup = true;
          }
        if (!dup) g.rowops.push_back({n, n->result()->type.dim(-1), shift, 0});
      }
    }
    std::map<const Node*, size_t> pos;
    for (size_t i = 0; i < body_.size(); ++i) pos[body_.nodes()[i].get()] = i;
    ts.packed = ts.microkernel && opt_.packed_weights && packable_weight(mm, ts.groups, ts.N);
    if (ts.packed) {
      const int index = int(mm.operand(1)->def->attrs.i("index"));
      if (std::find(plan_.packed_operands.begin(), plan_.packed_operands.end(), index) ==
          plan_.packed_operands.end())
        plan_.packed_operands.push_back(index);
    }
    for (TileGroup& g : ts.groups) {
      std::sort(g.rowops.begin(), g.rowops.end(),
                [&](const RowOp& a, const RowOp& b) { return pos[a.node] < pos[b.node]; });
      // Tiles hold whole rows of the row ops (g.tile so far); packed weights are read in groups
      // of mk::kPackRows rows (the last tile may end at N instead).
      if (g.ny % g.tile)
        return make_error("internal: tile alignment ", g.tile, " does not divide ", g.ny);
      const int64_t a = ts.packed ? std::lcm(g.tile, int64_t(mk::kPackRows)) : g.tile;
      // Columns per tile: a multiple of the alignment near 64 (32 for many rows), fewer when the
      // row is short, so that two threads still get several tiles each.
      const int64_t want_cols = ts.M <= 16 ? 64 : 32;
      int64_t t = a * std::max<int64_t>(1, want_cols / a);
      while (t > a && g.ny / t < 8) t -= a;
      g.tile = t;
      g.ntiles = (g.ny + t - 1) / t;
      g.tbuf = priv(uint64_t(g.shifts.size() * ts.M * t) * 4);
      int64_t tmp_row = 0;
      for (RowOp& r : g.rowops) {
        r.buf = priv(uint64_t(ts.M * t) * 4);
        tmp_row = std::max(tmp_row, r.row);
      }
      for (const Sink& s : g.sinks)
        if (s.kind == SinkKind::kKv) tmp_row = std::max(tmp_row, s.row);
      g.tmp_row = tmp_row;
      if (tmp_row) g.tmp = priv(uint64_t(tmp_row) * 8);
    }
    return st;
  };

  // Stages, phase by phase.
  std::vector<bool> done(targets.size(), false);
  for (int p = 0; p < nphases; ++p) {
    auto& stages = plan_.phases[size_t(p)];
    // The fused product with its epilogue.
    std::vector<size_t> tile_members;
    for (size_t i = 0; i < targets.size(); ++i)
      if (in_tile[i] && phase[i] == p) tile_members.push_back(i);
    if (!tile_members.empty()) {
      KILN_ASSIGN_OR_RETURN(Stage st, tile_stage(*primary_, tile_members));
      stages.push_back(std::move(st));
      for (size_t i : tile_members) done[i] = true;
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      if (done[i] || phase[i] != p) continue;
      const Target& t = targets[i];
      if (t.kind == SinkKind::kStore && t.value == t.source && maker_of(t.value) != Maker::kFlat) {
        const Node& n = *t.value->def;
        Stage st;
        switch (maker_of(t.value)) {
          case Maker::kTile: {
            KILN_ASSIGN_OR_RETURN(st, tile_stage(n, {}));
            TileGroup g;
            g.sinks.push_back(sink_of(t));
            g.shifts = {0};
            g.ny = st.tile.N;
            const int64_t want_cols = st.tile.M <= 16 ? 64 : 32;
            g.tile = std::min(want_cols, g.ny);
            if (st.tile.packed) {
              // Packed weights are read in whole groups: every tile but the last starts and ends
              // on a multiple of mk::kPackRows (halving 48 would give 24 and 12).
              const int64_t a = mk::kPackRows;
              g.tile = a * std::max<int64_t>(1, g.tile / a);
              while (g.tile > a && g.ny / g.tile < 8) g.tile -= a;
            } else {
              while (g.tile > 8 && g.ny / g.tile < 8) g.tile /= 2;
            }
            g.ntiles = (g.ny + g.tile - 1) / g.tile;
            g.tbuf = priv(uint64_t(st.tile.M * g.tile) * 4);
            st.tile.groups.push_back(std::move(g));
            break;
          }
          case Maker::kBatched:
            st.kind = Stage::kBatched;
            st.batched.node = &n;
            st.batched.wtmp = priv(uint64_t(n.operand(0)->type.dim(-1)) * 4);
            // One batch's activations rounded to mul_mat's act, and Q8_1 block sums.
            st.batched.xr =
                priv(uint64_t(n.operand(0)->type.dim(-2) * n.operand(0)->type.dim(-1)) * 4);
            st.batched.xs = priv(
                uint64_t(n.operand(0)->type.dim(-2) * n.operand(0)->type.dim(-1) / 32 + 1) * 4);
            break;
          case Maker::kAttention: {
            st.kind = Stage::kAttention;
            st.attn.node = &n;
            const ir::TensorType& q = n.operand(0)->type;
            const ir::TensorType& kc = n.operand(1)->type;
            const ir::TensorType& vc = n.operand(2)->type;
            const int64_t group = q.dim(2) / kc.dim(2);
            const int64_t units = q.dim(0) * q.dim(1) * kc.dim(2);
            st.attn.priv =
                priv(uint64_t(attention_private_floats(q.dim(3), vc.dim(3), group, kc.dim(1),
                                                       n.attrs.dtype("act") == DType::F16)) *
                     4);
            st.attn.shared_floats = attention_shared_floats(units, vc.dim(3), group);
            st.attn.shared = shared;
            shared += align64(uint64_t(st.attn.shared_floats) * 4);
            break;
          }
          default:
            break;
        }
        stages.push_back(std::move(st));
        done[i] = true;
        continue;
      }
      // Flat targets of this phase with the same element count share one stage.
      std::vector<Target> ts;
      std::vector<const Walk*> ws;
      const int64_t numel = t.source->type.numel();
      for (size_t k = i; k < targets.size(); ++k) {
        const Target& u = targets[k];
        if (done[k] || phase[k] != p || in_tile[k] || u.source->type.numel() != numel) continue;
        if (u.kind == SinkKind::kStore && u.value == u.source && maker_of(u.value) != Maker::kFlat)
          continue;
        ts.push_back(u);
        ws.push_back(&walks[k]);
        done[k] = true;
      }
      Stage st;
      st.kind = Stage::kFlat;
      st.flat = make_flat(ts, ws, true);
      stages.push_back(std::move(st));
    }
  }
  plan_.shared_bytes = shared;
  plan_.private_bytes = priv_top_;
  return Status::Ok();
}

Result<RegionPlan> Planner::run() {
  KILN_RETURN_IF_ERROR(init());
  for (int iter = 0;; ++iter) {
    if (iter > 1000) return make_error("internal: region planning does not converge");
    const size_t before = wanted_.size() + demanded_.size();
    const bool fused = primary_ && !wanted_.count(primary_->result());
    fused_ = fused;
    std::vector<Target> targets;
    for (const Value* v : want_order_) targets.push_back(target_of(v, {}));
    for (const Target& t : yield_copies_) targets.push_back(t);
    for (const Node* kv : kvs_)
      targets.push_back({SinkKind::kKv, kv->result(), kv->operand(1), kv, {}});
    bool refused = false;
    std::set<const Value*> demands;
    for (const Target& t : targets) {
      Walk w;
      if (t.kind == SinkKind::kStore && t.value == t.source && maker_of(t.value) != Maker::kFlat) {
        w = analyze_value(t.value);
      } else if (fused && depends_mm(t.source)) {
        w = analyze(t, true);
        if (!w.ok) {
          refused = true;
          break;
        }
      } else {
        w = analyze(t, false);
      }
      demands.insert(w.demands.begin(), w.demands.end());
    }
    if (refused) {
      want(primary_->result());
      continue;
    }
    for (const Value* d : demands) {
      demanded_.insert(d);
      want(d);
    }
    if (wanted_.size() + demanded_.size() == before) break;
  }
  KILN_RETURN_IF_ERROR(build());
  return std::move(plan_);
}

}  // namespace

Root strip_free(const ir::Value* v) {
  Root r{v, 0};
  while (r.value->def->op == Op::Reshape || r.value->def->op == Op::View) {
    const Node& n = *r.value->def;
    const ir::TensorType& in = n.operand(0)->type;
    if (n.op == Op::View) {
      const int64_t off = n.attrs.i("offset");
      r.offset += is_quantized(in.dtype) ? uint64_t(off / in.dim(-1)) *
                                               row_bytes(in.dtype, uint64_t(in.dim(-1))).value_or(0)
                                         : uint64_t(off) * dtype_info(in.dtype).block_bytes;
    }
    r.value = n.operand(0);
  }
  return r;
}

// kl_attention_private_floats (lib/kl_attention.cpp).
int64_t attention_private_floats(int64_t D, int64_t Dv, int64_t group, int64_t C, bool act16) {
  return 32 * (D + Dv) + group * (32 + C + D + Dv + 2) + (act16 ? 64 * Dv : 0);
}

int64_t attention_shared_floats(int64_t units, int64_t Dv, int64_t group) {
  return units < 32 ? units * 16 * group * (Dv + 2) : 0;
}

Result<RegionPlan> plan_region(const ir::Node& region, const PlanOptions& options) {
  if (!region.body) return make_error("not a region");
  KILN_ASSIGN_OR_RETURN(RegionPlan p, Planner(region, options).run());
  if (!options.packed_weights || !options.packed_values) return p;
  for (const auto& n : region.body->nodes()) {
    if (n->op != Op::GetRows || n->operand(0)->def->op != Op::Arg) continue;
    const int index = int(n->operand(0)->def->attrs.i("index"));
    if (index < 0 || index >= region.num_operands() || !mk::packable(n->operand(0)->type.dtype) ||
        !options.packed_values->count(region.operand(index)))
      continue;
    p.packed_tables.insert(n.get());
    if (std::find(p.packed_operands.begin(), p.packed_operands.end(), index) ==
        p.packed_operands.end())
      p.packed_operands.push_back(index);
  }
  return p;
}

std::string describe(const RegionPlan& p) {
  std::ostringstream os;
  auto name = [](const ir::Value* v) {
    return std::string(ir::op_name(v->def->op)) + (v->name.empty() ? "" : " %" + v->name) + " " +
           v->type.str();
  };
  auto sinks = [&](const std::vector<Sink>& ss) {
    for (const Sink& s : ss)
      os << "      sink " << int(s.kind) << " " << name(s.value) << " -> " << int(s.dest.where)
         << ":" << s.dest.index << "+" << s.dest.offset << "\n";
  };
  os << "shared=" << p.shared_bytes << " private=" << p.private_bytes
     << " mk=" << p.uses_microkernels << "\n";
  for (size_t i = 0; i < p.phases.size(); ++i) {
    os << "  phase " << i << "\n";
    for (const Stage& st : p.phases[i]) {
      switch (st.kind) {
        case Stage::kFlat:
          os << "    flat numel=" << st.flat.numel << " unit=" << st.flat.unit
             << " chunks=" << st.flat.chunks << " rowops=" << st.flat.rowops.size() << "\n";
          sinks(st.flat.sinks);
          break;
        case Stage::kTile:
          os << "    tile M=" << st.tile.M << " N=" << st.tile.N << " K=" << st.tile.K
             << " mk=" << st.tile.microkernel << " prologue=" << st.tile.has_prologue << "\n";
          for (const TileGroup& g : st.tile.groups) {
            os << "     group ny=" << g.ny << " tile=" << g.tile << " shifts=";
            for (int64_t s : g.shifts) os << s << ",";
            os << " rowops=" << g.rowops.size() << "\n";
            sinks(g.sinks);
          }
          break;
        case Stage::kAttention:
          os << "    attention\n";
          break;
        case Stage::kBatched:
          os << "    batched mul_mat\n";
          break;
      }
    }
  }
  return os.str();
}

}  // namespace kiln::cpu::plan
