#include "kernels/grassmann/collapsed.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include "kernels/grassmann/reference.h"

namespace attnlab::kernels {

at::Tensor grassmann_mix_collapsed(const at::Tensor& z_in, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& documents, const GrassmannSpec& spec) {
  TORCH_CHECK(z_in.dim() == 3, "grassmann: z must be [B, N, r], got ", z_in.sizes());
  // fp32 at least: ‖u‖²‖v‖² − (u·v)² cancels for nearly parallel pairs.
  const auto acc = z_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor z = z_in.to(acc);
  const int64_t B = z.size(0), N = z.size(1), n0 = spec.context;
  const at::Tensor zt2 = z.pow(2).sum(-1);  // ‖z_t‖² [B, N]
  at::Tensor w = at::zeros_like(z);
  at::Tensor count = at::zeros({B, N}, z.options());
  for (int64_t offset : spec.offsets) {
    auto [zs, valid] = grassmann_detail::partner(z, documents, offset, spec.future);
    const at::Tensor zz = zt2 * zs.pow(2).sum(-1), dot = (z * zs).sum(-1);
    const at::Tensor area2 = at::clamp_min(zz - dot * dot, 0);  // ‖pl(z_t, z_s)‖²
    const at::Tensor m = valid.to(acc);
    w = w + (m / grassmann_detail::pair_norm(area2, zz, spec)).unsqueeze(-1) * zs;
    count = count + m;
  }
  w = w / at::clamp_min(count, 1).unsqueeze(-1);  // no valid offset: w = 0, so g = bias
  const at::Tensor zt = z.narrow(1, n0, N - n0), wt = w.narrow(1, n0, N - n0);
  return at::linear(plucker(zt, wt), weight.to(acc), bias.to(acc)).to(z_in.scalar_type());
}

}  // namespace attnlab::kernels
