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

#include <algorithm>
#include <vector>

#include "framework/dist/communicator.h"
#include "kernels/titans/fused.h"
#include "kernels/titans/reference.h"
#include "layers/swa/swa.h"
#include "layers/titans/short_conv.h"
#include "layers/titans/state.h"
#include "layers/titans/titans.h"

namespace attnlab::layers {

at::Tensor Titans::mac_context(const at::Tensor& h, const at::Tensor& s) const {
  const int64_t B = s.size(0), n = s.size(1);
  const at::Tensor body = o_.retrieval == "causal" ? at::stack({h, s}, 2).reshape({B, 2 * n, dim_}) : at::cat({h, s}, 1);
  return o_.persistent > 0 ? at::cat({persistent_prefix(B, s.scalar_type()), body}, 1) : body;
}

at::Tensor Titans::mac_forward(const at::Tensor& x, const MixerContext& ctx) {
  TORCH_CHECK(!ctx.cp || ctx.cp->size() == 1, "titans: mac has no context-parallel strategy (sequential over segments)");
  const int64_t B = x.size(0), T = x.size(1), C = o_.segment;
  const kernels::MemoryKernel learn = kernels::memory_kernel(ctx.kernel, x.is_cuda());
  const at::Tensor queries = retrieval_queries(q_proj->forward(x), at::Tensor());  // [B, H, T, d]
  kernels::MemoryState memory = memory_start(B, x.scalar_type());
  MixerContext inner;  // one segment's attention: a fresh sequence, positions 0.. from P
  inner.kernel = ctx.kernel, inner.training = ctx.training;
  at::Tensor y_tail;  // the conv tail of the attention-output stream
  std::vector<at::Tensor> out;
  for (int64_t t0 = 0; t0 < T; t0 += C) {
    const int64_t n = std::min(C, T - t0);
    const at::Tensor s = x.narrow(1, t0, n);
    const at::Tensor q = queries.narrow(2, t0, n).to(memory.weights[0].scalar_type());
    const at::Tensor h = readout(kernels::memory_apply(q, memory.weights, spec_.activation).to(x.scalar_type()), s);
    const at::Tensor attended = attention->forward(mac_context(h, s), inner).narrow(1, o_.persistent, 2 * n);
    const at::Tensor y = o_.retrieval == "causal" ? attended.reshape({B, n, 2, dim_}).select(2, 1)
                                                  : attended.narrow(1, n, n);
    const at::Tensor raw = raw_projections(y);
    const Projected p = project(y, raw, y_tail);
    y_tail = next_conv_tail(raw, y_tail, o_.conv);
    auto [read, next] = learn(p.q, p.k, p.v, p.theta, p.alpha, p.eta, memory, spec_);
    memory = std::move(next);
    out.push_back(gate_by_memory(y, readout(read, y)));
  }
  return at::cat(out, 1);
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
