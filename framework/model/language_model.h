// Decoder-only language model: embedding -> N pre-norm blocks (RMSNorm, mixer, RMSNorm, SwiGLU,
// residuals) -> final RMSNorm -> head (tied to the embedding by default). Block i's mixer is
// model.pattern[i % len] built through the mixer registry.
// Parameter names follow HF Llama: model.embed_tokens, model.layers.{i}.{input_layernorm,
// mixer, post_attention_layernorm, mlp}, model.norm, lm_head.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/model/blocks.h"
#include "framework/model/mixer.h"

namespace attnlab {

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& cfg, const MixerSpec& spec, int64_t index);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx);
  at::Tensor step(const at::Tensor& x_t, MixerState& state);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  std::shared_ptr<Mixer> mixer;
  SwiGLU mlp{nullptr};
  std::string mixer_type;
};
TORCH_MODULE(Block);

/// Decoding state of the whole model: one MixerState per block.
struct ModelState {
  std::vector<std::unique_ptr<MixerState>> layers;
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const ModelConfig& cfg);
  /// tokens [B, T] (int64) -> logits [B, T, V] (fp32).
  at::Tensor forward(const at::Tensor& tokens, const MixerContext& ctx);
  /// The mixers' auxiliary losses of the last forward, one per name (summed over blocks; the
  /// weight is the first block's).
  std::vector<AuxLoss> aux_losses();
  ModelState init_state(int64_t batch, int64_t max_len);
  /// tokens [B] -> logits [B, V] for the next position.
  at::Tensor step(const at::Tensor& tokens, ModelState& state);

  int64_t num_parameters() const;
  /// Forward+backward FLOPs per token (6N plus attention-score terms), for MFU.
  double train_flops_per_token(int64_t seq_len) const;
  const ModelConfig& config() const { return cfg_; }

  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<Block> layers;
  RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied

 private:
  at::Tensor head(const at::Tensor& h);
  void init_weights(double std);
  ModelConfig cfg_;
};
TORCH_MODULE(LanguageModel);

}  // namespace attnlab
