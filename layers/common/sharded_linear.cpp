#include "layers/common/sharded_linear.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros_like.h>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"

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

}  // namespace

kernels::LinearAttentionResult linear_attention_in_context(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& g,
                                                           const at::Tensor& s0,
                                                           const kernels::LinearAttentionOptions& base,
                                                           const MixerContext& ctx) {
  kernels::LinearAttentionOptions opts = base;
  opts.kernel = ctx.kernel;
  if (!ctx.cp || ctx.cp->size() == 1) return kernels::linear_attention(q, k, v, g, s0, opts);
  TORCH_CHECK(!s0.defined(), "linear attention: an initial state cannot be combined with context parallelism");
  TORCH_CHECK(ctx.cp_strategy == CpStrategy::state_gather || ctx.cp_strategy == CpStrategy::state_scan,
              "linear attention: context-parallel strategy ", to_string(ctx.cp_strategy),
              " is not implemented; expected state_gather or state_scan");
  kernels::LinearAttentionResult local = kernels::linear_attention(q, k, v, g, {}, opts);
  const auto acc = local.final_state.scalar_type();
  const ShardDecay decay = shard_decay(g, q, acc);
  const at::Tensor mine = pack(local.final_state, decay.total);
  const at::Tensor S_in = ctx.cp_strategy == CpStrategy::state_gather ? incoming_by_gather(mine, *ctx.cp)
                                                                      : incoming_by_scan(mine, *ctx.cp);
  at::Tensor q_read = decay.readout.defined() ? q.to(acc) * decay.readout : q.to(acc);
  at::Tensor out = local.out.to(acc) + at::matmul(q_read, S_in) * opts.scale;
  at::Tensor final_state = decay.total.unsqueeze(-1) * S_in + local.final_state;
  return {out.to(q.scalar_type()), final_state};
}

}  // namespace attnlab::layers
