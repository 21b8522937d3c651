#include "layers/sigmoid/sigmoid_attention.h"

#include <ATen/ops/full.h>
#include <torch/nn/init.h>

#include <cmath>

namespace attnlab::layers {

SigmoidAttention::SigmoidAttention(const SigmoidOptions& o, const MixerShape& s)
    : AttentionMixer("sigmoid", o.core, s), layer_scale_(o.layer_scale) {
  const int64_t n = o.bias_n ? o.bias_n : s.max_seq_len;
  TORCH_CHECK(n >= 1, "sigmoid: bias_n is 0 and model.max_seq_len (", s.max_seq_len,
              ") is not set; give bias_n (b = -ln n)");
  bias_ = -std::log(static_cast<double>(n));  // a constant, fixed for every length and mask
  if (o.hybrid_norm) out_norm = register_module("out_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.dim})));
  if (layer_scale_ > 0) gamma = register_parameter("layer_scale", at::full({s.dim}, layer_scale_));
}

void SigmoidAttention::init_parameters(const InitScales& s) {
  AttentionMixer::init_parameters(s);
  if (out_norm) init_layer_norm(out_norm);
  if (gamma.defined()) init_constant(gamma, layer_scale_);
}

kernels::AttentionSpec SigmoidAttention::base_spec() const {
  kernels::AttentionSpec s = AttentionMixer::base_spec();
  s.transform = kernels::ScoreTransform::sigmoid;
  s.sigmoid_bias = bias_;
  return s;
}

at::Tensor SigmoidAttention::stabilise(const at::Tensor& y) {
  at::Tensor out = out_norm ? out_norm->forward(y) : y;
  return gamma.defined() ? out * gamma : out;
}

at::Tensor SigmoidAttention::forward(const at::Tensor& x, const MixerContext& ctx) {
  return stabilise(AttentionMixer::forward(x, ctx));
}

at::Tensor SigmoidAttention::step(const at::Tensor& x_t, MixerState& state) {
  return stabilise(AttentionMixer::step(x_t, state));
}

ATTNLAB_REGISTER_MIXER("sigmoid", SigmoidAttention, SigmoidOptions,
                       "unnormalised sigmoid attention, b = -ln n, QK-norm and hybrid-norm (tiled kernel)");

}  // namespace attnlab::layers
