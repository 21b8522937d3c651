// The shared body of the softmax-family mixers (sigmoid, swa, dma, moh, ssa; docs/mixers/*.md):
// q = RoPE(norm(x Wq)), k = RoPE(norm(x Wk)), v = x Wv with GQA, the tiled attention kernel
// (kernels/attention/) under an AttentionSpec, and y = (g ⊙ o) Wo. A mixer overrides the
// hooks below for what makes it different: the spec (transform, window), a per-key bias, output
// gates, or the whole attention step. The base does positions, packed documents, context
// parallelism (allgather_kv, halo for windows, ring_sum for sigmoid), and decoding with a KV
// cache (windowed caches evict).
#pragma once
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "framework/model/mixer.h"
#include "kernels/attention/spec.h"

namespace attnlab::layers {

/// Projection and head layout options every softmax-family mixer has.
struct AttentionCoreOptions {
  int64_t heads = 4;
  int64_t kv_heads = 0;  ///< 0: same as heads (MHA); 1: MQA
  int64_t head_dim = 0;  ///< 0: dim / heads
  double rope_base = 10000.0;
  bool qk_norm = false;  ///< LayerNorm over d on each head's q and k, before RoPE
  template <class V> void visit(V& v) {
    v("heads", heads, "query heads H", Bounds{1, 4096});
    v("kv_heads", kv_heads, "key/value heads (GQA); 0 = heads", Bounds{0, 4096});
    v("head_dim", head_dim, "per-head width d; 0 = dim / heads", Bounds{0, 4096});
    v("rope_base", rope_base, "RoPE base frequency", Bounds{1, 1e9});
    v("qk_norm", qk_norm, "LayerNorm on each head's q and k before RoPE");
  }
};

/// One attention call: q [B, H, Tq, d] over k, v [B, Hkv, Tk, d] with key_bias [B, Hkv, Tk] or
/// undefined, and `spec` already holding positions and documents.
struct AttendCall {
  at::Tensor q, k, v, key_bias;
  at::Tensor gates;  ///< the output gates [B, Tq, H] that will multiply the result, or undefined
  kernels::AttentionSpec spec;
  const MixerContext* ctx = nullptr;  ///< kernel choice, training flag
};

/// Runs `spec` with the chosen kernel: reference (plain torch), or anything else (auto, fused,
/// and the linear family's chunked / recurrent in a hybrid) the tiled kernel. On CUDA the tiled
/// kernel runs under `fused`, and under `auto` only once a GPU run validated it; otherwise the
/// reference, with a one-time warning.
at::Tensor run_attention(const AttendCall& call);

class AttentionMixer : public Mixer {
 public:
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  /// halo where the spec has a window (the default there), allgather_kv, and ring_sum for
  /// sigmoid scores (layers/common/attention_cp.h).
  std::vector<CpStrategy> cp_strategies() const override;
  bool handles_documents() const override { return true; }
  double extra_flops_per_token(int64_t seq_len) const override;
  void init_parameters(const InitScales& s) override;
  /// Converting softmax: q, k, v, o are the teacher's; whatever the mixer adds (QK norms, DMA's
  /// bias, MoH's router, ...) is new (docs/conversion.md).
  AttentionTakeover attention_takeover() const override {
    return {{"q_proj.", "k_proj.", "v_proj.", "o_proj."}, {}, plain_softmax()};
  }
  /// The weights of base_spec() when plain_softmax(), else undefined.
  at::Tensor attention_weights(const at::Tensor& x, const MixerContext& ctx) override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  torch::nn::LayerNorm q_norm{nullptr}, k_norm{nullptr};

 protected:
  AttentionMixer(const char* name, const AttentionCoreOptions& opts, const MixerShape& shape);

  /// Transform, scale, window and sinks of every call (positions and documents are added).
  virtual kernels::AttentionSpec base_spec() const;
  /// Per-key additive bias [B, T, Hkv] from the layer input x [B, T, D] and values v [B, T, Hkv, d]
  /// (DMA); undefined by default. Cached for decoding and gathered under context parallelism.
  virtual at::Tensor key_bias(const at::Tensor& /*x*/, const at::Tensor& /*v*/) { return {}; }
  /// Per-(token, head) output gates [B, T, H] multiplying o before Wo (MoH, SSA); undefined: none.
  virtual at::Tensor output_gates(const at::Tensor& /*x*/, const MixerContext& /*ctx*/) { return {}; }
  /// Whether rows whose gate is exactly 0 are skipped by the kernel (MoH's unrouted heads).
  virtual bool skip_zero_gates() const { return false; }
  /// The attention of one call (default: run_attention). SSA runs two paths here.
  virtual at::Tensor attend(const AttendCall& call) { return run_attention(call); }
  /// True when the output is exactly softmax attention under base_spec() followed by Wo: no key
  /// bias, no gates, no attend() of its own (swa). Such a mixer has attention_weights().
  virtual bool plain_softmax() const { return false; }

  const char* name_;
  int64_t dim_, heads_, kv_heads_, head_dim_;
  double rope_base_;
  bool qk_norm_;

 private:
  /// x [B, T, D] -> q [B, T, H, d], k, v [B, T, Hkv, d] with RoPE at `positions` ([T] or [B, T]).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project(const at::Tensor& x, const at::Tensor& positions);
  /// o [B, T, H, d] -> y [B, T, D]: gates (if any), then Wo.
  at::Tensor output(const at::Tensor& o, const at::Tensor& gates);
};

}  // namespace attnlab::layers
