// ssa: Sparse Sparse Attention (Shen et al. 2025; docs/mixers/ssa.md). Every layer runs two
// streams in training: full causal softmax attention and NSA-style block-sparse attention
// (the query's own block plus the top block_count mean-pooled key blocks, shared by a kv
// head's query heads), both gated per (token, head) by σ(g_proj x). A layer-wise alignment
// loss pulls the two together; each forward continues with one of them, drawn at random
// (full with probability full_prob). At evaluation and decode the `inference` knob picks the
// stream; only the selected blocks are visited by the kernel.
#pragma once
#include <torch/nn/modules/linear.h>

#include "layers/common/attention_mixer.h"

namespace attnlab::layers {

struct SsaOptions {
  AttentionCoreOptions core;
  int64_t block_size = 16;
  int64_t block_count = 16;
  double align_weight = 10.0;
  double full_prob = 0.5;
  std::string inference = "sparse";
  template <class V> void visit(V& v) {
    core.visit(v);
    v("block_size", block_size, "keys per selection block B_s", Bounds{1, 256});
    v("block_count", block_count, "blocks each query attends to (its own included), S", Bounds{1, 1e6});
    v("align_weight", align_weight, "weight of the alignment loss (mean over layers)", Bounds{0, 1e6});
    v("full_prob", full_prob, "training: probability that a forward continues with the full stream",
      Bounds{0, 1});
    v("inference", inference, "stream used at evaluation and decoding", OneOf{{"sparse", "full"}});
  }
};

class SparseSparseAttention : public AttentionMixer {
 public:
  SparseSparseAttention(const SsaOptions& opts, const MixerShape& shape);
  std::vector<AuxLoss> aux_losses() override;
  /// Blocks index the whole sequence, so packed documents run as separate rows.
  bool handles_documents() const override { return false; }
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;

  torch::nn::Linear g_proj{nullptr};  ///< D -> H output gates

 protected:
  at::Tensor output_gates(const at::Tensor& x, const MixerContext& ctx) override;
  at::Tensor attend(const AttendCall& call) override;

 private:
  int64_t block_, count_, layers_;
  double align_weight_, full_prob_;
  bool sparse_inference_;
  at::Tensor align_;  // the last training forward's alignment loss
};

}  // namespace attnlab::layers
