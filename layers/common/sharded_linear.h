// The linear-attention recurrence of kernels/linear/api.h with the sequence split across a
// context-parallel group (docs/parallelism.md, "state_gather and state_scan"). Rank r holds the
// contiguous shard r. Each rank runs its shard from a zero state, giving its local output O⁰
// and final state S_r, and its whole-shard decay D_r (e^{Σ g} per key channel; 1 without a gate).
// The state entering shard r is
//   S_in(r) = Σ_{j<r} (Π_{j<m<r} D_m) ⊙ S_j       (D scales the dk rows of S)
// and, by linearity of the recurrence, its output is O⁰ + scale · (q ⊙ e^{G}) S_in(r), with G the
// cumulative log-gate from the shard's start. state_gather: one all-gather of every (S_j, D_j),
// then the fold above. state_scan: the same monoid (D₁, S₁)∘(D₂, S₂) = (D₁D₂, D₂ ⊙ S₁ + S₂) as a
// Hillis–Steele prefix scan, 1 + ⌈log₂ P⌉ point-to-point shifts. Both are differentiable through
// the collectives, so the backward is the suffix combine of the state gradients.
// Packed documents (ctx.documents): each document piece of the shard runs as a row of its own;
// the published state is that of the shard's last piece, its decay is zeroed unless the shard
// is a single piece continuing the previous shard's last document, and the incoming state is
// read only by the tokens of that document.
#pragma once
#include <ATen/core/Tensor.h>

#include "framework/model/mixer.h"
#include "kernels/linear/api.h"

namespace attnlab::layers {

/// kernels::linear_attention with this call's kernel choice; under context parallelism (ctx.cp
/// of more than one rank) the sharded form above with ctx.cp_strategy (state_gather or
/// state_scan; no initial state allowed). final_state is the state after this rank's shard.
kernels::LinearAttentionResult linear_attention_in_context(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& g,
                                                           const at::Tensor& initial_state,
                                                           const kernels::LinearAttentionOptions& opts,
                                                           const MixerContext& ctx);

/// The strategies linear_attention_in_context implements, state_gather first (the default).
inline std::vector<CpStrategy> linear_cp_strategies() {
  return {CpStrategy::state_gather, CpStrategy::state_scan};
}

}  // namespace attnlab::layers
