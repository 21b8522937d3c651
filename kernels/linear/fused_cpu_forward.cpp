// Fused CPU forward of gated linear attention (api.h). Parallel over batch×head with
// at::parallel_for; each task walks its chunks left to right keeping the state S [dk, dv] in
// the accumulation dtype (non-materialising variant, docs/kernels/linear.md, "Fused kernels").
// Per chunk of L ≤ C tokens:
//   O = scale·(q ⊙ e^ell) S + A V,      S ← Diag(e^{ell_L}) S + (k ⊙ e^{ell_L − ell})ᵀ V
// with A the intra-chunk scores of cpu_head.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <vector>

#include "kernels/linear/cpu_head.h"
#include "kernels/linear/fused.h"

namespace attnlab::kernels {
namespace cpu {

template <class T>
void forward_head(const T* q, const T* k, const T* v, const T* g, T* out, T* S, int64_t T_len,
                  int64_t dk, int64_t dv, T scale, int64_t C, int64_t c) {
  std::vector<T> ell(C * dk), qg(C * dk), A(C * C), kr(C * dk), qr(c * dk), E(c * c * dk);
  const std::vector<T> zero(dk, T(0));
  for (int64_t t0 = 0; t0 < T_len; t0 += C) {
    const int64_t L = std::min(C, T_len - t0);
    const T *qc = q + t0 * dk, *kc = k + t0 * dk, *vc = v + t0 * dv;
    T* oc = out + t0 * dv;
    chunk_cumsum(g + t0 * dk, L, dk, ell.data());
    // Inter-chunk: scale·(q ⊙ e^{ell}) S_{n-1}; every factor ≤ 1.
    rebase(qc, ell.data(), zero.data(), L, dk, +1, qg.data());
    gemm<T>(false, false, L, dv, dk, scale, qg.data(), dk, S, dv, T(0), oc, dv);
    // Intra-chunk: A V with A lower-triangular (the zeroed upper part is never read as nonzero).
    std::fill(A.begin(), A.begin() + L * L, T(0));
    intra_scores_off_diagonal(qc, kc, ell.data(), L, dk, c, scale, A.data(), L, qr.data(), kr.data());
    intra_scores_diagonal(qc, kc, ell.data(), L, dk, c, scale, A.data(), L, E.data());
    gemm<T>(false, false, L, dv, L, T(1), A.data(), L, vc, dv, T(1), oc, dv);
    advance_state(kc, vc, ell.data(), L, dk, dv, S, kr.data());
  }
}

}  // namespace cpu

LinearAttentionResult fused_linear_attention_cpu_forward(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const at::Tensor& g,
                                                         const at::Tensor& s0, FusedShape shape) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3);
  at::Tensor out = at::empty({B, H, T, dv}, q.options());
  at::Tensor S = s0.to(q.scalar_type()).contiguous().clone();  // advanced in place
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused_linear_attention_cpu_forward", [&] {
    const scalar_t *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(),
                   *vp = v.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    scalar_t *op = out.data_ptr<scalar_t>(), *sp = S.data_ptr<scalar_t>();
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh)
        cpu::forward_head<scalar_t>(qp + bh * T * dk, kp + bh * T * dk, vp + bh * T * dv,
                                    gp + bh * T * dk, op + bh * T * dv, sp + bh * dk * dv, T, dk,
                                    dv, static_cast<scalar_t>(shape.scale), shape.chunk_size,
                                    shape.sub_chunk);
    });
  });
  return {out, S};
}

}  // namespace attnlab::kernels
