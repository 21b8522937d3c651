#include "kernels/titans/dual.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/matmul.h>

#include "kernels/titans/chunk_coefficients.h"

namespace attnlab::kernels {

namespace {

/// One piece of n ≤ chunk − τ tokens from state s (advanced in place); returns y [B, H, n, d].
at::Tensor dual_piece(const at::Tensor& Q, const at::Tensor& K, const at::Tensor& V, const at::Tensor& theta,
                      const at::Tensor& alpha, const at::Tensor& eta, MemoryState& s, const MemorySpec& spec) {
  const size_t L = s.weights.size();
  const int64_t n = Q.size(2);
  const ChunkCoefficients co = chunk_coefficients(theta, alpha, eta, spec.read_after_write);

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
  const at::Tensor Bq = co.query_weight.unsqueeze(-1), Dq = co.query_surprise.unsqueeze(-1), CTq = co.query;
  at::Tensor Ah = Q, Zh;
  for (size_t l = 0; l < L; ++l) {
    Zh = Bq * at::matmul(Ah, s.weights[l]) + Dq * at::matmul(Ah, s.momentum[l]) -
         at::matmul(CTq * at::matmul(Ah, A[l].transpose(-1, -2)), U[l]);
    if (l + 1 < L) Ah = memory_activation(Zh, spec.activation);
  }

  // Hand the state to the next piece: W ← B_n W + D_n S − Aᵀ diag(c) Δ, S ← Γ_n S − Aᵀ diag(s) Δ.
  const at::Tensor c = co.end_weight.unsqueeze(-1), sv = co.end_surprise.unsqueeze(-1);
  auto scalar = [](const at::Tensor& x) { return x.unsqueeze(-1).unsqueeze(-1); };
  const at::Tensor Bn = scalar(co.end_decay), Dn = scalar(co.end_mix), Gn = scalar(co.end_momentum);
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
