// Decoder-only language model: token embedding (+ positional embedding) -> N blocks assembled
// from model.block (framework/model/block.h) -> final norm when the layout wants one -> head
// (tied to the embedding by default). Block i's mixer is model.pattern[i % len].
// Parameter names follow HF Llama: model.embed_tokens, model.embed_positions, model.layers.{i}.*,
// model.norm, lm_head.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "framework/config/run_config.h"
#include "framework/model/block.h"
#include "framework/model/mixer.h"

namespace attnlab {

/// Decoding state of the whole model: one MixerState per block.
struct ModelState {
  std::vector<std::unique_ptr<MixerState>> layers;
  int64_t position = 0;  ///< tokens consumed (the next token's position)
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

  /// Each part's own init in registration order (docs/model.md, "Parameter init"), drawing from
  /// the global torch generator; the constructor calls it.
  void init_parameters();
  int64_t num_parameters() const;
  /// Forward+backward FLOPs per token (6N plus attention-score terms), for MFU.
  double train_flops_per_token(int64_t seq_len) const;
  const ModelConfig& config() const { return cfg_; }

  torch::nn::Embedding embed_tokens{nullptr};
  std::shared_ptr<PositionEmbedding> embed_positions;  ///< null for model.positions: none
  std::vector<Block> layers;
  std::shared_ptr<Norm> norm;  ///< null when the layout normalises every block's output
  torch::nn::Linear lm_head{nullptr};  // null when tied

 private:
  at::Tensor head(const at::Tensor& h);
  /// Token embedding plus, with learned positions, the embedding of `positions`.
  at::Tensor embed(const at::Tensor& tokens, const at::Tensor& positions);

  ModelConfig cfg_;
};
TORCH_MODULE(LanguageModel);

}  // namespace attnlab
