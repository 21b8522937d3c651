// Fused CPU backward of gated linear attention (docs/kernels/linear.md, "Backward").
// Per batch×head:
// 1. recompute the chunk-start states S_{n-1} (the forward keeps none);
// 2. walk chunks right to left carrying dS (the gradient of the state at the chunk's end):
//      dA = (dO Vᵀ) ⊙ M,   dV = Aᵀ dO + (k ⊙ e^{ell_L − ell}) dS
//      dq = scale·e^{ell} ⊙ (dO S_{n-1}ᵀ) + scale·Σ_{m≤j} dA[j,m] k_m ⊙ e^{ell_j − ell_m}
//      dk = e^{ell_L − ell} ⊙ (V dSᵀ)     + scale·Σ_{j≥m} dA[j,m] q_j ⊙ e^{ell_j − ell_m}
//      dS ← Diag(e^{ell_L}) dS + scale·(q ⊙ e^{ell})ᵀ dO
// 3. gate gradient in closed form, INCLUDING the final-state term the paper omits:
//      dg_t = Σ_{i ≥ t} (q_i ⊙ dq_i − k_i ⊙ dk_i) + rowsum(S_T ⊙ dS_T).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <vector>

#include "kernels/linear/cpu_head.h"
#include "kernels/linear/fused.h"

