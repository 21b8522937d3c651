#include "layers/common/rotary.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cos.h>
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
  const bool per_row = positions.dim() == 2;
  ATTNLAB_CHECK((positions.dim() == 1 && positions.size(0) == x.size(1)) ||
                    (per_row && positions.size(0) == x.size(0) && positions.size(1) == x.size(1)),
                "rotary positions must be [T] or [B, T] for x ", x.sizes(), ", got ", positions.sizes());
  const int64_t T = x.size(1), half = x.size(3) / 2, rows = per_row ? x.size(0) : 1;
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto opts = x.options().dtype(acc);
  at::Tensor inv_freq = at::pow(base, at::arange(0, half, opts) * (-2.0 / x.size(3)));  // [d/2]
  at::Tensor angles = positions.to(opts).unsqueeze(-1) * inv_freq;                     // [(B,) T, d/2]
  at::Tensor cos = at::cos(angles).view({rows, T, 1, half});
  at::Tensor sin = at::sin(angles).view({rows, T, 1, half});
  at::Tensor xf = x.to(acc);
  at::Tensor x1 = xf.narrow(3, 0, half), x2 = xf.narrow(3, half, half);
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, 3).to(x.scalar_type());
}

}  // namespace attnlab::layers
