// sigmoid: unnormalised sigmoid attention (Ramapuram et al. 2024; docs/mixers/sigmoid.md).
// Weights σ(q·k/√d + b) with no row normalisation and b = −ln n, n = the training context
// (model.max_seq_len) unless bias_n says otherwise; QK-norm on by default. Hybrid-norm
// (a LayerNorm on the attention output before the residual add) and LayerScale (a learned
// per-channel gain, initialised small) are the stabilisers the paper pairs with it.
#pragma once
#include <torch/nn/modules/normalization.h>

#include "layers/common/attention_mixer.h"

namespace attnlab::layers {

struct SigmoidOptions {
  AttentionCoreOptions core{.qk_norm = true};
  int64_t bias_n = 0;
  bool hybrid_norm = true;
  double layer_scale = 0.0;
  template <class V> void visit(V& v) {
    core.visit(v);
    v("bias_n", bias_n, "n of the logit bias b = -ln n; 0 = model.max_seq_len, 1 = no bias", Bounds{0, 1e12});
    v("hybrid_norm", hybrid_norm, "LayerNorm on the attention output before the residual add");
    v("layer_scale", layer_scale, "initial per-channel output gain (LayerScale); 0 = off", Bounds{0, 10});
  }
};

class SigmoidAttention : public AttentionMixer {
 public:
  SigmoidAttention(const SigmoidOptions& opts, const MixerShape& shape);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  void init_parameters(const InitScales& s) override;
  double bias() const { return bias_; }

  torch::nn::LayerNorm out_norm{nullptr};
  at::Tensor gamma;  ///< LayerScale gain [D], when layer_scale > 0

 protected:
  kernels::AttentionSpec base_spec() const override;

 private:
  at::Tensor stabilise(const at::Tensor& y);
  double bias_, layer_scale_;
};

}  // namespace attnlab::layers
