// dma: Dynamic Mask Attention (Shi et al. 2025, Doge; docs/mixers/dma.md). Causal softmax
// attention plus a learned per-key bias computed from the values (the zero-order-hold form),
//   dt_j = W_Δ v̄_j,  Δ_j = softplus(dt_j),  δ_j = exp(A ⊙ Δ_j)  (or A ⊙ Δ_j, bias_form: linear),
// added to every query's logit of key j, and a dynamic mask: each query keeps only the
// `keep_window` causal keys of largest (detached) δ, ties broken towards recent keys (Doge's
// per-row semantics, so row i keeps min(w, i + 1) keys). With T ≤ keep_window nothing is masked.
#pragma once
#include <torch/nn/modules/linear.h>

#include "layers/common/attention_mixer.h"

namespace attnlab::layers {

struct DmaOptions {
  AttentionCoreOptions core;
  int64_t keep_window = 2048;
  std::string bias_form = "exp";
  template <class V> void visit(V& v) {
    core.visit(v);
    v("keep_window", keep_window, "keys each query keeps (top-w of the bias among its causal keys)",
      Bounds{1, 1e9});
    v("bias_form", bias_form, "delta = exp(A * softplus(dt)) (paper, Doge) or A * softplus(dt) (FSA)",
      OneOf{{"exp", "linear"}});
  }
};

class DynamicMaskAttention : public AttentionMixer {
 public:
  DynamicMaskAttention(const DmaOptions& opts, const MixerShape& shape);
  void init_parameters(const InitScales& s) override;

  torch::nn::Linear dt_proj{nullptr};  ///< W_Δ: Hkv·d -> Hkv
  at::Tensor A;                        ///< [Hkv], initialised to 0 (the bias starts constant)

  int64_t keep_window() const { return keep_window_; }

 protected:
  at::Tensor key_bias(const at::Tensor& x, const at::Tensor& v) override;
  at::Tensor attend(const AttendCall& call) override;

 private:
  int64_t keep_window_;
  bool exp_form_;
};

}  // namespace attnlab::layers
