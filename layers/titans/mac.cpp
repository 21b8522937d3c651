// titans mac, memory as context (docs/mixers/titans.md, "MAC"). The sequence is cut into
// segments of C tokens; for segment i with tokens S:
//   h   = readout(f(q(S); M_{i−1}))            every token reads the memory as it was before the segment
//   y   = attention over [P; h; S]              token r sees P, h_{≤r} and S_{≤r} (retrieval: causal)
//   M_i = the memory trained on y               keys, values and gates from y, the dual form
//   o   = RMSNorm(y) ⊙ σ(RMSNorm(readout(f(q(y); M_t))))   read after write per token
// The memory stores attention outputs, so the segments run one after the other in every layer.
// Causal alignment is interleaving: [P; h_1, s_1, h_2, s_2, ...] under plain causal attention.
// retrieval: prefix puts all of h before S, so every token sees the retrievals of the segment's
// later tokens: the future leaks (kept to show it; decoding refuses it).
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "kernels/titans/fused.h"
#include "kernels/titans/reference.h"
#include "layers/swa/swa.h"
#include "layers/titans/memory_cp.h"
#include "layers/titans/short_conv.h"
#include "layers/titans/state.h"
#include "layers/titans/titans.h"

namespace attnlab::layers {

at::Tensor Titans::mac_context(const at::Tensor& h, const at::Tensor& s) const {
  const int64_t B = s.size(0), n = s.size(1);
  const at::Tensor body = o_.retrieval == "causal" ? at::stack({h, s}, 2).reshape({B, 2 * n, dim_}) : at::cat({h, s}, 1);
  return o_.persistent > 0 ? at::cat({persistent_prefix(B, s.scalar_type()), body}, 1) : body;
}

Titans::MacCarry Titans::mac_start(const at::Tensor& x) const {
  MacCarry c;
  c.memory = memory_start(x.size(0), x.scalar_type());
  c.segment_start = c.memory.weights;
  c.y_tail = at::zeros({x.size(0), o_.conv - 1, 3 * o_.heads * head_dim_}, x.options());  // zeros = no tail
  c.context = at::zeros({x.size(0), 0, dim_}, x.options());
  return c;
}

std::pair<at::Tensor, Titans::MacCarry> Titans::mac_run(const at::Tensor& x, const at::Tensor& queries, MacCarry carry,
                                                        int64_t m, const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1), C = o_.segment;
  const kernels::MemoryKernel learn = kernels::memory_kernel(ctx.kernel, x.is_cuda());
  MixerContext inner;  // one segment's attention: a fresh sequence, positions 0.. from P
  inner.kernel = ctx.kernel, inner.training = ctx.training;
  std::vector<at::Tensor> out;
  for (int64_t t0 = 0; t0 < T;) {
    const int64_t n = std::min(C - m, T - t0);  // the rest of the current segment, or of x
    if (m == 0) carry.segment_start = carry.memory.weights, carry.context = carry.context.narrow(1, 0, 0);
    const at::Tensor s = x.narrow(1, t0, n);
    const at::Tensor q = queries.narrow(2, t0, n).to(carry.memory.weights[0].scalar_type());
    const at::Tensor h = readout(kernels::memory_apply(q, carry.segment_start, spec_.activation).to(x.scalar_type()), s);
    at::Tensor y;
    if (o_.retrieval == "causal") {  // the segment so far, then these n tokens' (h, s) pairs
      const at::Tensor pairs = at::stack({h, s}, 2).reshape({B, 2 * n, dim_});
      const at::Tensor context = at::cat({carry.context.to(x.scalar_type()), pairs}, 1);
      const at::Tensor body = o_.persistent > 0 ? at::cat({persistent_prefix(B, x.scalar_type()), context}, 1) : context;
      const at::Tensor attended = attention->forward(body, inner).narrow(1, o_.persistent + 2 * m, 2 * n);
      y = attended.reshape({B, n, 2, dim_}).select(2, 1);
      carry.context = context;
    } else {  // prefix: whole segments only (mac_forward)
      y = attention->forward(mac_context(h, s), inner).narrow(1, o_.persistent + n, n);
    }
    const at::Tensor raw = raw_projections(y);
    const Projected p = project(y, raw, carry.y_tail);
    carry.y_tail = next_conv_tail(raw, carry.y_tail, o_.conv);
    auto [read, next] = learn(p.q, p.k, p.v, p.theta, p.alpha, p.eta, carry.memory, spec_);
    carry.memory = std::move(next);
    out.push_back(gate_by_memory(y, readout(read, y)));
    t0 += n, m = (m + n) % C;
  }
  if (m == 0) carry.context = carry.context.narrow(1, 0, 0);  // x ended with its segment
  return {at::cat(out, 1), carry};
}

