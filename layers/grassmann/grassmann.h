// grassmann: causal Grassmann (Plücker) mixing (Zhang 2025; docs/mixers/grassmann.md). Per token:
//   z_t = x_t W_red + b_red                                  (reduce to r dims)
//   g_t = mean over valid Δ of  p̂(z_t, z_{t−Δ}) W_plü + b_plü   (oriented planes of token pairs)
//   α_t = σ([x_t; g_t] W_gate + b_gate),  y_t = α_t ⊙ x_t + (1 − α_t) ⊙ g_t
// The convex gate is the only path from x to y: use it in a block with
// model.block.mixer_residual: false (configs/mixers/grassmann.yaml sets the paper's post-norm
// block). The collapsed form (kernels/grassmann/collapsed.h) is the fast path, the per-offset
// form (reference.h) its oracle.
#pragma once
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "framework/model/mixer.h"
#include "kernels/grassmann/spec.h"

namespace attnlab::layers {

struct GrassmannOptions {
  int64_t rank = 32;                                  ///< r, the reduced width
  std::vector<int64_t> offsets{1, 2, 4, 8, 12, 16};   ///< the offset set every layer uses
  std::vector<int64_t> schedule;                      ///< if set: layer i uses {schedule[i % len]}
  std::string norm = "smooth";                        ///< Plücker normalisation
  double eps = 1e-4;
  std::string pairing = "past";                       ///< past | future (paper-literal, not causal)
  template <class V> void visit(V& v) {
    v("rank", rank, "reduced width r (the Plücker vector has r(r-1)/2 entries)", Bounds{2, 1024});
    v("offsets", offsets, "offsets Δ each token pairs with (t with t-Δ), every layer");
    v("schedule", schedule, "one offset per layer, cycling over the layers (replaces offsets)");
    v("norm", norm, "pair normalisation: smooth p/sqrt(|p|²+ε²(|u|²|v|²+1)), clamp p/max(|p|,ε), none",
      OneOf{{"smooth", "clamp", "none"}});
    v("eps", eps, "ε of the normalisation", Bounds{0, 1});
    v("pairing", pairing, "past: t with t-Δ (causal); future: the paper's literal t+Δ (leaks, forward only)",
      OneOf{{"past", "future"}});
  }
};

class Grassmann : public Mixer {
 public:
  Grassmann(const GrassmannOptions& o, const MixerShape& s);
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  void init_parameters(const InitScales& s) override;
  std::vector<CpStrategy> cp_strategies() const override;
  bool handles_documents() const override { return true; }
  double extra_flops_per_token(int64_t seq_len) const override;

  const kernels::GrassmannSpec& spec() const { return spec_; }
  /// The mixing feature g [B, T, D] of x (before the gate), for tests of its identities.
  at::Tensor mixing_feature(const at::Tensor& x, const MixerContext& ctx);

  torch::nn::Linear reduce{nullptr};     ///< W_red, b_red: D -> r
  torch::nn::Linear plucker_proj{nullptr};  ///< W_plü, b_plü: r(r-1)/2 -> D
  torch::nn::Linear gate{nullptr};       ///< W_gate, b_gate: 2D -> D

 private:
  /// g for the last rows of z [B, N, r] (after spec.context of them), by the kernel `kernel`.
  at::Tensor mix(const at::Tensor& z, const at::Tensor& documents, int64_t context, const std::string& kernel) const;
  at::Tensor blend(const at::Tensor& x, const at::Tensor& g);
  kernels::GrassmannSpec spec_;
  int64_t reach_ = 0;  ///< max Δ: how far back a token looks
};

}  // namespace attnlab::layers
