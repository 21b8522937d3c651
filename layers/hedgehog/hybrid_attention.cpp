#include "layers/hedgehog/hybrid_attention.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>

#include <cmath>
#include <limits>

namespace attnlab::layers {
namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Linear-part numerator [B, H, T, dv] and denominator [B, H, T, 1]. The keys and values are
/// those of the call's T tokens preceded by `lead` zero (absent) tokens; query t reads the
/// stream up to position t, so `lead` = w delays every key by w tokens.
/// `keep` [B, 1, T, 1] (optional) drops delayed keys from another document than the query's.
std::pair<at::Tensor, at::Tensor> linear_sums(const at::Tensor& phi_q, const at::Tensor& phi_k,
                                              const at::Tensor& v, int64_t lead, const LinearRunner& linear,
                                              const at::Tensor& keep = {}) {
  const auto acc = kernels::linear_state_dtype(v.scalar_type());
  const int64_t T = phi_q.size(2), dv = v.size(3);
  at::Tensor ones = at::ones({v.size(0), v.size(1), v.size(2), 1}, v.options().dtype(acc));
  at::Tensor v1 = at::cat({v.to(acc), ones}, -1);  // [B, H, n, dv + 1]: the ones column gives z
  at::Tensor keys = phi_k.to(acc);
  if (lead > 0 || keys.size(2) != T) {
    keys = at::constant_pad_nd(keys, {0, 0, lead, 0}).narrow(2, 0, T);
    v1 = at::constant_pad_nd(v1, {0, 0, lead, 0}).narrow(2, 0, T);
  }
  if (keep.defined()) keys = keys * keep.to(acc), v1 = v1 * keep.to(acc);
  at::Tensor out = linear(phi_q.to(acc), keys, v1);
  return {out.narrow(-1, 0, dv), out.narrow(-1, dv, 1)};
}

/// `halo` then `x` along T (dim 2 of [B, H, T, ·], dim 1 of document ids [B, T]).
at::Tensor with_halo(const at::Tensor& halo, const at::Tensor& x, int64_t dim = 2) {
  return halo.defined() && halo.size(dim) > 0 ? at::cat({halo.to(x.scalar_type()), x}, dim) : x;
}
}  // namespace

LinearRunner kernel_runner(kernels::LinearAttentionOptions opts) {
  opts.scale = 1.0;
  return [opts](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return kernels::linear_attention(q, k, v, {}, {}, opts).out;
  };
}

at::Tensor normalized_linear_attention(const at::Tensor& phi_q, const at::Tensor& phi_k,
                                       const at::Tensor& v, double eps, const LinearRunner& linear) {
  auto [num, den] = linear_sums(phi_q, phi_k, v, 0, linear);
  return (num / (den + eps)).to(v.scalar_type());
}

