#include "layers/hedgehog/feature_map.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>

#include "kernels/linear/api.h"

namespace attnlab::layers {

HedgehogFeatureMapImpl::HedgehogFeatureMapImpl(int64_t heads, int64_t head_dim, int64_t feature_dim,
                                               std::string kind)
    : kind_(std::move(kind)) {
  TORCH_CHECK(kind_ == "softmax_dim" || kind_ == "exp_dim" || kind_ == "joint_softmax",
              "hedgehog: feature_map must be softmax_dim | exp_dim | joint_softmax, got '", kind_, "'");
  weight = register_parameter("weight", at::zeros({heads, head_dim, feature_dim}));
  if (kind_ == "joint_softmax") bias = register_parameter("bias", at::zeros({heads, feature_dim}));
  reset_to_identity();
}

void HedgehogFeatureMapImpl::reset_to_identity() {
  at::NoGradGuard no_grad;
  const int64_t d = weight.size(1), f = weight.size(2);
  weight.copy_(at::eye(d, f, weight.options()).expand_as(weight));
  if (bias.defined()) bias.zero_();
}

at::Tensor HedgehogFeatureMapImpl::forward(const at::Tensor& x) {
  const auto acc = kernels::linear_state_dtype(x.scalar_type());
  at::Tensor z = at::einsum("bhtd,hdf->bhtf", {x.to(acc), weight.to(acc)});  // [B, H, T, f]
  if (kind_ == "joint_softmax") {
    z = z + bias.to(acc).unsqueeze(1);
    return at::softmax(at::cat({2 * z, -2 * z}, -1), -1);
  }
  if (kind_ == "softmax_dim")
    return at::clamp_min(at::cat({at::softmax(z, -1), at::softmax(-z, -1)}, -1), 1e-12);
  at::Tensor hi = at::exp(z - at::amax(z, {-1}, true)), lo = at::exp(at::amin(z, {-1}, true) - z);
  return at::clamp_min(at::cat({hi, lo}, -1), 1e-12);
}

}  // namespace attnlab::layers
