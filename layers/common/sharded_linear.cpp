#include "layers/common/sharded_linear.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros_like.h>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "framework/model/documents.h"

namespace attnlab::layers {
namespace {

/// What the combine needs from the gate of one shard: `total` D [B, H, dk], the multiplicative
/// decay over the whole shard, and `readout` e^{G_t} broadcastable to q [B, H, T, dk], the decay
/// from the shard's start to token t inclusive (undefined: no gate, it is 1).
struct ShardDecay {
  at::Tensor total, readout;
};

ShardDecay shard_decay(const at::Tensor& g, const at::Tensor& q, at::ScalarType acc) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3);
  auto opts = q.options().dtype(acc);
  if (!g.defined()) return {at::ones({B, H, dk}, opts), {}};
  if (g.dim() == 1) {  // a constant log-decay per head: G_t = (t + 1) g
    at::Tensor gh = g.to(acc).view({1, H, 1, 1});
    at::Tensor readout = at::exp(gh * at::arange(1, T + 1, opts).view({1, 1, T, 1}));  // [1, H, T, 1]
    return {at::exp(gh.view({1, H, 1}) * static_cast<double>(T)).expand({B, H, dk}), readout};
  }
  at::Tensor readout = at::exp(at::cumsum(g.to(acc), 2));  // [B, H, T, dk]
  return {readout.select(2, T - 1), readout};
}

/// (S [.., dk, dv], D [.., dk]) as one tensor [.., dk, dv + 1], so each step moves one message.
at::Tensor pack(const at::Tensor& S, const at::Tensor& D) { return at::cat({S, D.unsqueeze(-1)}, -1); }
at::Tensor state_of(const at::Tensor& packed) { return packed.narrow(-1, 0, packed.size(-1) - 1); }
at::Tensor decay_of(const at::Tensor& packed) { return packed.narrow(-1, packed.size(-1) - 1, 1); }

/// The monoid product (earlier ∘ later): the later segment's decay applies to the earlier state.
at::Tensor combine(const at::Tensor& earlier, const at::Tensor& later) {
  return at::cat({decay_of(later) * state_of(earlier) + state_of(later), decay_of(earlier) * decay_of(later)}, -1);
}

/// S_in of this rank from one all-gather of every rank's packed (S, D).
at::Tensor incoming_by_gather(const at::Tensor& mine, Communicator& group) {
  at::Tensor all = gather_sequence(mine.unsqueeze(0), group, 0);  // [P, B, H, dk, dv + 1]
  at::Tensor S = at::zeros_like(state_of(mine));
  for (int64_t j = 0; j < group.rank(); ++j)
    S = decay_of(all[j]) * S + state_of(all[j]);
  return tie_to_graph(S, all);  // rank 0 reads nothing of `all`
}

/// S_in of this rank by an exclusive prefix scan: shift once (rank 0 gets the empty prefix,
/// zeros), then Hillis–Steele doubling. A zero decay only ever reaches prefixes that start at
/// rank 0, whose decay is never used again (docs/parallelism.md).
at::Tensor incoming_by_scan(const at::Tensor& mine, Communicator& group) {
  at::Tensor e = shift_ranks(mine, group, 1);
  for (int64_t d = 1; d < group.size(); d *= 2) e = combine(shift_ranks(e, group, d), e);
  return state_of(e);
}

/// This rank's shard run from a zero state: the output O⁰, and what the combine publishes.
struct LocalRun {
  at::Tensor out;    ///< [B, H, S, dv]
  at::Tensor state;  ///< [B, H, dk, dv]: the final state of the shard's last document piece
  at::Tensor reads;  ///< [B, 1, S, 1] bool: the tokens the incoming state reaches; undefined: all
  at::Tensor continues;  ///< [B, 1, 1] bool: the shard's only piece continues the previous rank's
};

