// One block of the language model: a mixer and an MLP with norms and residuals placed by the
// layout named in model.block (docs/model.md, "Blocks as data"). Parameter names follow HF
// Llama: input_layernorm (the mixer sub-layer's norm), mixer, post_attention_layernorm (the
// MLP sub-layer's norm), mlp.
#pragma once
#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "framework/config/run_config.h"
#include "framework/model/layouts.h"
#include "framework/model/mixer.h"
#include "framework/model/parts.h"

namespace attnlab {

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& cfg, const MixerSpec& spec, int64_t index);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx);
  at::Tensor step(const at::Tensor& x_t, MixerState& state);
  /// Every part's own init, in registration order.
  void init_parameters(const InitScales& s);

  std::shared_ptr<Norm> input_layernorm, post_attention_layernorm;  ///< the second null for 1-norm layouts
  std::shared_ptr<Mixer> mixer;
  std::shared_ptr<Mlp> mlp;
  std::string mixer_type;

 private:
  BlockParts parts() const;
  const LayoutEntry* layout_;
  bool mixer_residual_;
  int64_t index_;
};
TORCH_MODULE(Block);

}  // namespace attnlab
