#include "kernels/linear/reference.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <limits>
#include <vector>


namespace attnlab::kernels {

at::ScalarType linear_state_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

LinearAttentionResult linear_attention_parallel_reference(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& s0, double scale) {
  const auto acc = linear_state_dtype(q.scalar_type());
  const int64_t T = q.size(2);
  at::Tensor qa = q.to(acc), ka = k.to(acc), va = v.to(acc);
  at::Tensor G = at::cumsum(g.to(acc), 2);                            // [B, H, T, dk]
  at::Tensor diff = G.unsqueeze(3) - G.unsqueeze(2);                  // [B, H, T(t), T(s), dk]
  at::Tensor later = at::ones({T, T}, q.options().dtype(at::kBool)).triu(1);  // s > t
  diff = diff.masked_fill(later.view({1, 1, T, T, 1}), -std::numeric_limits<double>::infinity());
  at::Tensor P = at::einsum("bhtd,bhsd,bhtsd->bhts", {qa, ka, at::exp(diff)}) * scale;
  at::Tensor out = at::matmul(P, va);                                 // [B, H, T, dv]
  at::Tensor GT = G.narrow(2, T - 1, 1);                              // [B, H, 1, dk]
  at::Tensor kd = ka * at::exp(GT - G);                               // k_s ⊙ e^{G_T − G_s}
  at::Tensor final_state = at::matmul(kd.transpose(2, 3), va);        // [B, H, dk, dv]
  if (s0.defined()) {
    at::Tensor s0a = s0.to(acc);
    out = out + at::matmul(qa * at::exp(G), s0a) * scale;
    final_state = final_state + at::exp(GT).transpose(2, 3) * s0a;
  }
  return {out.to(q.scalar_type()), final_state};
}

LinearAttentionResult linear_attention_recurrent_reference(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& g,
                                                           const at::Tensor& s0, double scale) {
  const auto acc = linear_state_dtype(q.scalar_type());
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), dk = q.size(3), dv = v.size(3);
  at::Tensor S = s0.defined() ? s0.to(acc) : at::zeros({B, H, dk, dv}, q.options().dtype(acc));
  at::Tensor qa = q.to(acc), ka = k.to(acc), va = v.to(acc), decay = at::exp(g.to(acc));
  std::vector<at::Tensor> outs;
  outs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor kt = ka.select(2, t).unsqueeze(-1), vt = va.select(2, t).unsqueeze(-2);
    S = decay.select(2, t).unsqueeze(-1) * S + kt * vt;               // [B, H, dk, dv]
    outs.push_back(at::matmul(qa.select(2, t).unsqueeze(-2), S).squeeze(-2) * scale);
  }
  at::Tensor out = T ? at::stack(outs, 2) : at::zeros({B, H, 0, dv}, q.options().dtype(acc));
  return {out.to(q.scalar_type()), S};
}

}  // namespace attnlab::kernels
