// softmax: the baseline mixer. Causal multi-head attention with RoPE and GQA
// (docs/mixers/softmax.md). q = RoPE(x Wq) [B,T,H,d], k = RoPE(x Wk), v = x Wv [B,T,Hkv,d],
// y = softmax(q k^T / sqrt(d) + causal) v Wo. `kernel: auto` runs
// at::scaled_dot_product_attention (the tiled kernel on CPU when positions are explicit, as in
// allgather_kv), `fused` the tiled kernel (kernels/attention/fused_cpu.h), `reference` the
// plain-torch definition.
// Decoding keeps a KV cache of max_len positions.
#pragma once
#include <torch/nn/modules/linear.h>

#include "framework/model/mixer.h"
#include "layers/common/rotary.h"

namespace attnlab::layers {

struct SoftmaxOptions {
  int64_t heads = 4;
  int64_t kv_heads = 0;   ///< 0: same as heads (MHA); 1: MQA
  int64_t head_dim = 0;   ///< 0: dim / heads
  double rope_base = 10000.0;
  std::string rope = "rotary";        ///< rotary | none (GPT-2: learned absolute positions instead)
  std::string rope_scaling = "none";  ///< none | linear | llama3 (docs/mixers/softmax.md)
  double rope_factor = 8.0;
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_max_len = 8192;
  bool bias = false;  ///< biases on q, k, v and o (GPT-2; Llama's attention_bias)
  template <class V> void visit(V& v) {
    v("heads", heads, "query heads H", Bounds{1, 4096});
    v("kv_heads", kv_heads, "key/value heads (GQA); 0 = heads", Bounds{0, 4096});
    v("head_dim", head_dim, "per-head width d; 0 = dim / heads", Bounds{0, 4096});
    v("rope", rope, "rotary position embedding on q and k, or none", OneOf{{"rotary", "none"}});
    v("rope_base", rope_base, "RoPE base frequency", Bounds{1, 1e12});
    v("rope_scaling", rope_scaling, "RoPE frequency rescaling for longer contexts",
      OneOf{{"none", "linear", "llama3"}});
    v("rope_factor", rope_factor, "linear, llama3: context extension factor", Bounds{1e-3, 1e6});
    v("rope_low_freq_factor", rope_low_freq_factor, "llama3: low-frequency band edge", Bounds{1e-6, 1e6});
    v("rope_high_freq_factor", rope_high_freq_factor, "llama3: high-frequency band edge", Bounds{1e-6, 1e6});
    v("rope_original_max_len", rope_original_max_len, "llama3: the pretraining context length", Bounds{1, 1e9});
    v("bias", bias, "biases on the q, k, v and output projections (they start at zero)");
  }
};

class SoftmaxAttention : public Mixer {
 public:
  SoftmaxAttention(const SoftmaxOptions& opts, const MixerShape& shape);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  /// ulysses (the default where cp divides the heads and kv heads), else allgather_kv; ring_lse
  /// when chosen (docs/parallelism.md compares them).
  std::vector<CpStrategy> cp_strategies() const override {
    return {CpStrategy::ulysses, CpStrategy::allgather_kv, CpStrategy::ring_lse};
  }
  bool cp_supports(CpStrategy s, int64_t ranks) const override {
    return s != CpStrategy::ulysses || (heads_ % ranks == 0 && kv_heads_ % ranks == 0);
  }
  /// Whole sequences run each document as a row; shards mask by document.
  bool handles_documents() const override { return true; }
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;
  /// softmax(q kᵀ / sqrt(d) + causal) [B, H, T, T] (the teacher's side of the transfer's cross entropy).
  at::Tensor attention_weights(const at::Tensor& x, const MixerContext& ctx) override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  /// x [B, T, D] -> q [B, T, H, d], k and v [B, T, Hkv, d], rotary applied from `offset`.
  /// q, k, v [B, T, H*, d] with RoPE at `positions` [T].
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project(const at::Tensor& x, const at::Tensor& positions);
  /// Causal attention of q [B, H, T, d] over k, v [B, Hkv, T, d]: SDPA, the tiled kernel or the
  /// plain reference, as `kernel` says.
  at::Tensor causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::string& kernel) const;
  /// ulysses: q, k, v [B, S, H*, d] of this shard -> the attention output [B, S, H, d].
  at::Tensor attend_by_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const MixerContext& ctx);
  int64_t heads_, kv_heads_, head_dim_;
  bool rotary_;
  RopeSpec rope_;
};

}  // namespace attnlab::layers
