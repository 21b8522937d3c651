// hedgehog: normalised linear attention with learned per-head feature maps (Zhang et al. 2024;
// docs/mixers/hedgehog.md), optionally the LoLCATs sliding-window + linear hybrid used
// when converting softmax checkpoints. q = RoPE(x Wq), k = RoPE(x Wk), v = x Wv (GQA allowed);
// φ after RoPE; y = normalised linear attention (or the hybrid) of (φq(q), φk(k), v), then Wo.
// Decoding keeps S = Σ φk vᵀ and z = Σ φk (fp32), plus the last `window` raw k, v for the hybrid.
#pragma once
#include <torch/nn/modules/linear.h>

#include "framework/model/mixer.h"
#include "kernels/linear/api.h"
#include "layers/hedgehog/feature_map.h"
#include "layers/hedgehog/hybrid_attention.h"

namespace attnlab::layers {

struct HedgehogOptions {
  int64_t heads = 4;
  int64_t kv_heads = 0;        ///< GQA; 0 = heads
  int64_t head_dim = 0;        ///< 0: dim / heads
  int64_t feature_dim = 0;     ///< f (φ has width 2f); 0: head_dim / 2 (LoLCATs: 64 for d = 128)
  std::string feature_map = "softmax_dim";  ///< softmax_dim | exp_dim | joint_softmax
  bool tie_qk = false;         ///< one feature map for q and k
  bool rope = true;            ///< RoPE on q, k before φ (needed to convert RoPE models)
  double rope_base = 10000.0;
  int64_t window = 0;          ///< sliding softmax window w of the hybrid; 0 = pure linear
  double window_factor_init = 0.1;  ///< γ_h = sigmoid(θ_h) at init (LoLCATs "w01")
  double eps = 1e-12;          ///< denominator eps of the pure linear form
  int64_t chunk_size = 64;
  int64_t sub_chunk = 16;
  template <class V> void visit(V& v) {
    v("heads", heads, "heads H", Bounds{1, 1024});
    v("kv_heads", kv_heads, "key/value heads (GQA); 0 = heads", Bounds{0, 1024});
    v("head_dim", head_dim, "per-head width d; 0 = dim / heads", Bounds{0, 4096});
    v("feature_dim", feature_dim, "feature map width f (phi has 2f); 0 = head_dim / 2", Bounds{0, 4096});
    v("feature_map", feature_map, "phi: softmax_dim | exp_dim | joint_softmax (different models)",
      OneOf{{"softmax_dim", "exp_dim", "joint_softmax"}});
    v("tie_qk", tie_qk, "share one feature map between q and k");
    v("rope", rope, "rotary embedding on q, k before the feature maps");
    v("rope_base", rope_base, "RoPE base frequency", Bounds{1, 1e9});
    v("window", window, "sliding softmax window of the LoLCATs hybrid; 0 = off", Bounds{0, 1 << 20});
    v("window_factor_init", window_factor_init, "initial sigmoid(theta_h) of the window", Bounds{1e-6, 0.999999});
    v("eps", eps, "denominator eps (pure linear form)", Bounds{0, 1});
    v("chunk_size", chunk_size, "kernel chunk size C", Bounds{1, 4096});
    v("sub_chunk", sub_chunk, "kernel sub-chunk size c (divides chunk_size)", Bounds{1, 4096});
  }
};

class Hedgehog : public Mixer {
 public:
  Hedgehog(const HedgehogOptions& opts, const MixerShape& shape);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  /// The linear sums are sharded (state_gather / state_scan); the window takes a halo.
  std::vector<CpStrategy> cp_strategies() const override;
  /// Masks and resets by document itself (positions restart per document).
  bool handles_documents() const override { return true; }
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;
  /// Converting softmax: q, k, v, o are the teacher's; the feature maps (and window factors) are
  /// what attention transfer trains (docs/conversion.md).
  AttentionTakeover attention_takeover() const override {
    return {{"q_proj.", "k_proj.", "v_proj.", "o_proj."}, {}, true};
  }
  /// The linear (or hybrid) attention's normalised weights [B, H, T, T], from the T×T forms.
  at::Tensor attention_weights(const at::Tensor& x, const MixerContext& ctx) override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  HedgehogFeatureMap q_map{nullptr}, k_map{nullptr};
  at::Tensor window_logit;  ///< [H] θ_h (hybrid only)

 private:
  /// q [B, H, T, d], k, v [B, H, T, d] (kv heads repeated), RoPE at `positions` ([T] or [B, T]).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project(const at::Tensor& x, const at::Tensor& positions);
  /// The window's halo under context parallelism: the `window` tokens before this shard, and
  /// the exchanged tensor (to tie into the graph where the halo is empty).
  std::pair<WindowHalo, at::Tensor> halo(const at::Tensor& k, const at::Tensor& v, const MixerContext& ctx);
  HedgehogOptions o_;
  int64_t kv_heads_, head_dim_, feature_dim_;
  kernels::LinearAttentionOptions kernel_;  ///< scale 1 (the normaliser cancels it) and chunking
};

}  // namespace attnlab::layers
