#include "kernels/titans/dual.h"

#include <ATen/ops/cat.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/log.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

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

// Rows shifted down by one along dim −2 (−1 for vectors), `first` in the new first row: the
// coefficients of W_{t−1} for read-before-write.
at::Tensor shift_rows(const at::Tensor& x, double first, int64_t dim) {
  const int64_t n = x.size(dim);
  at::Tensor head = at::full_like(x.narrow(dim, 0, 1), first);
  return at::cat({head, x.narrow(dim, 0, n - 1)}, dim);
}

/// One piece of n ≤ chunk − τ tokens from state s (advanced in place); returns y [B, H, n, d].
at::Tensor dual_piece(const at::Tensor& Q, const at::Tensor& K, const at::Tensor& V, const at::Tensor& theta,
                      const at::Tensor& alpha, const at::Tensor& eta, MemoryState& s, const MemorySpec& spec) {
  const size_t L = s.weights.size();
  const int64_t n = Q.size(2);
  const at::Tensor la = safe_log(1 - alpha), le = safe_log(eta);  // [B, H, n]
  const at::Tensor Pa = segsum_exp(la), Pe = segsum_exp(le);       // [B, H, n, n]
  const at::Tensor Bv = at::exp(at::cumsum(la, -1)), G = at::exp(at::cumsum(le, -1));
  const at::Tensor C = at::matmul(Pa, Pe);
  const at::Tensor D = at::matmul(Pa, G.unsqueeze(-1)).squeeze(-1);
  const at::Tensor CT = C * theta.unsqueeze(-2);  // CT[t, j] = C[t, j] θ_j

  // Key pass at the anchor: activations A_l and the backpropagated errors Δ_l.
  std::vector<at::Tensor> A{K}, Z, Delta(L);
  for (size_t l = 0; l < L; ++l) {
    Z.push_back(at::matmul(A.back(), s.anchor[l]));
    if (l + 1 < L) A.push_back(memory_activation(Z.back(), spec.activation));
  }
  Delta[L - 1] = 2 * spec.loss_scale * (Z.back() - V);
  for (size_t l = L - 1; l > 0; --l)
    Delta[l - 1] = at::matmul(Delta[l], s.anchor[l].transpose(-1, -2)) * memory_activation_grad(Z[l - 1], spec.activation);

  // The rows of u_l = Aᵀ Δ as the update uses them (soft-clamped when asked); the chain above
  // backpropagates the unclamped Δ, as the single-token gradient does.
  std::vector<at::Tensor> U(L);
  for (size_t l = 0; l < L; ++l) U[l] = Delta[l] * gradient_clamp(A[l], Delta[l], spec);

  // Query pass through the per-token weights W_t (or W_{t−1}).
  const bool after = spec.read_after_write;
  const at::Tensor Bq = (after ? Bv : shift_rows(Bv, 1.0, -1)).unsqueeze(-1);
  const at::Tensor Dq = (after ? D : shift_rows(D, 0.0, -1)).unsqueeze(-1);
  const at::Tensor CTq = after ? CT : shift_rows(CT, 0.0, -2);
  at::Tensor Ah = Q, Zh;
  for (size_t l = 0; l < L; ++l) {
    Zh = Bq * at::matmul(Ah, s.weights[l]) + Dq * at::matmul(Ah, s.momentum[l]) -
         at::matmul(CTq * at::matmul(Ah, A[l].transpose(-1, -2)), U[l]);
    if (l + 1 < L) Ah = memory_activation(Zh, spec.activation);
  }

  // Hand the state to the next piece: W ← B_n W + D_n S − Aᵀ diag(c) Δ, S ← Γ_n S − Aᵀ diag(s) Δ.
  const at::Tensor c = (CT.select(-2, n - 1)).unsqueeze(-1);               // C_{n,j} θ_j
  const at::Tensor sv = (Pe.select(-2, n - 1) * theta).unsqueeze(-1);      // (Γ_n / Γ_j) θ_j
  const at::Tensor Bn = Bv.select(-1, n - 1).unsqueeze(-1).unsqueeze(-1), Dn = D.select(-1, n - 1).unsqueeze(-1).unsqueeze(-1),
                   Gn = G.select(-1, n - 1).unsqueeze(-1).unsqueeze(-1);
  for (size_t l = 0; l < L; ++l) {
    const at::Tensor At = A[l].transpose(-1, -2);
    const at::Tensor W = Bn * s.weights[l] + Dn * s.momentum[l] - at::matmul(At, c * U[l]);
    s.momentum[l] = Gn * s.momentum[l] - at::matmul(At, sv * U[l]);
    s.weights[l] = W;
  }
  s.tau += n;
  if (s.tau == spec.chunk) s.tau = 0, s.anchor = s.weights;
  return Zh;
}

}  // namespace

std::pair<at::Tensor, MemoryState> memory_dual(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& theta, const at::Tensor& alpha, const at::Tensor& eta,
                                               const MemoryState& state, const MemorySpec& spec) {
  TORCH_CHECK(spec.chunk >= 1, "titans: chunk must be >= 1, got ", spec.chunk);
  TORCH_CHECK(state.tau >= 0 && state.tau < spec.chunk, "titans: state position ", state.tau, " outside a chunk of ",
              spec.chunk);
  MemoryState s = state;
  const int64_t N = q.size(2);
  if (N == 0) return {q.clone(), s};
  const auto acc = s.weights.at(0).scalar_type();
  std::vector<at::Tensor> ys;
  for (int64_t p = 0; p < N;) {
    const int64_t n = std::min(spec.chunk - s.tau, N - p);
    auto piece = [&](const at::Tensor& t) { return t.narrow(2, p, n).to(acc); };
    ys.push_back(dual_piece(piece(q), piece(k), piece(v), piece(theta), piece(alpha), piece(eta), s, spec));
    p += n;
  }
  return {at::cat(ys, 2).to(q.scalar_type()), s};
}

}  // namespace attnlab::kernels
