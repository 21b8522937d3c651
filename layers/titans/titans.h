// titans: the Titans neural long-term memory (Behrouz et al. 2024; docs/mixers/titans.md).
// Per head, an MLP memory f(·; W) is trained at test time: each token takes an anchored
// gradient step with momentum and forgetting on c·‖f(k_t; W) − v_t‖² and reads f(q_t; W_t).
//   lmm: memory only.    o = W_O(RMSNorm_head(y) ⊙ SiLU(x W_G))
//   mag: memory as a gate on sliding-window attention:  o = RMSNorm(swa(x)) ⊙ σ(RMSNorm(lmm(x)))
//   mal: memory as a layer before it:  o = lmm(x) + swa(x + lmm(x))  (two residual sub-layers)
//   mac: memory as context, per segment: attention over [P; h; S] with the retrievals h aligned
//        causally, then the memory learns from the attention outputs (layers/titans/mac.cpp)
// `persistent` learned tokens P precede every sequence (lmm, mag, mal) or every segment (mac).
// q, k, v pass a short causal conv and SiLU; q and k are ℓ2-normalised. θ, α, η are sigmoids of
// per-head linear maps of x. Training uses the chunkwise dual form (kernels/titans/dual.h);
// train.kernel: reference runs the token loop.
#pragma once
#include <torch/nn/modules/linear.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/model/mixer.h"
#include "kernels/titans/spec.h"

namespace attnlab::layers {

class SlidingWindowAttention;
struct TitansState;  ///< layers/titans/state.h

struct TitansOptions {
  std::string architecture = "lmm";
  int64_t heads = 4;
  int64_t head_dim = 0;       ///< 0: dim / heads
  int64_t memory_layers = 2;  ///< L_M
  int64_t expansion = 4;      ///< hidden width of the memory MLP: expansion · head_dim
  std::string activation = "gelu_tanh";
  int64_t chunk = 64;         ///< b: tokens per anchor
  double loss_scale = 0;      ///< c of the inner loss; 0: 1 / head_dim
  double theta_max = 0.1;     ///< θ = theta_max · σ(·)
  std::string read = "after";
  double max_grad_norm = 2.0;  ///< soft clamp of each token's inner layer gradient (0 = off)
  int64_t conv = 4;           ///< κ of the short convs (1: none)
  int64_t window = 64;        ///< mag, mal: the attention window
  int64_t attention_heads = 4;
  int64_t persistent = 0;     ///< N_p learned tokens before the sequence (mac: before each segment)
  int64_t segment = 64;       ///< mac: C, tokens per segment
  std::string retrieval = "causal";  ///< mac: causal, or prefix (leaks the segment's future)
  template <class V> void visit(V& v) {
    v("architecture", architecture, "lmm (memory only), mag (memory gates SWA), mal (memory, then SWA), mac (memory as context)",
      OneOf{{"lmm", "mag", "mal", "mac"}});
    v("heads", heads, "memory heads", Bounds{1, 1024});
    v("head_dim", head_dim, "memory key/value width per head (0 = dim / heads)", Bounds{0, 4096});
    v("memory_layers", memory_layers, "layers of the memory MLP (1: a linear memory)", Bounds{1, 16});
    v("expansion", expansion, "memory MLP hidden width / head_dim", Bounds{1, 64});
    v("activation", activation, "memory MLP activation", OneOf{{"gelu_tanh", "silu"}});
    v("chunk", chunk, "tokens whose inner gradients share one anchor (1: the online recurrence)", Bounds{1, 1e6});
    v("loss_scale", loss_scale,
      "c in the inner loss c·|f(k) - v|²; 0 = 1/head_dim, the mean over features (the paper's 1 diverges at chunk 64)",
      Bounds{0, 1e6});
    v("theta_max", theta_max, "largest inner learning rate", Bounds{0, 1e3});
    v("read", read, "after: y_t = f(q_t; W_t) (read after write); before: f(q_t; W_{t-1})", OneOf{{"after", "before"}});
    v("max_grad_norm", max_grad_norm,
      "soft clamp G·tanh(|u|/G) of each token's inner gradient per memory layer (0 = off)", Bounds{0, 1e9});
    v("conv", conv, "short causal conv kernel on q, k, v (1 = none)", Bounds{1, 64});
    v("window", window, "mag/mal: sliding attention window (mac: the segment is the window)", Bounds{1, 1e9});
    v("attention_heads", attention_heads, "mag/mal/mac: heads of the attention", Bounds{1, 1024});
    v("persistent", persistent, "learned persistent memory tokens before the sequence (mac: before each segment)",
      Bounds{0, 4096});
    v("segment", segment, "mac: tokens per segment (attention runs inside a segment)", Bounds{1, 1e6});
    v("retrieval", retrieval,
      "mac: causal (token r sees the retrievals of tokens <= r) or prefix (all of the segment's; leaks the future)",
      OneOf{{"causal", "prefix"}});
  }
};

class Titans : public Mixer {
 public:
  Titans(const TitansOptions& o, const MixerShape& s);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  void init_parameters(const InitScales& s) override;
  /// serial_state (mac: the segment's context travels with the memory state); none with
  /// persistent tokens outside mac, or for mac's prefix retrieval (docs/parallelism.md).
  std::vector<CpStrategy> cp_strategies() const override;
  double extra_flops_per_token(int64_t seq_len) const override;

