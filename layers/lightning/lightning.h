// lightning: TransNormerLLM-style linear attention with a constant per-head decay
// (Qin et al.; docs/mixers/lightning.md). [Q|K|V|U] = x [Wq|Wk|Wv|Wu] (no bias), Q = SiLU(Q),
// K = SiLU(K); per head kv_t = λ_h kv_{t-1} + k_t v_tᵀ, o_t = kv_tᵀ q_t (no 1/sqrt(d): the norm
// follows); O = SRMSNorm(concat_h o) ⊙ U over the WHOLE width (no gain); y = O W_o.
// λ_h is a buffer (learned λ gave NaNs in the paper), from decay_schedule.h.
#pragma once
#include <torch/nn/modules/linear.h>

#include "kernels/linear/api.h"
#include "layers/common/linear_mixer.h"

namespace attnlab::layers {

struct LightningOptions {
  int64_t heads = 4;                    ///< H
  std::string decay_schedule = "official";  ///< official (HF TNL code) | paper (= fla)
  double norm_eps = 1e-6;               ///< SRMSNorm eps
  int64_t chunk_size = 64;              ///< kernel chunk C
  int64_t sub_chunk = 16;               ///< kernel sub-chunk c
  template <class V> void visit(V& v) {
    v("heads", heads, "heads H", Bounds{1, 1024});
    v("decay_schedule", decay_schedule, "per-head decay: official (TNL code) or paper (fla)",
      OneOf{{"official", "paper"}});
    v("norm_eps", norm_eps, "SRMSNorm eps", Bounds{0, 1});
    v("chunk_size", chunk_size, "kernel chunk size C", Bounds{1, 4096});
    v("sub_chunk", sub_chunk, "kernel sub-chunk size c (divides chunk_size)", Bounds{1, 4096});
  }
};

class Lightning : public LinearStateMixer {
 public:
  Lightning(const LightningOptions& opts, const MixerShape& shape);
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;
  /// Converting softmax: q, k, v, o are the teacher's; the output gate u is new. No RoPE (the
  /// decay carries position), no GQA: a teacher with kv_heads or head_dim set is refused
  /// (docs/conversion.md).
  AttentionTakeover attention_takeover() const override {
    return {{"q_proj.", "k_proj.", "v_proj.", "o_proj."},
            {"rope", "rope_base", "rope_scaling", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor",
             "rope_original_max_len"}};
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, u_proj{nullptr}, o_proj{nullptr};
  at::Tensor log_decay;  ///< [H] buffer: log λ_h

 private:
  std::pair<at::Tensor, at::Tensor> mix(const at::Tensor& x, const at::Tensor& s0,
                                        const MixerContext& ctx) override;
  LightningOptions o_;
  int64_t dim_, head_dim_;
  kernels::LinearAttentionOptions kernel_;  ///< scale 1 (the norm follows) and chunking
};

}  // namespace attnlab::layers