at::Tensor sliding_window_hybrid_attention(const at::Tensor& q, const at::Tensor& k_in,
                                           const at::Tensor& v_in, const at::Tensor& phi_q,
                                           const at::Tensor& phi_k_in, const at::Tensor& gamma,
                                           int64_t w, const LinearRunner& linear, const WindowHalo& halo,
                                           const at::Tensor& documents) {
  TORCH_CHECK(w >= 1, "hybrid attention: window must be >= 1, got ", w);
  const auto acc = kernels::linear_state_dtype(v_in.scalar_type());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3), dv = v_in.size(3);
  // Keys and values from the n halo tokens on: extended index j is the call's token j − n.
  at::Tensor k = with_halo(halo.k, k_in), v = with_halo(halo.v, v_in), phi_k = with_halo(halo.phi_k, phi_k_in);
  const int64_t n = k.size(2) - T;
  TORCH_CHECK(n >= 0 && n <= w, "hybrid attention: a halo of ", n, " tokens for window ", w);
  const int64_t NB = (T + w - 1) / w, back = NB * w - T;
  // Document ids of the extended keys, padded with -1 (no document) in front to w tokens.
  at::Tensor key_docs;
  if (documents.defined())
    key_docs = at::constant_pad_nd(with_halo(halo.documents, documents.to(q.device(), at::kLong), 1), {w - n, 0}, -1);
  at::Tensor keep;  // the delayed key at stream position t is token t − w: same document as t?
  if (documents.defined()) keep = key_docs.narrow(1, 0, T).eq(documents.to(q.device(), at::kLong)).view({B, 1, T, 1});
  auto [lin_num, lin_den] = linear_sums(phi_q, phi_k, v, w - n, linear, keep);
  // Window part, blocked: query block b (rows b·w + a) sees keys b·w − w + e, e < 2w, of the
  // call's tokens (negative: the halo, or before the sequence when the halo is short).
  at::Tensor qb = at::constant_pad_nd(q.to(acc), {0, 0, 0, back}).view({B, H, NB, w, d});
  auto key_windows = [&](const at::Tensor& x) {  // [B, H, n + T, c] -> [B, H, NB, c, 2w]
    return at::constant_pad_nd(x.to(acc), {0, 0, w - n, back}).unfold(2, 2 * w, w);
  };
  at::Tensor s = at::matmul(qb, key_windows(k)) / std::sqrt(static_cast<double>(d));  // [B,H,NB,w,2w]
  auto idx = v.options().dtype(at::kLong);
  at::Tensor a = at::arange(w, idx).view({1, w, 1}), e = at::arange(2 * w, idx).view({1, 1, 2 * w});
  at::Tensor b = at::arange(NB, idx).view({NB, 1, 1});
  at::Tensor valid = (e > a).logical_and(e <= a + w).logical_and(b * w - w + e >= -n);  // [NB,w,2w]
  if (documents.defined()) {
    at::Tensor kd = at::constant_pad_nd(key_docs, {0, back}, -1).unfold(1, 2 * w, w);           // [B,NB,2w]
    // Padded query rows get -1 too: they then see the padded key on their diagonal, not nothing
    // (an all-masked row would be NaN, and NaN survives the backward's 0 · x).
    at::Tensor qd = at::constant_pad_nd(documents.to(q.device(), at::kLong), {0, back}, -1).view({B, NB, w});
    valid = valid.logical_and(qd.unsqueeze(-1).eq(kd.unsqueeze(-2))).unsqueeze(1);           // [B,1,NB,w,2w]
  }
  s = s.masked_fill(valid.logical_not(), kNegInf);
  at::Tensor p = at::exp(s - at::amax(s, {-1}, true));  // masked entries give exp(−inf) = 0
  at::Tensor win_num = at::matmul(p, key_windows(v).transpose(-1, -2)).reshape({B, H, NB * w, dv});
  at::Tensor win_den = p.sum(-1, true).reshape({B, H, NB * w, 1});
  at::Tensor g = gamma.to(acc).view({1, H, 1, 1});
  at::Tensor y = (g * win_num.narrow(2, 0, T) + lin_num) / (g * win_den.narrow(2, 0, T) + lin_den);
  return y.to(v_in.scalar_type());
}

at::Tensor sliding_window_hybrid_weights(const at::Tensor& q, const at::Tensor& k, const at::Tensor& phi_q,
                                         const at::Tensor& phi_k, const at::Tensor& gamma, int64_t w) {
  const auto acc = kernels::linear_state_dtype(q.scalar_type());
  const int64_t H = q.size(1), T = q.size(2), d = q.size(3);
  auto idx = q.options().dtype(at::kLong);
  at::Tensor i = at::arange(T, idx).view({T, 1}), j = at::arange(T, idx).view({1, T});
  at::Tensor in_window = (j <= i).logical_and(j > i - w), older = j <= i - w;
  at::Tensor s = at::matmul(q.to(acc), k.to(acc).transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
  s = s.masked_fill(in_window.logical_not(), kNegInf);
  at::Tensor p = at::exp(s - at::amax(s, {-1}, true)) * gamma.to(acc).view({1, H, 1, 1});
  at::Tensor lin = at::matmul(phi_q.to(acc), phi_k.to(acc).transpose(-1, -2)) * older.to(acc);
  at::Tensor weights = p + lin;
  return weights / weights.sum(-1, true);
}

at::Tensor normalized_linear_weights(const at::Tensor& phi_q, const at::Tensor& phi_k, double eps) {
  const auto acc = kernels::linear_state_dtype(phi_q.scalar_type());
  const at::Tensor a = at::matmul(phi_q.to(acc), phi_k.to(acc).transpose(-1, -2)).tril();
  return a / (a.sum(-1, true) + eps);
}

at::Tensor sliding_window_hybrid_reference(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, const at::Tensor& phi_q,
                                           const at::Tensor& phi_k, const at::Tensor& gamma,
                                           int64_t w) {
  const at::Tensor weights = sliding_window_hybrid_weights(q, k, phi_q, phi_k, gamma, w);
  return at::matmul(weights, v.to(weights.scalar_type())).to(v.scalar_type());
}

}  // namespace attnlab::layers