  /// The memory branch alone, x [B, T, D] -> [B, T, D] (lmm's output), from the sequence start
  /// or, under context parallelism, from the state the previous rank hands over.
  at::Tensor memory_branch(const at::Tensor& x, const MixerContext& ctx);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr};
  at::Tensor conv_q, conv_k, conv_v;  ///< [H·d, κ]
  torch::nn::Linear theta_proj{nullptr}, alpha_proj{nullptr}, eta_proj{nullptr};  ///< D -> H, with biases
  std::vector<at::Tensor> memory_init;  ///< W_0 per layer [H, w_{l−1}, w_l]
  at::Tensor out_norm;                  ///< per-head RMSNorm gain [d]
  torch::nn::Linear gate_proj{nullptr}, o_proj{nullptr};
  std::shared_ptr<SlidingWindowAttention> attention;  ///< mag, mal
  at::Tensor attn_norm, mem_norm;                     ///< mag, mac: the two RMSNorm gains [D]
  at::Tensor persistent;                              ///< [N_p, D], or undefined

  struct Projected {  ///< q, k, v [B, H, T, d] and θ, α, η [B, H, T] of a call
    at::Tensor q, k, v, theta, alpha, eta;
  };

 private:
  /// [q | k | v] projections of x before the convs [B, T, 3·H·d] (what conv tails hold).
  at::Tensor raw_projections(const at::Tensor& x);
  Projected project(const at::Tensor& x, const at::Tensor& raw, const at::Tensor& conv_tail);
  at::Tensor readout(const at::Tensor& y, const at::Tensor& x);
  at::Tensor combine(const at::Tensor& x, const at::Tensor& memory, const std::function<at::Tensor(const at::Tensor&)>& swa);
  /// mag, mac: RMSNorm(attention) ⊙ σ(RMSNorm(memory)), both [B, T, D].
  at::Tensor gate_by_memory(const at::Tensor& attention_out, const at::Tensor& memory) const;
  /// P as a [batch, N_p, D] prefix.
  at::Tensor persistent_prefix(int64_t batch, at::ScalarType dtype) const;
  /// mac's retrieval queries alone, from x W_Q [B, T, H·d] (and its conv tail) -> [B, H, T, d]:
  /// the q of project() without the keys, values and gates the input stream does not use.
  at::Tensor retrieval_queries(const at::Tensor& q_raw, const at::Tensor& q_tail);
  at::Tensor step_tokens(const at::Tensor& x_t, TitansState& s);  ///< lmm, mag, mal
  // mac (layers/titans/mac.cpp)
  /// mac's loop between two pieces of a sequence (a context-parallel shard edge may cut a segment).
  struct MacCarry {
    kernels::MemoryState memory;           ///< the running memory
    std::vector<at::Tensor> segment_start;  ///< M_{i−1}: the weights the current segment's retrievals read
    at::Tensor y_tail;                      ///< [B, κ − 1, 3·H·d]: the attention outputs' last raw projections
    at::Tensor context;                     ///< [B, 2m, D]: the current segment's interleaved (h, s) rows so far
  };
  MacCarry mac_start(const at::Tensor& x) const;  ///< at the sequence start, for x [B, T, D]
  /// x [B, T, D] (its retrieval queries [B, H, T, d]) from `carry`, m tokens into a segment.
  std::pair<at::Tensor, MacCarry> mac_run(const at::Tensor& x, const at::Tensor& queries, MacCarry carry, int64_t m,
                                          const MixerContext& ctx);
  at::Tensor mac_forward(const at::Tensor& x, const MixerContext& ctx);
  at::Tensor mac_step(const at::Tensor& x_t, TitansState& s);
  /// [P; h_1, s_1, h_2, s_2, ...] (causal) or [P; h; s] (prefix) from h, s [B, n, D].
  at::Tensor mac_context(const at::Tensor& h, const at::Tensor& s) const;
  kernels::MemoryState memory_start(int64_t batch, at::ScalarType dtype) const;
  TitansOptions o_;
  kernels::MemorySpec spec_;
  int64_t head_dim_ = 0, dim_ = 0;
};

}  // namespace attnlab::layers
