// Building blocks every architecture here shares: RMSNorm (computed in fp32) and the SwiGLU MLP
// down(silu(gate(x)) * up(x)). Names follow HF Llama so checkpoints map one to one.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace attnlab {

/// x / sqrt(mean(x²) + eps) over the last dim, no gain; statistics in fp32 (fp64 stays fp64);
/// returns x's dtype. The body of RMSNorm, and SRMSNorm / per-head norms of mixers.
at::Tensor rms_normalize(const at::Tensor& x, double eps);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  /// x [..., D] -> same shape and dtype; statistics in fp32.
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;  // [D]
  double eps;
};
TORCH_MODULE(RMSNorm);

class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(int64_t dim, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);  // [..., D] -> [..., D]
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(SwiGLU);

}  // namespace attnlab
