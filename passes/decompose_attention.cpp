// decompose-attention: rewrites each `attention` into the primitive ops (docs/ir.md), for backends
// without an attention kernel and to test the interpreter's attention against its definition:
//
//   k  = get_rows(reshape(kc, [S, C*Hkv*D]), seq) -> reshape [B, C, Hkv, D] -> permute [B, Hkv, C,
//   D] v  = get_rows(reshape(vc, [S, C*Hkv*Dv]), seq) -> reshape [B, C, Hkv, Dv] -> permute [B,
//   Hkv, Dv, C] s  = mul_mat(permute(q, [B, Hq, T, D]), k)               [B, Hq, T, C]
//   (grouped-query: the
//                                                             batch dim Hq reads kv head
//                                                             h/(Hq/Hkv))
//   p  = softmax(s, reshape(attn_mask(pos), [B, 1, T, C]), scale, softcap)
//   y  = permute(mul_mat(p, v), [B, T, Hq, Dv])
//
// Both mul_mats take the attention's `act`: q and p are their activations.
//
// A quantized cache cannot be flattened to rows of C*H*D (its blocks run along D), so attention
// over such a cache is an error here.
#include "ir/builder.h"
#include "passes/graph_util.h"
#include "passes/pass_manager.h"

namespace kiln::passes {

using ir::Graph;
using ir::Node;
using ir::Op;
using ir::Value;

Status run_decompose_attention(Graph& g, PassContext& ctx) {
  for (Node* n : g.nodes_of(Op::Attention)) {
    Value* q = n->operand(0);
    Value* kc = n->operand(1);
    Value* vc = n->operand(2);
    Value* pos = n->operand(3);
    Value* seq = n->operand(4);
    const int64_t B = q->type.dim(0), T = q->type.dim(1), D = q->type.dim(3);
    const int64_t S = kc->type.dim(0), C = kc->type.dim(1), Hkv = kc->type.dim(2),
                  Dv = vc->type.dim(3);
    ir::Builder b(g);
    b.insert_before(n);
    Value* k = b.get_rows(b.reshape(kc, {S, C * Hkv * D}), seq);
    k = b.permute(b.reshape(k, {B, C, Hkv, D}), {0, 2, 1, 3});
    Value* v = b.get_rows(b.reshape(vc, {S, C * Hkv * Dv}), seq);
    v = b.permute(b.reshape(v, {B, C, Hkv, Dv}), {0, 2, 3, 1});
    // `act` (the precision of q and of the probabilities in the two products) is mul_mat's
    // precision of its activations, which q and p are.
    DType act = n->attrs.dtype("act");
    Value* s = b.mul_mat(b.permute(q, {0, 2, 1, 3}), k, act);
    Value* mask = b.reshape(b.attn_mask(pos, C, n->attrs.i("window")), {B, 1, T, C});
    Value* p = b.softmax(s, mask, n->attrs.f("scale"), n->attrs.f("softcap"));
    Value* y = b.permute(b.mul_mat(p, v, act), {0, 2, 1, 3});
    if (!b.ok()) return b.status().error().wrap("attention " + std::to_string(n->result()->id));
    g.replace_all_uses(n->result(), y);
    move_name(g, n->result(), y);
    g.erase(n);
    ctx.bump("decompose-attention.rewritten");
  }
  return Status::Ok();
}

}  // namespace kiln::passes
