#include "layers/moh/moh.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros_like.h>

namespace attnlab::layers {

MixtureOfHeads::MixtureOfHeads(const MohOptions& o, const MixerShape& s)
    : AttentionMixer("moh", o.core, s),
      shared_(o.shared_heads),
      routed_(heads_ - o.shared_heads),
      top_k_(o.top_k),
      layers_(std::max<int64_t>(1, s.num_layers)),
      learned_(o.router == "learned"),
      balance_weight_(o.balance_weight) {
  TORCH_CHECK(shared_ <= heads_, "moh: shared_heads (", shared_, ") exceeds heads (", heads_, ")");
  TORCH_CHECK(top_k_ <= routed_, "moh: top_k (", top_k_, ") exceeds the routed heads (heads ", heads_,
              " - shared_heads ", shared_, " = ", routed_, ")");
  TORCH_CHECK(shared_ + top_k_ > 0, "moh: shared_heads + top_k is 0, so no head would ever be used");
  auto lin = [&](int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(s.dim, out).bias(false)); };
  if (learned_ && routed_ > 0 && top_k_ > 0) router_routed = register_module("router_routed", lin(routed_));
  if (learned_ && shared_ > 1) router_shared = register_module("router_shared", lin(shared_));
  if (learned_ && shared_ > 0 && top_k_ > 0) router_groups = register_module("router_groups", lin(2));
}

void MixtureOfHeads::init_parameters(const InitScales& s) {
  AttentionMixer::init_parameters(s);
  for (const torch::nn::Linear& router : {router_routed, router_shared, router_groups})
    if (router) init_linear(router, s.std);
}

at::Tensor MixtureOfHeads::routing_scores(const at::Tensor& x) {
  if (learned_) return at::softmax(router_routed->forward(x), -1);
  // MoH-LLaMA3: the routed heads' query norms (before RoPE) over their std across heads.
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = q_proj->forward(x).view({B, T, heads_, head_dim_}).narrow(2, shared_, routed_);
  at::Tensor norms = q.to(at::kFloat).norm(2, -1);
  return at::softmax(norms / (norms.std(-1, /*unbiased=*/true, /*keepdim=*/true) + 1e-6), -1).to(x.scalar_type());
}

at::Tensor MixtureOfHeads::output_gates(const at::Tensor& x, const MixerContext& ctx) {
  balance_ = at::Tensor();
  at::Tensor shared, routed;
  if (routed_ > 0 && top_k_ > 0) {
    const at::Tensor p = routing_scores(x);  // [B, T, E]
    // Top-k with ties to the lowest index (a stable descending sort), as a 0/1 mask.
    const at::Tensor order = std::get<1>(at::sort(p.detach(), /*stable=*/true, -1, /*descending=*/true));
    const at::Tensor chosen = at::zeros_like(p).scatter_(-1, order.narrow(-1, 0, top_k_), 1.0);
    if (learned_) {
      const at::Tensor picked = p * chosen;
      routed = picked / picked.sum(-1, true).clamp_min(std::numeric_limits<float>::epsilon()) * top_k_;
      if (ctx.training) {  // E·Σ_i P_i f_i: P from the probabilities (differentiable), f a count
        const at::Tensor P = p.reshape({-1, routed_}).mean(0), f = chosen.reshape({-1, routed_}).mean(0);
        balance_ = (P * f).sum() * static_cast<double>(routed_) / static_cast<double>(layers_);
      }
    } else {
      routed = chosen;
    }
  }
  if (shared_ > 0) {
    shared = shared_ > 1 && learned_ ? at::softmax(router_shared->forward(x), -1) * static_cast<double>(shared_)
                                     : at::ones({x.size(0), x.size(1), shared_}, x.options());
  }
  if (!routed.defined()) return shared;
  if (!shared.defined()) return routed;
  if (learned_) {
    const at::Tensor alpha = at::softmax(router_groups->forward(x), -1) * 2.0;  // [B, T, 2]
    shared = shared * alpha.narrow(-1, 0, 1), routed = routed * alpha.narrow(-1, 1, 1);
  }
  return at::cat({shared, routed}, -1);  // shared heads first, then routed
}

std::vector<AuxLoss> MixtureOfHeads::aux_losses() {
  if (!balance_.defined()) return {};
  return {{"moh_balance", balance_, balance_weight_}};
}

double MixtureOfHeads::extra_flops_per_token(int64_t seq_len) const {
  // Only the active heads' rows are computed: shared + top_k of the H heads.
  return AttentionMixer::extra_flops_per_token(seq_len) * static_cast<double>(shared_ + top_k_) / heads_;
}

ATTNLAB_REGISTER_MIXER("moh", MixtureOfHeads, MohOptions,
                       "mixture-of-head attention: shared + top-k routed heads, unrouted rows skipped (tiled kernel)");

}  // namespace attnlab::layers
