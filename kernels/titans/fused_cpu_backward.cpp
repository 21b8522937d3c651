// The fused CPU Titans memory, one chunk backward (fused_cpu_chunk.h; the derivation is in
// docs/mixers/titans.md, "Fused CPU kernel"). The chunk's forward is recomputed from its start
// state, then the three passes are reversed: hand-off, query pass (top layer down), the clamp,
// the error chain Δ (with σ'', the second-order path) and the key pass. The key pass, the query
// pass and the hand-off all read the start weights W (the anchor), so every W term lands in dW.
#include <algorithm>

#include "kernels/common/cpu_blas.h"
#include "kernels/titans/fused_cpu_chunk.h"
#include "kernels/titans/fused_cpu_rows.h"

namespace attnlab::kernels::titans_cpu {

using cpu::gemm;

template <class T>
void ChunkWork<T>::hand_off_backward(const ChunkGates<T>& g, const T* const* W, const T* const* S, T* const* dW,
                                     T* const* dS, const ChunkGateGrads<T>& dg) {
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  for (size_t l = 0; l < shape_.layers(); ++l) {
    const int64_t a = w[l], b = w[l + 1];
    T* gW = dW[l];
    T* gS = dS[l];
    *dg.end_decay += dot(W[l], gW, a * b);
    *dg.end_mix += dot(S[l], gW, a * b);
    *dg.end_momentum += dot(S[l], gS, a * b);
    // −Aᵀ diag(c) U: E = A dW', dc_j = −u_j·E_j, dU_j = −c_j E_j, dA = −diag(c) U dW'ᵀ (and S's).
    gemm<T>(false, false, n, b, a, T(1), act_in(l), a, gW, b, T(0), proj_e_.data(), b);
    gemm<T>(false, false, n, b, a, T(1), act_in(l), a, gS, b, T(0), proj_f_.data(), b);
    const T* U = update(l);
    for (int64_t j = 0; j < n; ++j) {
      dg.end_weight[j] -= dot(U + j * b, &proj_e_[j * b], b);
      dg.end_surprise[j] -= dot(U + j * b, &proj_f_[j * b], b);
      for (int64_t c = 0; c < b; ++c)
        d_update_[l][j * b + c] -= g.end_weight[j] * proj_e_[j * b + c] + g.end_surprise[j] * proj_f_[j * b + c];
    }
    scale_rows(U, g.end_weight, n, b, rows_a_.data());
    gemm<T>(false, true, n, a, b, T(-1), rows_a_.data(), b, gW, b, T(1), d_act_[l].data(), a);
    scale_rows(U, g.end_surprise, n, b, rows_a_.data());
    gemm<T>(false, true, n, a, b, T(-1), rows_a_.data(), b, gS, b, T(1), d_act_[l].data(), a);
    // The start state's share through the decays (S's first: it reads dW').
    for (int64_t i = 0; i < a * b; ++i) gS[i] = g.end_mix * gW[i] + g.end_momentum * gS[i];
    for (int64_t i = 0; i < a * b; ++i) gW[i] *= g.end_decay;
  }
}

template <class T>
void ChunkWork<T>::query_backward(const ChunkGates<T>& g, const T* const* W, const T* const* S,
                                  const T* dy, T* const* dW, T* const* dS, T* dq, const ChunkGateGrads<T>& dg) {
  const size_t L = shape_.layers();
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  const auto m = shape_.activation;
  std::copy(dy, dy + n * w[L], d_query_z_.begin());
  for (size_t l = L; l-- > 0;) {
    // Zh = diag(B) (q_l W) + diag(D) (q_l S) − N U,  N = Cθ ⊙ (q_l a_lᵀ).
    const int64_t a = w[l], b = w[l + 1];
    const T* in = query_in(l);
    const T* dz = d_query_z_.data();
    scale_rows(dz, g.query_weight, n, b, proj_e_.data());
    scale_rows(dz, g.query_surprise, n, b, proj_f_.data());
    gemm<T>(true, false, a, b, n, T(1), in, a, proj_e_.data(), b, T(1), dW[l], b);
    gemm<T>(true, false, a, b, n, T(1), in, a, proj_f_.data(), b, T(1), dS[l], b);
    // G = dẐ Wᵀ and dẐ Sᵀ give both dÂ = diag(B) G_W + diag(D) G_S and, as ⟨G, Â⟩ per row, the
    // coefficient gradients ⟨dẐ, Â W⟩: the recompute need not form the products Â W, Â S.
    T* gw = rows_a_.data();
    T* gs = rows_b_.data();
    gemm<T>(false, true, n, a, b, T(1), dz, b, W[l], b, T(0), gw, a);
    gemm<T>(false, true, n, a, b, T(1), dz, b, S[l], b, T(0), gs, a);
    T* d_in = d_query_act_.data();
    for (int64_t i = 0; i < n; ++i) {
      dg.query_weight[i] += dot(gw + i * a, in + i * a, a);
      dg.query_surprise[i] += dot(gs + i * a, in + i * a, a);
      for (int64_t c = 0; c < a; ++c)
        d_in[i * a + c] = g.query_weight[i] * gw[i * a + c] + g.query_surprise[i] * gs[i * a + c];
    }
    gemm<T>(false, true, n, n, b, T(-1), dz, b, update(l), b, T(0), d_weighted_.data(), n);          // dN
    gemm<T>(true, false, n, b, n, T(-1), weighted_[l].data(), n, dz, b, T(1), d_update_[l].data(), b);  // dU −= Nᵀ dZh
    for (int64_t i = 0; i < n * n; ++i) {
      dg.query[i] += d_weighted_[i] * scores_[l][i];
      d_scores_[i] = d_weighted_[i] * g.query[i];
    }
    gemm<T>(false, false, n, a, n, T(1), d_scores_.data(), n, act_in(l), a, T(1), d_in, a);
    gemm<T>(true, false, n, a, n, T(1), d_scores_.data(), n, in, a, T(1), d_act_[l].data(), a);
    if (l == 0) {
      std::copy(d_in, d_in + n * a, dq);
      break;
    }
    for (int64_t i = 0; i < n * a; ++i)
      d_query_z_[i] = d_in[i] * act_d1(query_z_[l - 1][i], query_aux_[l - 1][i], m);
  }
}

template <class T>
void ChunkWork<T>::key_backward(const T* const* W, T* const* dW, T* dk, T* dv) {
  const size_t L = shape_.layers();
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  const auto m = shape_.activation;
  // The clamp: U = diag(f(x)) Δ, x = ‖a‖‖δ‖ per row; f' enters through both norms.
  for (size_t l = 0; l < L; ++l) {
    const int64_t a = w[l], b = w[l + 1];
    if (!clamped()) {
      d_delta_[l] = d_update_[l];
      continue;
    }
    const T* A = act_in(l);
    for (int64_t j = 0; j < n; ++j) {
      const T* dj = &delta_[l][j * b];
      const T* du = &d_update_[l][j * b];
      const double an = a_norm_[l][j], dn = d_norm_[l][j];
      const T slope = T(dot(du, dj, b) * clamp_slope(an * dn, shape_.max_grad_norm));  // d(factor)/dx / x
      for (int64_t c = 0; c < b; ++c) d_delta_[l][j * b + c] = factor_[l][j] * du[c] + slope * T(an * an) * dj[c];
      for (int64_t c = 0; c < a; ++c) d_act_[l][j * a + c] += slope * T(dn * dn) * A[j * a + c];
    }
  }
  // Δ_l = H_l ⊙ σ'(Z_l), H_l = Δ_{l+1} W_{l+1}ᵀ, from the bottom layer up.
  for (size_t l = 0; l + 1 < L; ++l) {
    const int64_t b = w[l + 1], c = w[l + 2];
    T* dH = rows_a_.data();
    for (int64_t i = 0; i < n * b; ++i) {
      const T z = z_[l][i], s = z_aux_[l][i];
      dH[i] = d_delta_[l][i] * act_d1(z, s, m);
      d_z_[l][i] += d_delta_[l][i] * delta_in_[l][i] * act_d2(z, s, m);
    }
    gemm<T>(false, false, n, c, b, T(1), dH, b, W[l + 1], c, T(1), d_delta_[l + 1].data(), c);
    gemm<T>(true, false, b, c, n, T(1), dH, b, delta_[l + 1].data(), c, T(1), dW[l + 1], c);
  }
  // Δ_L = 2c (Z_L − v).
  const T two_c = T(2 * shape_.loss_scale);
  for (int64_t i = 0; i < n * w[L]; ++i) {
    d_z_[L - 1][i] += two_c * d_delta_[L - 1][i];
    dv[i] = -two_c * d_delta_[L - 1][i];
  }
  // Z_l = a_l W_l, a_{l+1} = σ(Z_l), from the top layer down.
  for (size_t l = L; l-- > 0;) {
    const int64_t a = w[l], b = w[l + 1];
    gemm<T>(false, true, n, a, b, T(1), d_z_[l].data(), b, W[l], b, T(1), d_act_[l].data(), a);
    gemm<T>(true, false, a, b, n, T(1), act_in(l), a, d_z_[l].data(), b, T(1), dW[l], b);
    if (l == 0) break;
    for (int64_t i = 0; i < n * a; ++i) d_z_[l - 1][i] += d_act_[l][i] * act_d1(z_[l - 1][i], z_aux_[l - 1][i], m);
  }
  std::copy(d_act_[0].begin(), d_act_[0].end(), dk);
}

template <class T>
void ChunkWork<T>::backward(const T* q, const T* k, const T* v, const ChunkGates<T>& g, const T* const* W,
                            const T* const* S, const T* dy, T* const* dW, T* const* dS, T* dq, T* dk, T* dv,
                            const ChunkGateGrads<T>& dg) {
  key_pass(k, v, W);
  query_pass(q, g, W, S, nullptr);
  for (auto* bufs : {&d_act_, &d_update_, &d_z_})
    for (Buf& b : *bufs) std::fill(b.begin(), b.end(), T(0));
  const int64_t n = shape_.n;
  std::fill(dg.query, dg.query + n * n, T(0));
  for (T* x : {dg.query_weight, dg.query_surprise, dg.end_weight, dg.end_surprise}) std::fill(x, x + n, T(0));
  *dg.end_decay = *dg.end_mix = *dg.end_momentum = T(0);
  hand_off_backward(g, W, S, dW, dS, dg);
  query_backward(g, W, S, dy, dW, dS, dq, dg);
  key_backward(W, dW, dk, dv);
}

// The class itself is instantiated in fused_cpu_forward.cpp, which cannot see these definitions.
#define ATTNLAB_CHUNK_BACKWARD(T)                                                                                  \
  template void ChunkWork<T>::backward(const T*, const T*, const T*, const ChunkGates<T>&, const T* const*,      \
                                       const T* const*, const T*, T* const*, T* const*, T*, T*, T*,             \
                                       const ChunkGateGrads<T>&);
ATTNLAB_CHUNK_BACKWARD(float)
ATTNLAB_CHUNK_BACKWARD(double)
#undef ATTNLAB_CHUNK_BACKWARD

}  // namespace attnlab::kernels::titans_cpu
