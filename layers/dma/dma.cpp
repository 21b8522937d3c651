#include "layers/dma/dma.h"

#include <ATen/ops/exp.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/zeros.h>

#include "layers/dma/top_keys.h"

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

at::Tensor DynamicMaskAttention::attend(const AttendCall& call) {
  AttendCall c = call;
  c.spec.key_until = top_keys_until(call.key_bias, call.spec, keep_window_);
  return run_attention(c);
}

ATTNLAB_REGISTER_MIXER("dma", DynamicMaskAttention, DmaOptions,
                       "dynamic mask attention: value-derived per-key bias and per-query top-w keys (tiled kernel)");

}  // namespace attnlab::layers
