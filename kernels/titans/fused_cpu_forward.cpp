// The fused CPU Titans memory, one chunk forward (fused_cpu_chunk.h): key pass at the anchor,
// query pass through the per-token weights, hand-off of the state, as in dual.cpp.
#include <algorithm>
#include <cmath>

#include "kernels/common/cpu_blas.h"
#include "kernels/titans/fused_cpu_chunk.h"
#include "kernels/titans/fused_cpu_rows.h"

namespace attnlab::kernels::titans_cpu {

using cpu::gemm;

template <class T>
ChunkWork<T>::ChunkWork(const ChunkShape& s) : shape_(s) {
  const size_t L = s.layers();
  const int64_t n = s.n;
  int64_t widest = 0;
  for (int64_t w : s.widths) widest = std::max(widest, w);
  auto per_layer = [&](std::vector<Buf>& b, bool in_width, bool skip_first = false) {
    b.resize(L);
    for (size_t l = skip_first ? 1 : 0; l < L; ++l) b[l].assign(n * s.widths[in_width ? l : l + 1], T(0));
  };
  per_layer(act_, true, true), per_layer(query_act_, true, true), per_layer(d_act_, true);
  for (auto* b : {&z_, &z_aux_, &delta_, &delta_in_, &query_z_, &query_aux_, &d_update_, &d_z_, &d_delta_})
    per_layer(*b, false);
  if (s.max_grad_norm > 0) {
    per_layer(u_, false);
    for (auto* b : {&a_norm_, &d_norm_, &factor_}) b->assign(L, Buf(n));
  }
  scores_.assign(L, Buf(n * n)), weighted_.assign(L, Buf(n * n));
  for (Buf* b : {&d_query_z_, &d_query_act_, &rows_a_, &rows_b_, &proj_e_, &proj_f_})
    b->assign(n * widest, T(0));
  d_scores_.assign(n * n, T(0)), d_weighted_.assign(n * n, T(0));
}

template <class T>
void ChunkWork<T>::key_pass(const T* k, const T* v, const T* const* W) {
  const size_t L = shape_.layers();
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  const auto m = shape_.activation;
  key_ = k;
  for (size_t l = 0; l < L; ++l) {
    gemm<T>(false, false, n, w[l + 1], w[l], T(1), act_in(l), w[l], W[l], w[l + 1], T(0), z_[l].data(), w[l + 1]);
    if (l + 1 < L) activate(z_[l].data(), n * w[l + 1], m, z_aux_[l].data(), act_[l + 1].data());
  }
  const T two_c = T(2 * shape_.loss_scale);
  for (int64_t i = 0; i < n * w[L]; ++i) delta_[L - 1][i] = two_c * (z_[L - 1][i] - v[i]);
  for (size_t l = L - 1; l-- > 0;) {  // Δ_l = (Δ_{l+1} W_{l+1}ᵀ) ⊙ σ'(Z_l)
    gemm<T>(false, true, n, w[l + 1], w[l + 2], T(1), delta_[l + 1].data(), w[l + 2], W[l + 1], w[l + 2], T(0),
            delta_in_[l].data(), w[l + 1]);
    for (int64_t i = 0; i < n * w[l + 1]; ++i) delta_[l][i] = delta_in_[l][i] * act_d1(z_[l][i], z_aux_[l][i], m);
  }
  if (!clamped()) return;
  // Token j's layer gradient is the rank-1 a_jᵀ δ_j, of norm ‖a_j‖‖δ_j‖; its rows of U are scaled.
  for (size_t l = 0; l < L; ++l) {
    const T* a = act_in(l);
    for (int64_t j = 0; j < n; ++j) {
      a_norm_[l][j] = std::sqrt(dot(a + j * w[l], a + j * w[l], w[l]));
      d_norm_[l][j] = std::sqrt(dot(&delta_[l][j * w[l + 1]], &delta_[l][j * w[l + 1]], w[l + 1]));
      factor_[l][j] = T(clamp_factor(double(a_norm_[l][j]) * double(d_norm_[l][j]), shape_.max_grad_norm));
    }
    scale_rows(delta_[l].data(), factor_[l].data(), n, w[l + 1], u_[l].data());
  }
}

template <class T>
void ChunkWork<T>::query_pass(const T* q, const ChunkGates<T>& g, const T* const* W, const T* const* S, T* y) {
  const size_t L = shape_.layers();
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  const auto m = shape_.activation;
  query_ = q;
  for (size_t l = 0; l < L; ++l) {
    const int64_t a = w[l], b = w[l + 1];
    const T* in = query_in(l);
    // M = q_l a_lᵀ (the query row against every key's layer input), N = C θ ⊙ M.
    gemm<T>(false, true, n, n, a, T(1), in, a, act_in(l), a, T(0), scores_[l].data(), n);
    for (int64_t i = 0; i < n * n; ++i) weighted_[l][i] = g.query[i] * scores_[l][i];
    if (l + 1 == L && !y) break;  // the backward's recompute: it needs the top layer's M and N only
    T* qw = rows_a_.data();  // Â W and Â S
    T* qs = rows_b_.data();
    gemm<T>(false, false, n, b, a, T(1), in, a, W[l], b, T(0), qw, b);
    gemm<T>(false, false, n, b, a, T(1), in, a, S[l], b, T(0), qs, b);
    T* out = l + 1 == L ? y : query_z_[l].data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < b; ++c)
        out[i * b + c] = g.query_weight[i] * qw[i * b + c] + g.query_surprise[i] * qs[i * b + c];
    gemm<T>(false, false, n, b, n, T(-1), weighted_[l].data(), n, update(l), b, T(1), out, b);
    if (l + 1 < L) activate(query_z_[l].data(), n * b, m, query_aux_[l].data(), query_act_[l + 1].data());
  }
}

template <class T>
void ChunkWork<T>::hand_off(const ChunkGates<T>& g, T* const* W, T* const* S) {
  // W ← B_n W + D_n S − Aᵀ diag(c) U,  S ← Γ_n S − Aᵀ diag(s) U.
  const int64_t n = shape_.n;
  const auto& w = shape_.widths;
  for (size_t l = 0; l < shape_.layers(); ++l) {
    const int64_t a = w[l], b = w[l + 1];
    for (int64_t i = 0; i < a * b; ++i) W[l][i] = g.end_decay * W[l][i] + g.end_mix * S[l][i];
    scale_rows(update(l), g.end_weight, n, b, rows_a_.data());
    gemm<T>(true, false, a, b, n, T(-1), act_in(l), a, rows_a_.data(), b, T(1), W[l], b);
    for (int64_t i = 0; i < a * b; ++i) S[l][i] *= g.end_momentum;
    scale_rows(update(l), g.end_surprise, n, b, rows_a_.data());
    gemm<T>(true, false, a, b, n, T(-1), act_in(l), a, rows_a_.data(), b, T(1), S[l], b);
  }
}

template <class T>
void ChunkWork<T>::forward(const T* q, const T* k, const T* v, const ChunkGates<T>& g, T* const* W, T* const* S,
                           T* y) {
  key_pass(k, v, W);
  query_pass(q, g, W, S, y);
  hand_off(g, W, S);
}

template class ChunkWork<float>;
template class ChunkWork<double>;

}  // namespace attnlab::kernels::titans_cpu