at::Tensor Titans::mac_forward(const at::Tensor& x, const MixerContext& ctx) {
  const int64_t B = x.size(0), S = x.size(1);
  const at::Tensor q_raw = q_proj->forward(x);
  if (!ctx.cp || ctx.cp->size() == 1)
    return mac_run(x, retrieval_queries(q_raw, at::Tensor()), mac_start(x), 0, ctx).first;
  // serial_state (docs/parallelism.md): the q conv's halo from the previous rank, then the
  // memory, the segment's start weights, the output stream's conv tail and the segment's
  // context so far handed from rank to rank (a shard edge may fall inside a segment).
  TORCH_CHECK(ctx.cp_strategy == CpStrategy::serial_state, "titans: mac's context parallelism is serial_state");
  TORCH_CHECK(o_.retrieval == "causal", "titans: mac with retrieval: prefix has no context-parallel strategy");
  ShardHalo halo;
  if (o_.conv > 1) halo = tokens_before_shard(q_raw, *ctx.cp, o_.conv - 1, 1);
  const at::Tensor queries = retrieval_queries(q_raw, halo.before);
  const size_t L = memory_init.size();
  const MacCarry first = mac_start(x);
  auto tensors = [&](const MacCarry& c) {
    std::vector<at::Tensor> all = memory_carry(c.memory);
    all.insert(all.end(), c.segment_start.begin(), c.segment_start.end());
    all.push_back(c.y_tail), all.push_back(c.context);
    return all;
  };
  auto carry_at = [&](int64_t rank) {  // m = (rank · S) mod C tokens of the segment lie before the shard
    std::vector<at::Tensor> shapes = tensors(first);
    shapes.back() = at::zeros({B, 2 * ((rank * S) % o_.segment), dim_}, x.options());
    return shapes;
  };
  auto shard = [&](const std::vector<at::Tensor>& in) {
    const int64_t r = ctx.cp->rank(), m = (r * S) % o_.segment;
    MacCarry c = first;
    if (r > 0) {
      c.memory = memory_from_carry(in, L, (r * S) % spec_.chunk);
      c.segment_start.assign(in.begin() + 3 * L, in.begin() + 4 * L);
      c.y_tail = in[4 * L], c.context = in[4 * L + 1];
    }
    auto [y, end] = mac_run(x, queries, c, m, ctx);
    return std::pair{y, tensors(end)};
  };
  return serial_chain(shard, tensors(first), carry_at, *ctx.cp, halo.exchanged);
}

at::Tensor Titans::mac_step(const at::Tensor& x_t, TitansState& s) {
  TORCH_CHECK(o_.retrieval == "causal", "titans: decoding needs retrieval: causal (prefix reads the segment's future)");
  if (s.in_segment == 0) {  // a new segment: the retrievals read the memory as it is now, the cache holds P
    s.segment_start = s.memory;
    s.attention = attention->init_state(x_t.size(0), o_.persistent + 2 * o_.segment);
    if (o_.persistent > 0) {
      const at::Tensor p = persistent_prefix(x_t.size(0), x_t.scalar_type());
      for (int64_t i = 0; i < o_.persistent; ++i) attention->step(p.select(1, i), *s.attention);
    }
  }
  const at::Tensor x = x_t.unsqueeze(1);
  const at::Tensor q_raw = q_proj->forward(x);
  const at::Tensor q = retrieval_queries(q_raw, s.conv_tail).to(s.segment_start.weights[0].scalar_type());
  s.conv_tail = next_conv_tail(q_raw, s.conv_tail, o_.conv);
  const at::Tensor h = readout(kernels::memory_apply(q, s.segment_start.weights, spec_.activation).to(x.scalar_type()), x);
  attention->step(h.squeeze(1), *s.attention);
  const at::Tensor y = attention->step(x_t, *s.attention).unsqueeze(1);
  const at::Tensor raw_y = raw_projections(y);
  const Projected p = project(y, raw_y, s.output_conv_tail);
  s.output_conv_tail = next_conv_tail(raw_y, s.output_conv_tail, o_.conv);
  auto [read, next] = kernels::memory_reference(p.q, p.k, p.v, p.theta, p.alpha, p.eta, s.memory, spec_);
  s.memory = std::move(next);
  s.in_segment = (s.in_segment + 1) % o_.segment;
  ++s.position;
  return gate_by_memory(y, readout(read, y)).squeeze(1);
}

}  // namespace attnlab::layers
