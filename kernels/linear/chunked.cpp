#include "kernels/linear/chunked.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/eye.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <limits>
#include <vector>

#include "kernels/linear/reference.h"

namespace attnlab::kernels {
namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Intra-chunk scores A [B, H, N, C, C] (lower triangle incl. diagonal, unscaled) from the
/// chunked q, k and in-chunk cumulative log-gates ell, all [B, H, N, C, dk].
at::Tensor intra_chunk_scores(const at::Tensor& q, const at::Tensor& k, const at::Tensor& ell,
                              int64_t c) {
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), C = q.size(3), dk = q.size(4);
  const int64_t NC = C / c;
  auto sub = [&](const at::Tensor& x) { return x.reshape({B, H, N, NC, c, dk}); };
  at::Tensor qs = sub(q), ks = sub(k), ls = sub(ell);
  auto bool_opts = q.options().dtype(at::kBool);
  // Off-diagonal sub-blocks (query sub-chunk i > key sub-chunk j): rebase both sides on
  // r_i = ell at the first row of sub-chunk i, so e^{ell_t − r_i} ≤ 1 and e^{r_i − ell_m} ≤ 1.
  at::Tensor r = ls.narrow(4, 0, 1);                                    // [B,H,N,NC(i),1,dk]
  at::Tensor q_rebased = qs * at::exp(ls - r);                          // [B,H,N,NC,c,dk]
  at::Tensor key_exp = r.unsqueeze(4) - ls.unsqueeze(3);                // [B,H,N,NC(i),NC(j),c,dk]
  at::Tensor earlier = at::ones({NC, NC}, bool_opts).tril(-1);          // j < i
  key_exp = key_exp.masked_fill(earlier.logical_not().view({NC, NC, 1, 1}), kNegInf);
  at::Tensor k_rebased = ks.unsqueeze(3) * at::exp(key_exp);            // [B,H,N,NC,NC,c,dk]
  at::Tensor off = at::einsum("bhniad,bhnijed->bhnijae", {q_rebased, k_rebased});
  // Diagonal sub-blocks: exact elementwise e^{ell_a − ell_e} for e ≤ a.
  at::Tensor diag_exp = ls.unsqueeze(5) - ls.unsqueeze(4);              // [B,H,N,NC,c(a),c(e),dk]
  at::Tensor causal = at::ones({c, c}, bool_opts).tril();
  diag_exp = diag_exp.masked_fill(causal.logical_not().view({c, c, 1}), kNegInf);
  at::Tensor diag = at::einsum("bhniad,bhnied,bhniaed->bhniae", {qs, ks, at::exp(diag_exp)});
  // Assemble [NC, NC] blocks of [c, c] into [C, C].
  at::Tensor is_diag = at::eye(NC, bool_opts).view({NC, NC, 1, 1});
  at::Tensor blocks = at::where(is_diag, diag.unsqueeze(4), off);       // [B,H,N,NC,NC,c,c]
  return blocks.permute({0, 1, 2, 3, 5, 4, 6}).reshape({B, H, N, C, C});
}
}  // namespace

LinearAttentionResult linear_attention_chunked(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& g,
                                               const at::Tensor& s0, double scale,
                                               int64_t C, int64_t c) {
  const auto acc = linear_state_dtype(q.scalar_type());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3);
  const int64_t N = (T + C - 1) / C, pad = N * C - T;
  // Padding keys/values with 0 and gates with 0 (no decay) leaves outputs and state unchanged.
  auto chunked = [&](const at::Tensor& x) {
    at::Tensor p = at::constant_pad_nd(x.to(acc), {0, 0, 0, pad});
    return p.reshape({B, H, N, C, x.size(3)});
  };
  at::Tensor qc = chunked(q), kc = chunked(k), vc = chunked(v);
  at::Tensor ell = at::cumsum(chunked(g), 3);                           // [B,H,N,C,dk]
  at::Tensor ell_last = ell.narrow(3, C - 1, 1);                        // [B,H,N,1,dk]

  at::Tensor A = intra_chunk_scores(qc, kc, ell, c) * scale;            // [B,H,N,C,C]
  at::Tensor out = at::matmul(A, vc);                                   // [B,H,N,C,dv]
  // Per-chunk state contributions U_n = (K ⊙ e^{ell_C − ell})ᵀ V, then a scan over chunks.
  at::Tensor U = at::matmul((kc * at::exp(ell_last - ell)).transpose(3, 4), vc);  // [B,H,N,dk,dv]
  at::Tensor chunk_decay = at::exp(ell_last).transpose(3, 4);           // [B,H,N,dk,1]
  at::Tensor S = s0.defined() ? s0.to(acc) : at::zeros({B, H, dk, dv}, q.options().dtype(acc));
  std::vector<at::Tensor> starts;
  starts.reserve(N);
  for (int64_t n = 0; n < N; ++n) {
    starts.push_back(S);
    S = chunk_decay.select(2, n) * S + U.select(2, n);
  }
  at::Tensor S_prev = at::stack(starts, 2);                             // [B,H,N,dk,dv]
  out = out + at::matmul(qc * at::exp(ell), S_prev) * scale;
  out = out.reshape({B, H, N * C, dv}).narrow(2, 0, T);
  return {out.to(q.scalar_type()), S};
}

}  // namespace attnlab::kernels
