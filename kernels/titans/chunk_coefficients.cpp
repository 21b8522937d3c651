#include "kernels/titans/chunk_coefficients.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/log.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>

#include <limits>

namespace attnlab::kernels {

at::Tensor segsum_exp(const at::Tensor& x) {
  const int64_t n = x.size(-1);
  const auto bool_opts = at::TensorOptions().dtype(at::kBool).device(x.device());
  const at::Tensor strict = at::ones({n, n}, bool_opts).tril(-1), lower = at::ones({n, n}, bool_opts).tril();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.push_back(n);
  const at::Tensor xe = x.unsqueeze(-1).expand(shape).masked_fill(strict.logical_not(), 0);  // xe[.., k, i] = x_k [k > i]
  const at::Tensor seg = at::cumsum(xe, -2);                                 // Σ_{k ≤ t, k > i} x_k
  return at::exp(seg.masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity()));
}

namespace {

// The logs of the decays, floored so that a gate at exactly 0 (η = 0, 1 − α = 0) stays finite in
// the backward (e^−69 is below every rounding that matters here).
at::Tensor safe_log(const at::Tensor& x) { return at::log(at::clamp_min(x, 1e-30)); }

// Entries shifted down by one along `dim`, `first` in the new first place: the coefficients of
// W_{t−1} for read-before-write.
at::Tensor shift_rows(const at::Tensor& x, double first, int64_t dim) {
  const int64_t n = x.size(dim);
  at::Tensor head = at::full_like(x.narrow(dim, 0, 1), first);
  return at::cat({head, x.narrow(dim, 0, n - 1)}, dim);
}

}  // namespace

ChunkCoefficients chunk_coefficients(const at::Tensor& theta, const at::Tensor& alpha, const at::Tensor& eta,
                                     bool read_after_write) {
  const at::Tensor la = safe_log(1 - alpha), le = safe_log(eta);
  const at::Tensor Pa = segsum_exp(la), Pe = segsum_exp(le);  // [..., n, n]
  const at::Tensor Bv = at::exp(at::cumsum(la, -1)), G = at::exp(at::cumsum(le, -1));
  const at::Tensor D = at::matmul(Pa, G.unsqueeze(-1)).squeeze(-1);
  const at::Tensor CT = at::matmul(Pa, Pe) * theta.unsqueeze(-2);  // CT[t, j] = C[t, j] θ_j
  ChunkCoefficients c;
  c.query = read_after_write ? CT : shift_rows(CT, 0.0, -2);
  c.query_weight = read_after_write ? Bv : shift_rows(Bv, 1.0, -1);
  c.query_surprise = read_after_write ? D : shift_rows(D, 0.0, -1);
  c.end_weight = CT.select(-2, -1);
  c.end_surprise = Pe.select(-2, -1) * theta;
  c.end_decay = Bv.select(-1, -1);
  c.end_mix = D.select(-1, -1);
  c.end_momentum = G.select(-1, -1);
  return c;
}

}  // namespace attnlab::kernels