/// Packed documents: each document piece of the call runs as a row of its own. Under context
/// parallelism a row's state passes on only if the shard is one piece of the document the
/// previous shard ended in (reads and continues say so; undefined on a whole sequence).
LocalRun run_pieces(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                    const kernels::LinearAttentionOptions& opts, const MixerContext& ctx) {
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), dk = q.size(3);
  const at::Tensor docs = ctx.documents.to(q.device(), at::kLong);
  TORCH_CHECK(docs.dim() == 2 && docs.size(0) == B && docs.size(1) == S, "linear attention: documents must be [B, T] = [",
              B, ", ", S, "], got ", docs.sizes());
  const DocumentRows computed = ctx.document_rows ? DocumentRows{} : document_rows(docs);
  const DocumentRows& rows = ctx.document_rows ? *ctx.document_rows : computed;
  LocalRun run;
  if (ctx.cp && ctx.cp->size() > 1) {
    // The last document id of every rank's shard, to know where the previous shard ended.
    at::Tensor last = docs.select(1, S - 1), all_last = gather_sequence(last, *ctx.cp, 0);  // [P · B]
    const int64_t r = ctx.cp->rank();
    at::Tensor before = r > 0 ? all_last.narrow(0, (r - 1) * B, B) : at::full_like(last, -1);
    run.reads = docs.eq(before.unsqueeze(1)).view({B, 1, S, 1});
    run.continues = last.eq(before).view({B, 1, 1});
  }
  if (rows.trivial) {
    auto local = kernels::linear_attention(q, k, v, g, {}, opts);
    run.out = local.out, run.state = local.final_state;
    return run;
  }
  // [B, H, S, c] -> [N, H, L, c] and back; a constant per-head gate becomes a full one, as a
  // padded row's zero log-gates must not decay its final state.
  auto rows_of = [&](const at::Tensor& x) { return to_rows(x.transpose(1, 2), rows).transpose(1, 2); };
  at::Tensor gr;
  if (g.defined()) gr = rows_of(g.dim() == 1 ? g.view({1, H, 1, 1}).expand({B, H, S, dk}) : g);
  auto pieces = kernels::linear_attention(rows_of(q), rows_of(k), rows_of(v), gr, {}, opts);
  run.out = from_rows(pieces.out.transpose(1, 2), rows).transpose(1, 2);
  at::Tensor last_piece = rows.scatter.view({B, S}).select(1, S - 1).div(rows.row_length, "floor");
  run.state = pieces.final_state.index_select(0, last_piece.to(q.device()));
  return run;
}

}  // namespace

kernels::LinearAttentionResult linear_attention_in_context(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& g,
                                                           const at::Tensor& s0,
                                                           const kernels::LinearAttentionOptions& base,
                                                           const MixerContext& ctx) {
  kernels::LinearAttentionOptions opts = base;
  opts.kernel = ctx.kernel;
  if (!ctx.cp || ctx.cp->size() == 1) {
    if (!ctx.documents.defined()) return kernels::linear_attention(q, k, v, g, s0, opts);
    TORCH_CHECK(!s0.defined(), "linear attention: an initial state cannot be combined with packed documents");
    LocalRun pieces = run_pieces(q, k, v, g, opts, ctx);  // the kernel on document rows only
    return {pieces.out, pieces.state};
  }
  TORCH_CHECK(!s0.defined(), "linear attention: an initial state cannot be combined with context parallelism");
  TORCH_CHECK(ctx.cp_strategy == CpStrategy::state_gather || ctx.cp_strategy == CpStrategy::state_scan,
              "linear attention: context-parallel strategy ", to_string(ctx.cp_strategy),
              " is not implemented; expected state_gather or state_scan");
  LocalRun local;
  if (ctx.documents.defined()) {
    local = run_pieces(q, k, v, g, opts, ctx);
  } else {
    auto whole = kernels::linear_attention(q, k, v, g, {}, opts);
    local.out = whole.out, local.state = whole.final_state;
  }
  const auto acc = local.state.scalar_type();
  const ShardDecay decay = shard_decay(g, q, acc);
  // A shard that does not continue the previous one's document passes on only its own state.
  const at::Tensor passed = local.continues.defined() ? decay.total * local.continues.to(acc) : decay.total;
  const at::Tensor mine = pack(local.state, passed);
  const at::Tensor S_in = ctx.cp_strategy == CpStrategy::state_gather ? incoming_by_gather(mine, *ctx.cp)
                                                                      : incoming_by_scan(mine, *ctx.cp);
  at::Tensor q_read = decay.readout.defined() ? q.to(acc) * decay.readout : q.to(acc);
  if (local.reads.defined()) q_read = q_read * local.reads.to(acc);
  at::Tensor out = local.out.to(acc) + at::matmul(q_read, S_in) * opts.scale;
  at::Tensor final_state = passed.unsqueeze(-1) * S_in + local.state;
  return {out.to(q.scalar_type()), final_state};
}

}  // namespace attnlab::layers
