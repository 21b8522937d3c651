#include "kernels/grassmann/reference.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/triu_indices.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

namespace attnlab::kernels {

at::Tensor plucker(const at::Tensor& u, const at::Tensor& v) {
  const int64_t r = u.size(-1);
  const at::Tensor ij = at::triu_indices(r, r, 1, at::TensorOptions().dtype(at::kLong).device(u.device()));
  const at::Tensor i = ij[0], j = ij[1];
  return u.index_select(-1, i) * v.index_select(-1, j) - u.index_select(-1, j) * v.index_select(-1, i);
}

namespace grassmann_detail {

std::pair<at::Tensor, at::Tensor> partner(const at::Tensor& z, const at::Tensor& documents, int64_t offset,
                                          bool future) {
  const int64_t B = z.size(0), N = z.size(1);
  const int64_t d = std::min(offset, N);
  at::Tensor pad = at::zeros({B, d, z.size(2)}, z.options());
  // Past: row t holds z_{t−Δ}; future: z_{t+Δ}. Rows without a partner hold zeros.
  at::Tensor zs = future ? at::cat({z.narrow(1, d, N - d), pad}, 1) : at::cat({pad, z.narrow(1, 0, N - d)}, 1);
  const at::Tensor t = at::arange(N, at::TensorOptions().dtype(at::kLong).device(z.device()));
  at::Tensor valid = (future ? t + offset < N : t - offset >= 0).unsqueeze(0).expand({B, N});
  if (documents.defined()) {
    at::Tensor doc = documents.to(z.device(), at::kLong);
    at::Tensor pad_doc = at::full({B, d}, -1, doc.options());
    at::Tensor ds = future ? at::cat({doc.narrow(1, d, N - d), pad_doc}, 1) : at::cat({pad_doc, doc.narrow(1, 0, N - d)}, 1);
    valid = valid & (ds == doc);
  }
  return {zs, valid};
}

at::Tensor pair_norm(const at::Tensor& p2, const at::Tensor& zz, const GrassmannSpec& spec) {
  switch (spec.norm) {
    case PluckerNorm::smooth: return at::sqrt(p2 + spec.eps * spec.eps * (zz + 1));
    // sqrt(max(‖p‖², ε²)) = max(‖p‖, ε), without sqrt's infinite slope at 0 under the clamp.
    case PluckerNorm::clamp: return at::sqrt(at::clamp_min(p2, spec.eps * spec.eps));
    case PluckerNorm::none: return at::ones_like(p2);
  }
  return p2;
}

}  // namespace grassmann_detail

at::Tensor grassmann_mix_reference(const at::Tensor& z_in, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& documents, const GrassmannSpec& spec) {
  TORCH_CHECK(z_in.dim() == 3, "grassmann: z must be [B, N, r], got ", z_in.sizes());
  const auto acc = z_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor z = z_in.to(acc), W = weight.to(acc), b = bias.to(acc);
  const int64_t B = z.size(0), N = z.size(1), n0 = spec.context;
  at::Tensor sum = at::zeros({B, N, W.size(0)}, z.options());
  at::Tensor count = at::zeros({B, N}, z.options());
  for (int64_t offset : spec.offsets) {
    auto [zs, valid] = grassmann_detail::partner(z, documents, offset, spec.future);
    const at::Tensor p = plucker(z, zs);
    const at::Tensor zz = z.pow(2).sum(-1) * zs.pow(2).sum(-1);
    const at::Tensor n = grassmann_detail::pair_norm(p.pow(2).sum(-1), zz, spec);
    const at::Tensor m = valid.to(acc);
    sum = sum + m.unsqueeze(-1) * at::linear(p / n.unsqueeze(-1), W, b);
    count = count + m;
  }
  // The masked average; g = bias where no offset is valid (the sequence start).
  at::Tensor g = at::where(count.unsqueeze(-1) > 0, sum / at::clamp_min(count, 1).unsqueeze(-1), b.expand_as(sum));
  return g.narrow(1, n0, N - n0).to(z_in.scalar_type());
}

}  // namespace attnlab::kernels
