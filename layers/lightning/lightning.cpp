#include "layers/lightning/lightning.h"

#include <ATen/ops/rsqrt.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include "layers/common/linear_state.h"
#include "layers/lightning/decay_schedule.h"

namespace attnlab::layers {

Lightning::Lightning(const LightningOptions& o, const MixerShape& s)
    : o_(o), dim_(s.dim), head_dim_(s.dim / o.heads) {
  TORCH_CHECK(s.dim % o.heads == 0, "lightning: dim (", s.dim, ") must be divisible by heads (",
              o.heads, ")");
  TORCH_CHECK(o.chunk_size % o.sub_chunk == 0, "lightning: sub_chunk (", o.sub_chunk,
              ") must divide chunk_size (", o.chunk_size, ")");
  auto lin = [](int64_t i, int64_t n) { return torch::nn::LinearOptions(i, n).bias(false); };
  qkvu_proj = register_module("qkvu_proj", torch::nn::Linear(lin(s.dim, 4 * s.dim)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(s.dim, s.dim)));
  const auto decay = lightning_log_decay(o.decay_schedule, o.heads, s.layer_index,
                                         std::max<int64_t>(s.num_layers, s.layer_index + 1));
  log_decay = register_buffer("log_decay", at::tensor(decay, at::kDouble).to(at::kFloat));
}

std::pair<at::Tensor, at::Tensor> Lightning::mix(const at::Tensor& x, const at::Tensor& s0,
                                                 const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.heads;
  auto parts = qkvu_proj->forward(x).chunk(4, -1);  // 4 × [B, T, D]
  auto heads = [&](const at::Tensor& t) { return t.view({B, T, H, head_dim_}).transpose(1, 2); };
  at::Tensor q = heads(at::silu(parts[0])), k = heads(at::silu(parts[1])), v = heads(parts[2]);
  auto r = kernels::linear_attention(q, k, v, log_decay.to(kernels::linear_state_dtype(x.scalar_type())), s0,
                                     linear_kernel_options(ctx, 1.0, o_.chunk_size, o_.sub_chunk));
  // SRMSNorm over the whole concatenated width (not per head), statistics in fp32.
  at::Tensor o = r.out.transpose(1, 2).reshape({B, T, dim_});
  at::Tensor of = o.to(kernels::linear_state_dtype(x.scalar_type()));
  at::Tensor normed = (of * at::rsqrt(of.pow(2).mean(-1, true) + o_.norm_eps)).to(x.scalar_type());
  return {o_proj->forward(normed * parts[3]), r.final_state};
}

at::Tensor Lightning::forward(const at::Tensor& x, const MixerContext& ctx) {
  return mix(x, {}, ctx).first;
}

std::unique_ptr<MixerState> Lightning::init_state(int64_t batch, int64_t /*max_len*/) {
  auto s = std::make_unique<LinearState>();
  const auto dt = kernels::linear_state_dtype(qkvu_proj->weight.scalar_type());
  s->S = at::zeros({batch, o_.heads, head_dim_, head_dim_}, qkvu_proj->weight.options().dtype(dt));
  return s;
}

at::Tensor Lightning::step(const at::Tensor& x_t, MixerState& state) {
  auto& st = static_cast<LinearState&>(state);
  auto [y, S] = mix(x_t.unsqueeze(1), st.S, MixerContext{false, "recurrent"});
  st.S = S, st.position += 1;
  return y.squeeze(1);
}

double Lightning::extra_flops_per_token(int64_t /*seq_len*/) const {
  const double d = static_cast<double>(head_dim_);
  return o_.heads * (2.0 * (2.0 * d * d) + 2.0 * (o_.chunk_size / 2.0) * (2.0 * d));
}

ATTNLAB_REGISTER_MIXER("lightning", Lightning, LightningOptions,
                       "TransNormerLLM linear attention: constant per-head decay, SRMSNorm, output gate");

}  // namespace attnlab::layers
