#include "layers/titans/short_conv.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/zeros.h>

namespace attnlab::layers {

at::Tensor causal_short_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& tail) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), kappa = weight.size(1);
  if (kappa == 1) return x * weight.select(1, 0).to(x.scalar_type());
  const at::Tensor before = tail.defined() ? tail.to(x.scalar_type()) : at::zeros({B, kappa - 1, C}, x.options());
  const at::Tensor ext = at::cat({before, x}, 1);  // [B, κ − 1 + T, C]
  at::Tensor y = at::zeros_like(x);
  for (int64_t i = 0; i < kappa; ++i) y = y + ext.narrow(1, kappa - 1 - i, T) * weight.select(1, i).to(x.scalar_type());
  return y;
}

at::Tensor next_conv_tail(const at::Tensor& x, const at::Tensor& tail, int64_t kernel) {
  const int64_t keep = kernel - 1;
  const at::Tensor ext = tail.defined() ? at::cat({tail.to(x.scalar_type()), x}, 1) : x;
  if (ext.size(1) >= keep) return ext.narrow(1, ext.size(1) - keep, keep);
  return at::cat({at::zeros({x.size(0), keep - ext.size(1), x.size(2)}, x.options()), ext}, 1);
}

}  // namespace attnlab::layers
