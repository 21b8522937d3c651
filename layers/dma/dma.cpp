#include "layers/dma/dma.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <limits>

#include "kernels/attention/reference.h"

namespace attnlab::layers {

DynamicMaskAttention::DynamicMaskAttention(const DmaOptions& o, const MixerShape& s)
    : AttentionMixer("dma", o.core, s), keep_window_(o.keep_window), exp_form_(o.bias_form == "exp") {
  dt_proj = register_module("dt_proj", torch::nn::Linear(torch::nn::LinearOptions(kv_heads_ * head_dim_, kv_heads_).bias(false)));
  A = register_parameter("A", at::zeros({kv_heads_}));
}

void DynamicMaskAttention::init_parameters(const InitScales& s) {
  AttentionMixer::init_parameters(s);
  init_linear(dt_proj, s.std);
  init_constant(A, 0.0);  // the bias starts constant (exp form: 1, linear: 0) (docs/mixers/dma.md)
}

at::Tensor DynamicMaskAttention::key_bias(const at::Tensor& /*x*/, const at::Tensor& v) {
  // v [B, T, Hkv, d] -> δ [B, T, Hkv]; in fp32 at least (the exp form overflows early in bf16).
  const int64_t B = v.size(0), T = v.size(1);
  const auto acc = v.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor delta = at::softplus(dt_proj->forward(v.reshape({B, T, kv_heads_ * head_dim_}))).to(acc);
  at::Tensor a_delta = delta * A.to(acc);
  return (exp_form_ ? at::exp(a_delta) : a_delta).to(v.scalar_type());
}

at::Tensor DynamicMaskAttention::keep_mask(const at::Tensor& bias, const kernels::AttentionSpec& spec,
                                           int64_t Tq) const {
  const int64_t B = bias.size(0), Tk = bias.size(2);
  at::NoGradGuard no_grad;  // the selection has no gradient
  at::Tensor causal = kernels::attention_visibility(spec, B, 1, 1, Tq, Tk, bias.device());  // [B|1, 1, Tq, Tk]
  if (!causal.sum(-1).gt(keep_window_).any().item<bool>()) return {};
  // Rank each row's visible keys by δ, ties towards the most recent key: a stable descending
  // sort over the key axis reversed, so equal values keep reversed (latest first) order.
  at::Tensor score = bias.to(at::kDouble).unsqueeze(2).expand({B, bias.size(1), Tq, Tk});
  score = score.masked_fill(causal.logical_not(), -std::numeric_limits<double>::infinity());
  at::Tensor order = std::get<1>(at::sort(score.flip(-1), /*stable=*/true, /*dim=*/-1, /*descending=*/true));
  at::Tensor keep = at::zeros_like(score, score.options().dtype(at::kBool));
  keep.scatter_(-1, (Tk - 1) - order.narrow(-1, 0, std::min(keep_window_, Tk)), true);
  return keep.logical_and(causal);
}

at::Tensor DynamicMaskAttention::attend(const AttendCall& call) {
  AttendCall c = call;
  c.spec.keep = keep_mask(call.key_bias, call.spec, call.q.size(2));
  c.spec.keep_block = 1;
  return run_attention(c);
}

ATTNLAB_REGISTER_MIXER("dma", DynamicMaskAttention, DmaOptions,
                       "dynamic mask attention: value-derived per-key bias and per-query top-w keys (tiled kernel)");

}  // namespace attnlab::layers
