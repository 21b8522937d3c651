#include "framework/model/blocks.h"

#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/silu.h>

namespace attnlab {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
}

at::Tensor rms_normalize(const at::Tensor& x, double eps) {
  at::Tensor xf = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xf * inv).to(x.scalar_type());
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  return rms_normalize(x, eps) * weight.to(x.scalar_type());
}

SwiGLUImpl::SwiGLUImpl(int64_t dim, int64_t hidden) {
  auto opts = [](int64_t i, int64_t o) { return torch::nn::LinearOptions(i, o).bias(false); };
  gate_proj = register_module("gate_proj", torch::nn::Linear(opts(dim, hidden)));
  up_proj = register_module("up_proj", torch::nn::Linear(opts(dim, hidden)));
  down_proj = register_module("down_proj", torch::nn::Linear(opts(hidden, dim)));
}

at::Tensor SwiGLUImpl::forward(const at::Tensor& x) {
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

}  // namespace attnlab
