#include "layers/softmax/ring_attention.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isinf.h>
#include <ATen/ops/logaddexp.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/_scaled_dot_product_flash_attention_for_cpu.h>
#include <ATen/ops/_scaled_dot_product_flash_attention_for_cpu_backward.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "kernels/attention/fused_cpu.h"
#include "kernels/linear/api.h"

namespace attnlab::layers {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Every rank's positions and documents (tiny, int64), gathered once: block j's are entry j.
struct BlockLayout {
  at::Tensor positions;  ///< [P, B', S] (B' = 1 without per-row positions)
  at::Tensor documents;  ///< [P, B, S] or undefined
};

/// [P, ...]: every rank's `x`, in rank order.
at::Tensor gather_rows(const at::Tensor& x, Communicator& ring) { return gather_sequence(x.unsqueeze(0), ring, 0); }

BlockLayout gather_layout(const at::Tensor& positions, const at::Tensor& documents, Communicator& ring) {
  at::Tensor pos = positions.dim() == 1 ? positions.unsqueeze(0) : positions;
  return {gather_rows(pos.to(at::kLong), ring), documents.defined() ? gather_rows(documents.to(at::kLong), ring)
                                                                    : at::Tensor()};
}

/// [B', 1, S, S] bool: may query (this rank's) see key (block j's)?
at::Tensor visible(const BlockLayout& l, int64_t me, int64_t j) {
  at::Tensor m = l.positions[j].unsqueeze(1).le(l.positions[me].unsqueeze(2));
  if (l.documents.defined()) m = m.logical_and(l.documents[j].unsqueeze(1).eq(l.documents[me].unsqueeze(2)));
  return m.unsqueeze(1);
}

/// How a visiting block is computed. CPU: nothing visible (skipped); every key visible to every
/// query, or the causal triangle (the rank's own block under contiguous shards), both by the
/// CPU flash kernel with its log-sum-exp; anything else (documents, other layouts) by the tiled
/// kernel. CUDA: every block with a visible pair by composite ops over the explicit mask.
enum class Block { skip, full, causal, tiled, composite };

/// CPU: a block's kind from the bounds of the positions and document ids alone, so no [S, S]
/// mask is built. Conservative: what the bounds cannot prove skipped, fully visible or the causal
/// triangle goes to the tiled kernel, which masks exactly and skips the tiles it can.
Block kind_by_bounds(const BlockLayout& l, int64_t me, int64_t j) {
  const at::Tensor qp = l.positions[me], kp = l.positions[j];  // [B', S]
  const auto lo = [](const at::Tensor& t) { return t.min().item<int64_t>(); };
  const auto hi = [](const at::Tensor& t) { return t.max().item<int64_t>(); };
  if (lo(kp) > hi(qp)) return Block::skip;  // every key after every query
  bool one_doc = true;
  if (l.documents.defined()) {
    const at::Tensor qd = l.documents[me], kd = l.documents[j];
    if (lo(kd) > hi(qd) || hi(kd) < lo(qd)) return Block::skip;  // no document in common
    one_doc = lo(qd) == hi(qd) && lo(kd) == hi(kd) && lo(qd) == lo(kd);
  }
  if (!one_doc) return Block::tiled;
  if (hi(kp) <= lo(qp)) return Block::full;
  const int64_t S = qp.size(-1);
  const bool consecutive = S < 2 || (qp.narrow(-1, 1, S - 1) - qp.narrow(-1, 0, S - 1)).eq(1).all().item<bool>();
  if (me == j && consecutive) return Block::causal;  // queries and keys the same run of positions
  return Block::tiled;
}

/// The kind of block j for this rank's queries q; `mask` is set for composite blocks only.
Block kind_of(const BlockLayout& l, int64_t me, int64_t j, const at::Tensor& q, at::Tensor& mask) {
  if (!q.is_cuda()) return kind_by_bounds(l, me, j);
  mask = visible(l, me, j);
  return mask.any().item<bool>() ? Block::composite : Block::skip;
}

/// A tiled block (documents, other layouts) on CPU: the tiled kernel with this rank's queries
/// and block j's keys by position and document, skipping the tiles they hide.
kernels::AttentionSpec block_spec(const BlockLayout& l, int64_t me, int64_t j, double scale) {
  kernels::AttentionSpec s;
  s.scale = scale;
  auto rows = [](const at::Tensor& p) { return p.size(0) == 1 ? p[0] : p; };  // [S] or [B, S]
  s.q_pos = rows(l.positions[me]), s.k_pos = rows(l.positions[j]);
  if (l.documents.defined()) s.q_doc = l.documents[me], s.k_doc = l.documents[j];
  return s;
}

/// kv [B, Hkv, S, c] -> [B, H, S, c] (GQA: each kv head serves H / Hkv query heads).
at::Tensor widen(const at::Tensor& kv, int64_t H) {
  return kv.size(1) == H ? kv : kv.repeat_interleave(H / kv.size(1), 1);
}
/// The reverse for gradients: sum over the query heads of each kv head.
at::Tensor narrow_heads(const at::Tensor& g, int64_t Hkv) {
  if (g.size(1) == Hkv) return g;
  return g.view({g.size(0), Hkv, g.size(1) / Hkv, g.size(2), g.size(3)}).sum(2);
}

/// Sends `mine` one rank up the ring and returns what the rank below sent.
at::Tensor pass_on(const at::Tensor& mine, Communicator& ring) {
  at::Tensor out = mine.contiguous(), in = at::empty_like(out);
  const int64_t P = ring.size(), r = ring.rank();
  ring.exchange(out, (r + 1) % P, in, (r + P - 1) % P);
  return in;
}

class RingAttention : public torch::autograd::Function<RingAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, double scale, Communicator* ring, const BlockLayout* where) {
    const auto acc = kernels::linear_state_dtype(q_in.scalar_type());
    const int64_t P = ring->size(), r = ring->rank(), H = q_in.size(1), d = q_in.size(3);
    at::Tensor q = q_in.to(acc), kv = at::cat({k_in.to(acc), v_in.to(acc)}, -1);  // one message per hop
    const BlockLayout& layout = *where;
    at::Tensor out = at::zeros_like(q), lse = at::full({q.size(0), H, q.size(2), 1}, kNegInf, q.options());
    // Merges a block's output and log-sum-exp into the running ones; step 0 is this rank's own
    // block, which holds every query's diagonal, so lse is finite from then on and no
    // −inf − (−inf) appears.
    auto merge = [&](const at::Tensor& o_blk, const at::Tensor& l_blk) {
      const at::Tensor merged = at::logaddexp(lse, l_blk);
      out = out * at::exp(lse - merged) + o_blk * at::exp(l_blk - merged);
      lse = merged;
    };
    for (int64_t step = 0; step < P; ++step) {
      const int64_t j = (r - step + P) % P;  // the block visiting now
      at::Tensor mask;
      const Block kind = kind_of(layout, r, j, q, mask);
      if (kind == Block::tiled) {
        const auto t = kernels::attention_fused_forward(q, kv.narrow(-1, 0, d), kv.narrow(-1, d, d), {},
                                                        block_spec(layout, r, j, scale));
        // The tiles mark a row that sees none of the block's keys with +∞; it adds no mass.
        const at::Tensor l = t.lse.unsqueeze(-1);
        merge(t.out, l.masked_fill(l.isinf(), kNegInf));
      } else if (kind != Block::skip) {
        at::Tensor k = widen(kv.narrow(-1, 0, d), H).contiguous(), v = widen(kv.narrow(-1, d, d), H).contiguous();
        if (kind == Block::composite) {
          at::Tensor s = (at::matmul(q, k.transpose(-1, -2)) * scale).masked_fill(mask.logical_not(), kNegInf);
          at::Tensor merged = at::logaddexp(lse, at::logsumexp(s, -1, true));
          out = out * at::exp(lse - merged) + at::matmul(at::exp(s - merged), v);
          lse = merged;
        } else {
          auto [o_blk, lse_blk] =
              at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, kind == Block::causal, {}, scale);
          merge(o_blk.to(acc), lse_blk.unsqueeze(-1).to(acc));
        }
      }
      if (step + 1 < P) kv = pass_on(kv, *ring);
    }
    ctx->save_for_backward({q_in, k_in, v_in, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["ring"] = reinterpret_cast<int64_t>(ring);
    ctx->saved_data["positions"] = layout.positions;
    ctx->saved_data["has_documents"] = layout.documents.defined();
    if (layout.documents.defined()) ctx->saved_data["documents"] = layout.documents;
    return out.to(q_in.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q_in = saved[0], &k_in = saved[1], &v_in = saved[2], &out = saved[3], &lse = saved[4];
    auto* ring = reinterpret_cast<Communicator*>(ctx->saved_data["ring"].toInt());
    const double scale = ctx->saved_data["scale"].toDouble();
    BlockLayout layout{ctx->saved_data["positions"].toTensor(), ctx->saved_data["has_documents"].toBool()
                                                                     ? ctx->saved_data["documents"].toTensor()
                                                                     : at::Tensor()};
    const auto acc = out.scalar_type();
    const int64_t P = ring->size(), r = ring->rank(), H = q_in.size(1), Hkv = k_in.size(1), d = q_in.size(3);
    at::Tensor q = q_in.to(acc), dout = grads[0].to(acc);
    at::Tensor D = (dout * out).sum(-1, true);  // rowsum(dO ∘ O)
    at::Tensor dq = at::zeros_like(q);
    // The travelling block: k | v | dk | dv, [B, Hkv, S, 4d]; dk, dv gather every rank's share.
    at::Tensor blk = at::cat({k_in.to(acc), v_in.to(acc), at::zeros_like(k_in, acc), at::zeros_like(v_in, acc)}, -1);
    for (int64_t step = 0; step < P; ++step) {
      const int64_t j = (r - step + P) % P;
      at::Tensor mask;
      const Block kind = kind_of(layout, r, j, q, mask);
      if (kind != Block::skip) {
        at::Tensor dk, dv;  // this block's share, per query head (per kv head from the tiles)
        if (kind == Block::tiled) {
          // With the global output and lse the tiles give this block's exact share.
          const auto g = kernels::attention_fused_backward(q, blk.narrow(-1, 0, d), blk.narrow(-1, d, d), {}, out,
                                                           lse.squeeze(-1), dout, block_spec(layout, r, j, scale));
          dq = dq + g.dq.to(acc), dk = g.dk.to(acc), dv = g.dv.to(acc);
        } else {
          at::Tensor k = widen(blk.narrow(-1, 0, d), H).contiguous(), v = widen(blk.narrow(-1, d, d), H).contiguous();
          if (kind == Block::composite) {
            at::Tensor s = (at::matmul(q, k.transpose(-1, -2)) * scale).masked_fill(mask.logical_not(), kNegInf);
            at::Tensor p = at::exp(s - lse);  // this block's attention weights
            at::Tensor ds = p * (at::matmul(dout, v.transpose(-1, -2)) - D);
            dq = dq + at::matmul(ds, k) * scale;
            dk = at::matmul(ds.transpose(-1, -2), q) * scale, dv = at::matmul(p.transpose(-1, -2), dout);
          } else {
            // The flash backward with the GLOBAL output and lse gives this block's exact share.
            auto [dq_b, dk_b, dv_b] = at::_scaled_dot_product_flash_attention_for_cpu_backward(
                dout, q, k, v, out, lse.squeeze(-1), 0.0, kind == Block::causal, {}, scale);
            dq = dq + dq_b, dk = dk_b, dv = dv_b;
          }
        }
        blk = at::cat({blk.narrow(-1, 0, 2 * d), blk.narrow(-1, 2 * d, d) + narrow_heads(dk, Hkv),
                       blk.narrow(-1, 3 * d, d) + narrow_heads(dv, Hkv)}, -1);
      }
      // P hops in all: after the last one every block's dk, dv are back at their owner.
      blk = step + 1 < P ? pass_on(blk, *ring) : pass_on(blk.narrow(-1, 2 * d, 2 * d), *ring);
    }
    at::Tensor dk = blk.narrow(-1, 0, d), dv = blk.narrow(-1, d, d);
    return {dq.to(q_in.scalar_type()), dk.to(k_in.scalar_type()), dv.to(v_in.scalar_type()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor ring_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                          const at::Tensor& documents, double scale, Communicator& ring) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(1) % k.size(1) == 0, "ring attention: q [B, H, S, d] and k ",
              "[B, Hkv, S, d] with H a multiple of Hkv, got ", q.sizes(), " and ", k.sizes());
  const BlockLayout layout = gather_layout(positions.to(q.device()), documents, ring);
  return RingAttention::apply(q, k, v, scale, &ring, &layout);
}

}  // namespace attnlab::layers
