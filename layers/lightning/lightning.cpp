#include "layers/lightning/lightning.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tensor.h>

#include "framework/model/parts.h"
#include "layers/common/sharded_linear.h"
#include "layers/lightning/decay_schedule.h"

namespace attnlab::layers {

Lightning::Lightning(const LightningOptions& o, const MixerShape& s)
    : o_(o), dim_(s.dim), head_dim_(s.dim / o.heads) {
  TORCH_CHECK(s.dim % o.heads == 0, "lightning: dim (", s.dim, ") must be divisible by heads (",
              o.heads, ")");
  state_heads_ = o.heads, state_dk_ = head_dim_, state_dv_ = head_dim_;
  kernel_ = make_kernel_options(1.0, o.chunk_size, o.sub_chunk);
  auto lin = [](int64_t i, int64_t n) { return torch::nn::LinearOptions(i, n).bias(false); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  u_proj = register_module("u_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  const auto decay = lightning_log_decay(o.decay_schedule, o.heads, s.layer_index,
                                         std::max<int64_t>(s.num_layers, s.layer_index + 1));
  log_decay = register_buffer("log_decay", at::tensor(decay, at::kDouble).to(at::kFloat));
}

void Lightning::init_parameters(const InitScales& s) {
  for (auto* p : {&q_proj, &k_proj, &v_proj, &u_proj}) init_linear(*p, s.std);
  init_linear(o_proj, s.residual_std);  // log_decay is a fixed buffer (the schedule)
}

std::pair<at::Tensor, at::Tensor> Lightning::mix(const at::Tensor& x, const at::Tensor& s0,
                                                 const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.heads;
  // One GEMM for the four projections (separate parameters, so a softmax teacher's q, k, v can
  // be inherited by name).
  const at::Tensor w = at::cat({q_proj->weight, k_proj->weight, v_proj->weight, u_proj->weight});
  auto parts = at::linear(x, w).chunk(4, -1);  // 4 × [B, T, D]
  auto heads = [&](const at::Tensor& t) { return t.view({B, T, H, head_dim_}).transpose(1, 2); };
  at::Tensor q = heads(at::silu(parts[0])), k = heads(at::silu(parts[1])), v = heads(parts[2]);
  auto r = linear_attention_in_context(q, k, v, log_decay, s0, kernel_, ctx);
  // SRMSNorm over the whole concatenated width (not per head), statistics in fp32.
  at::Tensor normed = rms_normalize(r.out.transpose(1, 2).reshape({B, T, dim_}), o_.norm_eps);
  return {o_proj->forward(normed * parts[3]), r.final_state};
}

double Lightning::extra_flops_per_token(int64_t /*seq_len*/) const {
  return linear_attention_flops_per_token(o_.heads, head_dim_, head_dim_, o_.chunk_size);
}

ATTNLAB_REGISTER_MIXER("lightning", Lightning, LightningOptions,
                       "TransNormerLLM linear attention: constant per-head decay, SRMSNorm, output gate");

}  // namespace attnlab::layers
