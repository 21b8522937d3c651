// gla: Gated Linear Attention (Yang et al. 2023; docs/mixers/gla.md). Per head:
//   S_t = Diag(α_t) S_{t-1} + k_t v_tᵀ,  o_t = S_tᵀ q_t / sqrt(dk),
//   log α_t = logsigmoid(x_t W_α¹ W_α² + b_α) / τ   (rank-16 gate, τ = 16; optional clamp)
//   y_t = (swish(x_t W_r [+ b_r]) ⊙ concat_h RMSNorm(o_t^h)) W_o
// q, k [B, T, H, dk] with dk = expand_k·D/H, v [B, T, H, dv] with dv = expand_v·D/H.
// No positional encoding: the cumulative decay carries relative position.
#pragma once
#include <torch/nn/modules/linear.h>

#include "kernels/linear/api.h"
#include "layers/common/linear_mixer.h"

namespace attnlab::layers {

struct GlaOptions {
  int64_t heads = 4;             ///< H (the paper's ablation picked 4)
  int64_t kv_heads = 0;          ///< GQA: heads of k, v and the gate; 0 = heads
  double expand_k = 0.5;         ///< D_k = expand_k · D (the 340M config: 0.5)
  double expand_v = 1.0;         ///< D_v = expand_v · D
  int64_t gate_rank = 16;        ///< bottleneck of the gate projection
  double gate_temperature = 16;  ///< τ: log α = logsigmoid(z) / τ
  double gate_log_min = 0;       ///< lower clamp on log α per step (< 0); 0 = no clamp
  bool output_gate_bias = false; ///< b_r: the paper has it, fla does not
  double norm_eps = 1e-5;        ///< per-head RMSNorm eps
  int64_t chunk_size = 64;       ///< kernel chunk C
  int64_t sub_chunk = 16;        ///< kernel sub-chunk c
  template <class V> void visit(V& v) {
    v("heads", heads, "heads H", Bounds{1, 1024});
    v("kv_heads", kv_heads, "key/value/gate heads (GQA); 0 = heads", Bounds{0, 1024});
    v("expand_k", expand_k, "key width D_k = expand_k * dim", Bounds{0.0625, 8});
    v("expand_v", expand_v, "value width D_v = expand_v * dim", Bounds{0.0625, 8});
    v("gate_rank", gate_rank, "rank of the gate projection", Bounds{1, 4096});
    v("gate_temperature", gate_temperature, "tau in log a = logsigmoid(z) / tau", Bounds{1e-3, 1e3});
    v("gate_log_min", gate_log_min, "clamp log a >= this per step (negative); 0 = off", Bounds{-1e4, 0});
    v("output_gate_bias", output_gate_bias, "bias on the swish output gate (paper: yes, fla: no)");
    v("norm_eps", norm_eps, "per-head RMSNorm eps", Bounds{0, 1});
    v("chunk_size", chunk_size, "kernel chunk size C", Bounds{1, 4096});
    v("sub_chunk", sub_chunk, "kernel sub-chunk size c (divides chunk_size)", Bounds{1, 4096});
  }
};

class Gla : public LinearStateMixer {
 public:
  Gla(const GlaOptions& opts, const MixerShape& shape);
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;
  /// Converting softmax (expand_k = expand_v = head_dim·heads / dim): q, k, v, o are the
  /// teacher's; the decay gate, output gate and norm are new. GLA has no RoPE: the decay carries
  /// position, so the teacher's RoPE settings are dropped (docs/conversion.md).
  AttentionTakeover attention_takeover() const override {
    return {{"q_proj.", "k_proj.", "v_proj.", "o_proj."},
            {"rope", "rope_base", "rope_scaling", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
             "rope_original_max_len", "head_dim"}};
  }
  /// log α [B, T, kv_heads * dk] in fp32: logsigmoid(gate_up(gate_down(x))) / τ, clamped by
  /// gate_log_min; the per-channel decay the kernel applies at each step.
  at::Tensor log_decay(const at::Tensor& x);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, g_proj{nullptr},
      gate_down{nullptr}, gate_up{nullptr}, o_proj{nullptr};
  at::Tensor norm_weight;  ///< [dv], shared by all heads (fla's FusedRMSNormGated)

 private:
  std::pair<at::Tensor, at::Tensor> mix(const at::Tensor& x, const at::Tensor& s0,
                                        const MixerContext& ctx) override;
  GlaOptions o_;
  int64_t kv_heads_, dk_, dv_;
  kernels::LinearAttentionOptions kernel_;  ///< scale 1/sqrt(dk) and chunking, checked once
};

}  // namespace attnlab::layers