namespace attnlab::kernels {
namespace cpu {
namespace {

struct Dims {
  int64_t T, dk, dv, C, c;
};

/// Off-diagonal intra-chunk gradient terms via GEMMs on rebased operands (every exp ≤ 0):
///   dq[i rows] += scale · e^{ell − r} ⊙ (dA[i rows, 0:i0] (k ⊙ e^{r − ell})[0:i0]),   r = ell[i0]
///   dk[j cols] += scale · e^{r' − ell} ⊙ (dA[j1:L, j cols]ᵀ (q ⊙ e^{ell − r'})[j1:L]),  r' = ell[j1−1]
/// xr [L, dk], tmp and fac [c, dk] are scratch.
template <class T>
void intra_grads_off_diagonal(const T* q, const T* k, const T* ell, const T* dA, int64_t L,
                              int64_t dk, int64_t c, T scale, T* dq, T* dk_out, T* xr, T* tmp,
                              T* fac) {
  for (int64_t i0 = c; i0 < L; i0 += c) {
    const int64_t rows = std::min(c, L - i0);
    const T* r = ell + i0 * dk;
    rebase(k, ell, r, i0, dk, -1, xr);
    gemm<T>(false, false, rows, dk, i0, T(1), dA + i0 * L, L, xr, dk, T(0), tmp, dk);
    rebase<T>(nullptr, ell + i0 * dk, r, rows, dk, +1, fac);
    for (int64_t i = 0; i < rows * dk; ++i) dq[i0 * dk + i] += scale * fac[i] * tmp[i];
  }
  for (int64_t j0 = 0; j0 + c < L; j0 += c) {
    const int64_t j1 = j0 + c, later = L - j1;
    const T* r = ell + (j1 - 1) * dk;
    rebase(q + j1 * dk, ell + j1 * dk, r, later, dk, +1, xr);
    gemm<T>(true, false, c, dk, later, T(1), dA + j1 * L + j0, L, xr, dk, T(0), tmp, dk);
    rebase<T>(nullptr, ell + j0 * dk, r, c, dk, -1, fac);
    for (int64_t i = 0; i < c * dk; ++i) dk_out[j0 * dk + i] += scale * fac[i] * tmp[i];
  }
}

/// Diagonal sub-blocks, one decay per (a, m, d) shared by the score A and both gradients.
template <class T>
void intra_diagonal_with_grads(const T* q, const T* k, const T* ell, const T* dA, int64_t L,
                               int64_t dk, int64_t c, T scale, T* A, T* dq, T* dk_out, T* E) {
  for (int64_t i0 = 0; i0 < L; i0 += c) {
    const int64_t i1 = std::min(i0 + c, L);
    diagonal_decays(ell, i0, i1, c, dk, E);
    for (int64_t a = i0; a < i1; ++a)
      for (int64_t m = i0; m <= a; ++m) {
        const T w = scale * dA[a * L + m];
        const T* e = E + ((a - i0) * c + (m - i0)) * dk;
        T acc = 0;
        for (int64_t d = 0; d < dk; ++d) {
          acc += q[a * dk + d] * k[m * dk + d] * e[d];
          dq[a * dk + d] += w * k[m * dk + d] * e[d];
          dk_out[m * dk + d] += w * q[a * dk + d] * e[d];
        }
        A[a * L + m] = scale * acc;
      }
  }
}

template <class T>
void backward_head(const T* q, const T* k, const T* v, const T* g, const T* s0, const T* dout,
                   const T* dstate, T* dq, T* dk, T* dv, T* dg, T* ds0, Dims n, T scale) {
  const int64_t dk_ = n.dk, dv_ = n.dv, C = n.C, N = (n.T + C - 1) / C, state = dk_ * dv_;
  std::vector<T> starts(N * state), ell(C * dk_), A(C * C), dA(C * C), xr(C * dk_), tmp(C * dk_),
      fac(C * dk_), E(n.c * n.c * dk_), dS(state), S(state);
  const std::vector<T> zero(dk_, T(0));
  // 1. Chunk-start states.
  std::copy(s0, s0 + state, S.begin());
  for (int64_t c0 = 0, i = 0; c0 < n.T; c0 += C, ++i) {
    const int64_t L = std::min(C, n.T - c0);
    std::copy(S.begin(), S.end(), starts.begin() + i * state);
    chunk_cumsum(g + c0 * dk_, L, dk_, ell.data());
    advance_state(k + c0 * dk_, v + c0 * dv_, ell.data(), L, dk_, dv_, S.data(), xr.data());
  }
  // Final-state term of the gate gradient: r = rowsum(S_T ⊙ dS_T).
  std::vector<T> r(dk_, T(0));
  if (dstate) {
    std::copy(dstate, dstate + state, dS.begin());
    for (int64_t d = 0; d < dk_; ++d)
      for (int64_t e = 0; e < dv_; ++e) r[d] += S[d * dv_ + e] * dstate[d * dv_ + e];
  }
  // 2. Reverse walk over chunks.
  for (int64_t i = N - 1; i >= 0; --i) {
    const int64_t c0 = i * C, L = std::min(C, n.T - c0);
    const T *qc = q + c0 * dk_, *kc = k + c0 * dk_, *vc = v + c0 * dv_, *doc = dout + c0 * dv_;
    T *dqc = dq + c0 * dk_, *dkc = dk + c0 * dk_, *dvc = dv + c0 * dv_;
    const T* S_prev = starts.data() + i * state;
    chunk_cumsum(g + c0 * dk_, L, dk_, ell.data());
    const T* last = ell.data() + (L - 1) * dk_;
    // dA = dO Vᵀ (only m ≤ a is read); A's off-diagonal blocks as in the forward.
    gemm<T>(false, true, L, L, dv_, T(1), doc, dv_, vc, dv_, T(0), dA.data(), L);
    std::fill(A.begin(), A.begin() + L * L, T(0));
    intra_scores_off_diagonal(qc, kc, ell.data(), L, dk_, n.c, scale, A.data(), L, tmp.data(), xr.data());
    // Inter-chunk parts of dq and dk.
    gemm<T>(false, true, L, dk_, dv_, scale, doc, dv_, S_prev, dv_, T(0), dqc, dk_);
    gemm<T>(false, true, L, dk_, dv_, T(1), vc, dv_, dS.data(), dv_, T(0), dkc, dk_);
    rebase<T>(nullptr, ell.data(), zero.data(), L, dk_, +1, fac.data());  // e^{ell}
    for (int64_t i = 0; i < L * dk_; ++i) dqc[i] *= fac[i];
    rebase<T>(nullptr, ell.data(), last, L, dk_, -1, fac.data());         // e^{ell_L − ell}
    for (int64_t i = 0; i < L * dk_; ++i) dkc[i] *= fac[i];
    intra_diagonal_with_grads(qc, kc, ell.data(), dA.data(), L, dk_, n.c, scale, A.data(), dqc, dkc, E.data());
    intra_grads_off_diagonal(qc, kc, ell.data(), dA.data(), L, dk_, n.c, scale, dqc, dkc, xr.data(),
                             tmp.data(), E.data());
    // dV = Aᵀ dO + (k ⊙ e^{ell_L − ell}) dS.
    for (int64_t i = 0; i < L * dk_; ++i) xr[i] = kc[i] * fac[i];
    gemm<T>(true, false, L, dv_, L, T(1), A.data(), L, doc, dv_, T(0), dvc, dv_);
    gemm<T>(false, false, L, dv_, dk_, T(1), xr.data(), dk_, dS.data(), dv_, T(1), dvc, dv_);
    // dS ← Diag(e^{ell_L}) dS + scale·(q ⊙ e^{ell})ᵀ dO.
    for (int64_t d = 0; d < dk_; ++d) {
      const T decay = std::exp(last[d]);
      for (int64_t e = 0; e < dv_; ++e) dS[d * dv_ + e] *= decay;
    }
    rebase(qc, ell.data(), zero.data(), L, dk_, +1, xr.data());
    gemm<T>(true, false, dk_, dv_, L, scale, xr.data(), dk_, doc, dv_, T(1), dS.data(), dv_);
  }
  std::copy(dS.begin(), dS.end(), ds0);
  // 3. dg_t = revcumsum(q ⊙ dq − k ⊙ dk)_t + r.
  std::vector<T> run(r);
  for (int64_t t = n.T - 1; t >= 0; --t)
    for (int64_t d = 0; d < dk_; ++d) {
      run[d] += q[t * dk_ + d] * dq[t * dk_ + d] - k[t * dk_ + d] * dk[t * dk_ + d];
      dg[t * dk_ + d] = run[d];
    }
}

}  // namespace
}  // namespace cpu

LinearAttentionGrads fused_linear_attention_cpu_backward(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const at::Tensor& g,
                                                         const at::Tensor& s0, const at::Tensor& dout,
                                                         const at::Tensor& dstate, FusedShape shape) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3);
  LinearAttentionGrads grads;
  grads.dq = at::empty_like(q), grads.dk = at::empty_like(k), grads.dv = at::empty_like(v);
  grads.dg = at::empty_like(q);
  grads.dstate0 = at::empty({B, H, dk, dv}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_linear_attention_cpu_backward", [&] {
    using T_ = scalar_t;
    auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T_>() : nullptr; };
    const T_ *qp = ptr(q), *kp = ptr(k), *vp = ptr(v), *gp = ptr(g), *s0p = ptr(s0),
             *dop = ptr(dout), *dsp = ptr(dstate);
    T_ *dqp = ptr(grads.dq), *dkp = ptr(grads.dk), *dvp = ptr(grads.dv), *dgp = ptr(grads.dg),
       *ds0p = ptr(grads.dstate0);
    const cpu::Dims dims{T, dk, dv, shape.chunk_size, shape.sub_chunk};
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t xk = bh * T * dk, xv = bh * T * dv, st = bh * dk * dv;
        cpu::backward_head<T_>(qp + xk, kp + xk, vp + xv, gp + xk, s0p + st,
                               dop + xv, dsp ? dsp + st : nullptr, dqp + xk, dkp + xk, dvp + xv,
                               dgp + xk, ds0p + st, dims,
                               static_cast<T_>(shape.scale));
      }
    });
  });
  return grads;
}

}  // namespace attnlab::kernels
