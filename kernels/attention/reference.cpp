#include "kernels/attention/reference.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/any.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tril.h>

#include "kernels/common/check.h"

namespace attnlab::kernels {

at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& v, double scale) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "q, k, v must be 4-D, got ",
                q.sizes(), k.sizes(), v.sizes());
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2);
  ATTNLAB_CHECK_SHAPE(k, B, Hkv, Tk, d);
  ATTNLAB_CHECK_SHAPE(v, B, Hkv, Tk, d);
  ATTNLAB_CHECK(H % Hkv == 0, "query heads ", H, " not a multiple of kv heads ", Hkv);
  const auto acc = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor kk = k.repeat_interleave(H / Hkv, 1).to(acc);  // [B, H, Tk, d]
  at::Tensor vv = v.repeat_interleave(H / Hkv, 1).to(acc);
  at::Tensor scores = at::matmul(q.to(acc), kk.transpose(-1, -2)) * scale;  // [B, H, Tq, Tk]
  at::Tensor keep = at::ones({Tq, Tk}, q.options().dtype(at::kBool)).tril(Tk - Tq);
  scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  // A query with no visible key (Tq > Tk, bottom-right) gets output 0, not softmax's NaN.
  at::Tensor has_key = keep.any(-1, /*keepdim=*/true);
  at::Tensor p = at::softmax(scores.masked_fill(has_key.logical_not(), 0.0), -1) * has_key.to(scores.scalar_type());
  return at::matmul(p, vv).to(q.scalar_type());
}

}  // namespace attnlab::kernels
