// Hedgehog learned feature maps (docs/mixers/hedgehog.md): per head z = x W_h (+ b_h),
// W_h [d, f] identity-initialised (takes the first f coordinates), then one of
//   softmax_dim   (LoLCATs): [softmax_f(z), softmax_f(−z)], clamped ≥ 1e-12
//   exp_dim       (LoLCATs): [exp(z − max z), exp(−z + min z)], clamped ≥ 1e-12
//   joint_softmax (fla):     softmax_2f([2z, −2z]), with the bias b
// These are different models (the key-side normalisation re-weights keys), not stabilised
// versions of each other. Output width 2f, computed in fp32 (fp64 for fp64 models).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>

namespace attnlab::layers {

class HedgehogFeatureMapImpl : public torch::nn::Module {
 public:
  HedgehogFeatureMapImpl(int64_t heads, int64_t head_dim, int64_t feature_dim, std::string kind);
  /// x [B, H, T, d] -> φ(x) [B, H, T, 2f].
  at::Tensor forward(const at::Tensor& x);
  /// W = identity (first f coordinates), b = 0.
  void reset_to_identity();

  at::Tensor weight;  ///< [H, d, f]
  at::Tensor bias;    ///< [H, f] (joint_softmax only)

 private:
  std::string kind_;
};
TORCH_MODULE(HedgehogFeatureMap);

}  // namespace attnlab::layers
