#include "layers/gla/gla.h"

#include <ATen/ops/clamp_min.h>
#include <ATen/ops/log_sigmoid.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/silu.h>

#include <cmath>

#include "framework/model/parts.h"
#include "layers/common/sharded_linear.h"

namespace attnlab::layers {

Gla::Gla(const GlaOptions& o, const MixerShape& s) : o_(o), kv_heads_(o.kv_heads ? o.kv_heads : o.heads) {
  const auto key_dim = static_cast<int64_t>(std::lround(o.expand_k * s.dim));
  const auto value_dim = static_cast<int64_t>(std::lround(o.expand_v * s.dim));
  TORCH_CHECK(key_dim % o.heads == 0 && value_dim % o.heads == 0, "gla: key width ", key_dim,
              " and value width ", value_dim, " must be divisible by heads (", o.heads, ")");
  TORCH_CHECK(o.heads % kv_heads_ == 0, "gla: heads (", o.heads, ") must be a multiple of kv_heads (",
              kv_heads_, ")");
  dk_ = key_dim / o.heads, dv_ = value_dim / o.heads;
  state_heads_ = o.heads, state_dk_ = dk_, state_dv_ = dv_;
  kernel_ = make_kernel_options(1.0 / std::sqrt(static_cast<double>(dk_)), o.chunk_size, o.sub_chunk);
  auto lin = [](int64_t i, int64_t n, bool bias = false) { return torch::nn::LinearOptions(i, n).bias(bias); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, key_dim)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * dk_)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * dv_)));
  g_proj = register_module("g_proj", torch::nn::Linear(lin(s.dim, value_dim, o.output_gate_bias)));
  gate_down = register_module("gk_proj_down", torch::nn::Linear(lin(s.dim, o.gate_rank)));
  gate_up = register_module("gk_proj_up", torch::nn::Linear(lin(o.gate_rank, kv_heads_ * dk_, true)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(value_dim, s.dim)));
  norm_weight = register_parameter("g_norm_weight", at::ones({dv_}));
}

void Gla::init_parameters(const InitScales& s) {
  // fla's init: every matrix N(0, std), the gate's and output gate's biases zero, so the
  // initial decays are sigmoid(0)^(1/τ) and the norm's gain one (docs/mixers/gla.md).
  init_linear(q_proj, s.std);
  init_linear(k_proj, s.std);
  init_linear(v_proj, s.std);
  init_linear(g_proj, s.std);
  init_linear(gate_down, s.std);
  init_linear(gate_up, s.std);
  init_linear(o_proj, s.residual_std);
  init_constant(norm_weight, 1.0);
}

std::pair<at::Tensor, at::Tensor> Gla::mix(const at::Tensor& x, const at::Tensor& s0,
                                           const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.heads;
  at::Tensor q = to_heads(q_proj->forward(x).view({B, T, H, dk_}), H);          // [B, H, T, dk]
  at::Tensor k = to_heads(k_proj->forward(x).view({B, T, kv_heads_, dk_}), H);
  at::Tensor v = to_heads(v_proj->forward(x).view({B, T, kv_heads_, dv_}), H);  // [B, H, T, dv]
  at::Tensor g = to_heads(log_decay(x).view({B, T, kv_heads_, dk_}), H);
  auto r = linear_attention_in_context(q, k, v, g, s0, kernel_, ctx);
  // Per-head RMSNorm (fp32 statistics), then the swish output gate.
  at::Tensor o = r.out.transpose(1, 2);                                           // [B, T, H, dv]
  at::Tensor normed = rms_normalize(o, o_.norm_eps) * norm_weight.to(x.scalar_type());
  at::Tensor gate = at::silu(g_proj->forward(x)).view({B, T, H, dv_});
  return {o_proj->forward((normed * gate).reshape({B, T, H * dv_})), r.final_state};
}

at::Tensor Gla::log_decay(const at::Tensor& x) {
  // In fp32 (or fp64): the kernel's cumulative sums of log α need the range.
  const auto acc = kernels::linear_state_dtype(x.scalar_type());
  at::Tensor z = gate_up->forward(gate_down->forward(x)).to(acc);
  at::Tensor log_a = at::log_sigmoid(z) / o_.gate_temperature;
  if (o_.gate_log_min < 0) log_a = at::clamp_min(log_a, o_.gate_log_min);
  return log_a;
}

double Gla::extra_flops_per_token(int64_t /*seq_len*/) const {
  return linear_attention_flops_per_token(o_.heads, dk_, dv_, o_.chunk_size);
}

ATTNLAB_REGISTER_MIXER("gla", Gla, GlaOptions,
                       "gated linear attention: per-channel data-dependent decay, swish output gate");

}  // namespace attnlab::layers
