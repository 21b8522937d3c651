#include "layers/ssa/block_selection.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <limits>

namespace attnlab::layers {

at::Tensor select_blocks(const at::Tensor& q, const at::Tensor& k, const at::Tensor& q_index, double scale,
                         int64_t block, int64_t count) {
  at::NoGradGuard no_grad;
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), d = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  const int64_t G = H / Hkv, nb = (Tk + block - 1) / block;
  const auto acc = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const double inf = std::numeric_limits<double>::infinity();
  // Mean-pooled blocks K̄_c (the last, partial block only ever serves as a query's own block).
  at::Tensor kp = at::constant_pad_nd(k.to(acc), {0, 0, 0, nb * block - Tk});
  at::Tensor kbar = kp.view({B, Hkv, nb, block, d}).sum(3) / static_cast<double>(block);
  at::Tensor z = at::matmul(q.to(acc), kbar.repeat_interleave(G, 1).transpose(-1, -2)) * scale;  // [B, H, Tq, nb]
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(q.device());
  at::Tensor t = q_index.to(q.device(), at::kLong);
  t = (t.dim() == 1 ? t.unsqueeze(0) : t).unsqueeze(1).unsqueeze(-1);  // [B or 1, 1, Tq, 1]
  const at::Tensor c = at::arange(nb, lopt);
  const at::Tensor own = at::floor_divide(t, block);
  const at::Tensor complete = c.lt(at::floor_divide(t + 1, block));  // blocks wholly at or before t
  // Softmax over the complete blocks per query head, summed over the group's heads.
  const at::Tensor lse = at::logsumexp(z.masked_fill(complete.logical_not(), -inf), -1, /*keepdim=*/true);
  at::Tensor p = at::where(c.lt(own), at::exp(z - lse.masked_fill(lse.isinf(), 0.0)), at::zeros_like(z));
  at::Tensor score = p.view({B, Hkv, G, Tq, nb}).sum(2);  // [B, Hkv, Tq, nb]
  // The own block always wins (a past block scores at most G); future blocks never compete.
  score = at::where(c.eq(own), at::full_like(score, static_cast<double>(G + 1)), score);
  score = score.masked_fill(c.gt(own), -inf);
  const at::Tensor order = std::get<1>(at::sort(score, /*stable=*/true, -1, /*descending=*/true));
  at::Tensor keep = at::zeros_like(score, score.options().dtype(at::kBool));
  keep.scatter_(-1, order.narrow(-1, 0, std::min(count, nb)), true);
  return keep.logical_and(c.le(own));
}

}  // namespace attnlab::layers
