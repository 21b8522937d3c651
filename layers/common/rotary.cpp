#include "layers/common/rotary.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/outer.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/sin.h>

#include "kernels/common/check.h"

namespace attnlab::layers {

at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base) {
  return apply_rotary_at(x, at::arange(offset, offset + x.size(1), x.options().dtype(at::kLong)), base);
}

at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, double base) {
  ATTNLAB_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rotary needs [B, T, H, even d], got ",
                x.sizes());
  ATTNLAB_CHECK(positions.dim() == 1 && positions.size(0) == x.size(1), "rotary positions must be [T], got ",
                positions.sizes());
  const int64_t T = x.size(1), half = x.size(3) / 2;
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto opts = x.options().dtype(acc);
  at::Tensor inv_freq = at::pow(base, at::arange(0, half, opts) * (-2.0 / x.size(3)));  // [d/2]
  at::Tensor angles = at::outer(positions.to(opts), inv_freq);                          // [T, d/2]
  at::Tensor cos = at::cos(angles).view({1, T, 1, half});
  at::Tensor sin = at::sin(angles).view({1, T, 1, half});
  at::Tensor xf = x.to(acc);
  at::Tensor x1 = xf.narrow(3, 0, half), x2 = xf.narrow(3, half, half);
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, 3).to(x.scalar_type());
}

}  // namespace attnlab::layers
