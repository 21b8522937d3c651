// moh: Mixture-of-Head attention (Jin et al. 2024; docs/mixers/moh.md). Causal softmax
// attention whose per-head outputs are gated before Wo: h_s shared heads always on, and each
// token routes to top_k of the other E = H − h_s heads (the released code's two-stage gates, so
// with uniform routing and every head active the layer equals plain attention). Unrouted
// (token, head) rows have gate 0 and the tiled kernel never computes them. A load-balance loss
// E·Σ_i P_i f_i per layer (divided by the model's layer count, weight balance_weight) is
// reported as train/aux/moh_balance.
#pragma once
#include <torch/nn/modules/linear.h>

#include "layers/common/attention_mixer.h"

namespace attnlab::layers {

struct MohOptions {
  AttentionCoreOptions core;
  int64_t shared_heads = 2;
  int64_t top_k = 1;
  std::string router = "learned";
  double balance_weight = 0.01;
  template <class V> void visit(V& v) {
    core.visit(v);
    v("shared_heads", shared_heads, "heads every token uses (h_s)", Bounds{0, 4096});
    v("top_k", top_k, "routed heads each token activates, of heads - shared_heads", Bounds{0, 4096});
    v("router", router,
      "learned: two-stage softmax gates from x; query_norm: parameter-free top-k of the routed heads' "
      "query norms, binary gates (MoH-LLaMA3)",
      OneOf{{"learned", "query_norm"}});
    v("balance_weight", balance_weight, "weight of the load-balance loss", Bounds{0, 1e3});
  }
};

class MixtureOfHeads : public AttentionMixer {
 public:
  MixtureOfHeads(const MohOptions& opts, const MixerShape& shape);
  std::vector<AuxLoss> aux_losses() override;
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;

  torch::nn::Linear router_routed{nullptr};  ///< W_r: D -> E
  torch::nn::Linear router_shared{nullptr};  ///< W_s: D -> h_s (h_s > 1)
  torch::nn::Linear router_groups{nullptr};  ///< W_h: D -> 2 (shared and routed both present)

 protected:
  at::Tensor output_gates(const at::Tensor& x, const MixerContext& ctx) override;
  bool skip_zero_gates() const override { return true; }

 private:
  /// The routed heads' probabilities p [B, T, E] (learned) or scores (query_norm).
  at::Tensor routing_scores(const at::Tensor& x);
  int64_t shared_, routed_, top_k_, layers_;
  bool learned_;
  double balance_weight_;
  at::Tensor balance_;  // the last training forward's load-balance loss
};

}  // namespace attnlab::layers
