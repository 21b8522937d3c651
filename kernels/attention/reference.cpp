#include "kernels/attention/reference.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/any.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softmax.h>

#include <limits>

#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace {

/// An int64 [T] or [B, T] tensor as [B or 1, T]; `fallback` + arange(T) when undefined.
at::Tensor rows_of(const at::Tensor& t, int64_t T, int64_t fallback, c10::Device device) {
  if (!t.defined()) return (at::arange(T, at::TensorOptions().dtype(at::kLong).device(device)) + fallback).unsqueeze(0);
  at::Tensor r = t.to(device, at::kLong);
  return r.dim() == 1 ? r.unsqueeze(0) : r;
}

}  // namespace

at::Tensor attention_visibility(const AttentionSpec& s, int64_t /*B*/, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk,
                                c10::Device device) {
  const at::Tensor qp = rows_of(s.q_pos, Tq, Tk - Tq, device).unsqueeze(-1);  // [Bp, Tq, 1]
  const at::Tensor kp = rows_of(s.k_pos, Tk, 0, device).unsqueeze(-2);        // [Bp, 1, Tk]
  at::Tensor vis = kp.le(qp);
  if (s.window > 0) vis = vis.logical_and((qp - kp).lt(s.window).logical_or(kp.lt(s.sinks)));
  if (s.q_doc.defined())
    vis = vis.logical_and(s.q_doc.to(device, at::kLong).unsqueeze(-1).eq(s.k_doc.to(device, at::kLong).unsqueeze(-2)));
  vis = vis.unsqueeze(1);  // [B or 1, 1, Tq, Tk]
  // The per-kv-head bounds, [B, Hkv, Tq or 1, Tk], then repeated over each kv head's queries.
  at::Tensor per_kv;
  auto with = [&](const at::Tensor& m) { per_kv = per_kv.defined() ? per_kv.logical_and(m) : m; };
  if (s.keep.defined())
    with(s.keep.to(device, at::kBool).repeat_interleave(s.keep_block, -1).narrow(-1, 0, Tk));
  if (s.key_until.defined()) with(qp.unsqueeze(1).lt(s.key_until.to(device, at::kLong).unsqueeze(-2)));
  if (per_kv.defined()) vis = vis.logical_and(per_kv.repeat_interleave(H / Hkv, 1));  // [B, H, Tq or 1, Tk]
  if (s.active_rows.defined()) vis = vis.logical_and(s.active_rows.to(device, at::kBool).unsqueeze(-1));
  return vis;
}

at::Tensor attention_weights_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_bias,
                                       const AttentionSpec& s) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4, "q, k must be 4-D, got ", q.sizes(), k.sizes());
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), d = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2);
  ATTNLAB_CHECK_SHAPE(k, B, Hkv, Tk, d);
  ATTNLAB_CHECK(H % Hkv == 0, "query heads ", H, " not a multiple of kv heads ", Hkv);
  const auto acc = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor kk = k.repeat_interleave(H / Hkv, 1).to(acc);  // [B, H, Tk, d]
  at::Tensor z = at::matmul(q.to(acc), kk.transpose(-1, -2)) * s.scale;  // [B, H, Tq, Tk]
  if (key_bias.defined()) {
    ATTNLAB_CHECK_SHAPE(key_bias, B, Hkv, Tk);
    z = z + key_bias.to(acc).repeat_interleave(H / Hkv, 1).unsqueeze(2);
  }
  const at::Tensor vis = attention_visibility(s, B, H, Hkv, Tq, Tk, q.device()).expand_as(z);
  if (s.transform == ScoreTransform::sigmoid) return at::sigmoid(z + s.sigmoid_bias) * vis.to(acc);
  // A query with no visible key gets weights 0 (output 0), not softmax's NaN.
  const at::Tensor has_key = vis.any(-1, /*keepdim=*/true);
  z = z.masked_fill(vis.logical_not(), -std::numeric_limits<double>::infinity());
  return at::softmax(z.masked_fill(has_key.logical_not(), 0.0), -1) * has_key.to(acc);
}

at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& key_bias, const AttentionSpec& s) {
  ATTNLAB_CHECK(v.dim() == 4, "v must be 4-D, got ", v.sizes());
  ATTNLAB_CHECK_SHAPE(v, k.size(0), k.size(1), k.size(2), q.size(3));
  const at::Tensor p = attention_weights_reference(q, k, key_bias, s);
  return at::matmul(p, v.repeat_interleave(q.size(1) / k.size(1), 1).to(p.scalar_type())).to(q.scalar_type());
}

at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  AttentionSpec spec;
  spec.scale = scale;
  return attention_reference(q, k, v, {}, spec);
}

}  // namespace attnlab::kernels
