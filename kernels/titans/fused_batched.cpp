// The batched engine of the fused Titans memory (fused_batched.h). Line for line the passes of
// fused_cpu_forward.cpp and fused_cpu_backward.cpp, with a [BH, rows, width] tensor where those
// have one (batch, head)'s raw rows: a GEMM there is a bmm here, a row loop an elementwise op.
#include "kernels/titans/fused_batched.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include "kernels/titans/memory_math.h"

namespace attnlab::kernels::titans_batched {
namespace {

using titans_fused::kGates;
using titans_fused::kK;
using titans_fused::kQ;
using titans_fused::kStates;
using titans_fused::kV;

/// The transpose of each matrix of a batch (at::t would be found first).
at::Tensor tr(const at::Tensor& x) { return x.transpose(1, 2); }

/// One chunk's gate coefficients for every (batch, head): query [BH, n, n]; the per-row ones
/// [BH, n, 1] and the per-chunk ones [BH, 1, 1], so that they broadcast over rows and states.
/// The gradients have the same layout.
struct Gates {
  at::Tensor query, query_weight, query_surprise, end_weight, end_surprise, end_decay, end_mix, end_momentum;
};

/// σ's auxiliary value (memory_math.h): tanh(u(z)) or sigmoid(z).
at::Tensor activation_aux(const at::Tensor& z, MemoryActivation m) {
  return m == MemoryActivation::silu ? at::sigmoid(z) : at::tanh(titans_math::gelu_inner(z));
}

// The soft clamp's factor f(x) = G tanh(x/G) / x and slope f'(x) / x (fused_cpu_rows.h), in
// double as there: the closed form of the slope cancels to about y² of its leading terms.
at::Tensor clamp_factor(const at::Tensor& x, double G) {
  const at::Tensor safe = x.clamp_min(1e-30);
  return at::where(x > 1e-30, G * at::tanh(safe / G) / safe, at::ones_like(x));
}
at::Tensor clamp_slope(const at::Tensor& x, double G) {
  const at::Tensor y = x / G, safe = x.clamp_min(1e-30), th = at::tanh(y);
  const at::Tensor series = (-2.0 / 3.0 + 8.0 / 15.0 * y * y) / (G * G);
  const at::Tensor closed = ((1 - th * th) * safe - G * th) / (safe * safe * safe);
  return at::where(y < 1e-3, series, closed);
}

class ChunkBatch {
 public:
  explicit ChunkBatch(const ChunkShape& s) : shape_(s), L_(s.layers()) {}

  /// y [BH, n, d] from the state (W, S) at the chunk's start; then (W, S) ← the state at its end.
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Gates& g,
                     std::vector<at::Tensor>& W, std::vector<at::Tensor>& S) {
    key_pass(k, v, W);
    at::Tensor y = query_pass(q, g, W, S, true);
    hand_off(g, W, S);
    return y;
  }

  /// With (W, S) the start state and (dW, dS) the gradients of the end state: dq, dk, dv and the
  /// gate gradients are returned, and (dW, dS) ← the gradients of the start state.
  void backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Gates& g,
                const std::vector<at::Tensor>& W, const std::vector<at::Tensor>& S, const at::Tensor& dy,
                std::vector<at::Tensor>& dW, std::vector<at::Tensor>& dS, at::Tensor& dq, at::Tensor& dk,
                at::Tensor& dv, Gates& dg) {
    key_pass(k, v, W);
    query_pass(q, g, W, S, false);
    d_act_.assign(L_, {}), d_update_.assign(L_, {}), d_z_.assign(L_, {});
    for (size_t l = 0; l < L_; ++l)
      d_act_[l] = at::zeros_like(act_in(l)), d_update_[l] = at::zeros_like(delta_[l]), d_z_[l] = at::zeros_like(z_[l]);
    hand_off_backward(g, W, S, dW, dS, dg);
    dq = query_backward(g, W, S, dy, dW, dS, dg);
    key_backward(W, dW, dk, dv);
  }

 private:
  const at::Tensor& act_in(size_t l) const { return act_[l]; }
  const at::Tensor& update(size_t l) const { return clamped() ? u_[l] : delta_[l]; }
  bool clamped() const { return shape_.max_grad_norm > 0; }

  void key_pass(const at::Tensor& k, const at::Tensor& v, const std::vector<at::Tensor>& W) {
    const auto m = shape_.activation;
    act_.assign({k}), z_.assign(L_, {}), aux_.assign(L_, {}), delta_.assign(L_, {}), delta_in_.assign(L_, {});
    for (size_t l = 0; l < L_; ++l) {
      z_[l] = at::bmm(act_[l], W[l]);
      if (l + 1 < L_) aux_[l] = activation_aux(z_[l], m), act_.push_back(titans_math::act(z_[l], aux_[l], m));
    }
    delta_[L_ - 1] = 2 * shape_.loss_scale * (z_[L_ - 1] - v);
    for (size_t l = L_ - 1; l-- > 0;) {  // Δ_l = (Δ_{l+1} W_{l+1}ᵀ) ⊙ σ'(Z_l)
      delta_in_[l] = at::bmm(delta_[l + 1], tr(W[l + 1]));
      delta_[l] = delta_in_[l] * titans_math::act_d1(z_[l], aux_[l], m);
    }
    if (!clamped()) return;
    // Token j's layer gradient is the rank-1 a_jᵀ δ_j, of norm ‖a_j‖‖δ_j‖; its rows of U are scaled.
    a_norm_.assign(L_, {}), d_norm_.assign(L_, {}), factor_.assign(L_, {}), u_.assign(L_, {});
    for (size_t l = 0; l < L_; ++l) {
      a_norm_[l] = act_in(l).to(at::kDouble).norm(2, {-1}, true);
      d_norm_[l] = delta_[l].to(at::kDouble).norm(2, {-1}, true);
      factor_[l] = clamp_factor(a_norm_[l] * d_norm_[l], shape_.max_grad_norm);
      u_[l] = delta_[l] * factor_[l].to(delta_[l].scalar_type());
    }
  }

  /// want_y = false (the backward's recompute): the top layer's W and S products are skipped.
  at::Tensor query_pass(const at::Tensor& q, const Gates& g, const std::vector<at::Tensor>& W,
                        const std::vector<at::Tensor>& S, bool want_y) {
    const auto m = shape_.activation;
    query_act_.assign({q}), query_z_.assign(L_, {}), query_aux_.assign(L_, {});
    scores_.assign(L_, {}), weighted_.assign(L_, {});
    for (size_t l = 0; l < L_; ++l) {
      const at::Tensor& in = query_act_[l];
      scores_[l] = at::bmm(in, tr(act_in(l)));  // M = q_l a_lᵀ, N = Cθ ⊙ M
      weighted_[l] = g.query * scores_[l];
      if (l + 1 == L_ && !want_y) break;
      const at::Tensor base = g.query_weight * at::bmm(in, W[l]) + g.query_surprise * at::bmm(in, S[l]);
      at::Tensor out = at::baddbmm(base, weighted_[l], update(l), 1, -1);
      if (l + 1 == L_) return out;
      query_z_[l] = out;
      query_aux_[l] = activation_aux(out, m);
      query_act_.push_back(titans_math::act(out, query_aux_[l], m));
    }
    return {};
  }

  void hand_off(const Gates& g, std::vector<at::Tensor>& W, std::vector<at::Tensor>& S) {
    // W ← B_n W + D_n S − Aᵀ diag(c) U,  S ← Γ_n S − Aᵀ diag(s) U.
    for (size_t l = 0; l < L_; ++l) {
      const at::Tensor At = tr(act_in(l));
      at::Tensor next = at::baddbmm(g.end_decay * W[l] + g.end_mix * S[l], At, g.end_weight * update(l), 1, -1);
      S[l] = at::baddbmm(g.end_momentum * S[l], At, g.end_surprise * update(l), 1, -1);
      W[l] = next;
    }
  }

  void hand_off_backward(const Gates& g, const std::vector<at::Tensor>& W, const std::vector<at::Tensor>& S,
                         std::vector<at::Tensor>& dW, std::vector<at::Tensor>& dS, Gates& dg) {
    dg.end_decay = at::zeros_like(g.end_decay), dg.end_mix = at::zeros_like(g.end_mix);
    dg.end_momentum = at::zeros_like(g.end_momentum);
    dg.end_weight = at::zeros_like(g.end_weight), dg.end_surprise = at::zeros_like(g.end_surprise);
    for (size_t l = 0; l < L_; ++l) {
      const at::Tensor &A = act_in(l), &U = update(l), gW = dW[l], gS = dS[l];
      dg.end_decay += (W[l] * gW).sum({1, 2}, true);
      dg.end_mix += (S[l] * gW).sum({1, 2}, true);
      dg.end_momentum += (S[l] * gS).sum({1, 2}, true);
      // −Aᵀ diag(c) U: E = A dW', dc_j = −u_j·E_j, dU_j = −c_j E_j, dA = −diag(c) U dW'ᵀ (and S's).
      const at::Tensor E = at::bmm(A, gW), F = at::bmm(A, gS);
      dg.end_weight -= (U * E).sum(-1, true);
      dg.end_surprise -= (U * F).sum(-1, true);
      d_update_[l] -= g.end_weight * E + g.end_surprise * F;
      d_act_[l] = at::baddbmm(d_act_[l], g.end_weight * U, tr(gW), 1, -1);
      d_act_[l] = at::baddbmm(d_act_[l], g.end_surprise * U, tr(gS), 1, -1);
      // The start state's share through the decays.
      dS[l] = g.end_mix * gW + g.end_momentum * gS;
      dW[l] = g.end_decay * gW;
    }
  }

  at::Tensor query_backward(const Gates& g, const std::vector<at::Tensor>& W, const std::vector<at::Tensor>& S,
                            const at::Tensor& dy, std::vector<at::Tensor>& dW, std::vector<at::Tensor>& dS,
                            Gates& dg) {
    const auto m = shape_.activation;
    dg.query = at::zeros_like(g.query);
    dg.query_weight = at::zeros_like(g.query_weight), dg.query_surprise = at::zeros_like(g.query_surprise);
    at::Tensor dz = dy;
    for (size_t l = L_; l-- > 0;) {
      // Zh = diag(B) (q_l W) + diag(D) (q_l S) − N U,  N = Cθ ⊙ (q_l a_lᵀ).
      const at::Tensor& in = query_act_[l];
      dW[l] = at::baddbmm(dW[l], tr(in), g.query_weight * dz);
      dS[l] = at::baddbmm(dS[l], tr(in), g.query_surprise * dz);
      // dẐ Wᵀ and dẐ Sᵀ give dÂ and, as ⟨G, Â⟩ per row, the coefficient gradients.
      const at::Tensor gw = at::bmm(dz, tr(W[l])), gs = at::bmm(dz, tr(S[l]));
      dg.query_weight += (gw * in).sum(-1, true);
      dg.query_surprise += (gs * in).sum(-1, true);
      at::Tensor d_in = g.query_weight * gw + g.query_surprise * gs;
      const at::Tensor d_weighted = -at::bmm(dz, tr(update(l)));  // dN
      d_update_[l] = at::baddbmm(d_update_[l], tr(weighted_[l]), dz, 1, -1);
      dg.query += d_weighted * scores_[l];
      const at::Tensor d_scores = d_weighted * g.query;
      d_in = at::baddbmm(d_in, d_scores, act_in(l));
      d_act_[l] = at::baddbmm(d_act_[l], tr(d_scores), in);
      if (l == 0) return d_in;
      dz = d_in * titans_math::act_d1(query_z_[l - 1], query_aux_[l - 1], m);
    }
    return {};
  }

  void key_backward(const std::vector<at::Tensor>& W, std::vector<at::Tensor>& dW, at::Tensor& dk, at::Tensor& dv) {
    const auto m = shape_.activation;
    // The clamp: U = diag(f(x)) Δ, x = ‖a‖‖δ‖ per row; f' enters through both norms.
    std::vector<at::Tensor> d_delta(L_);
    for (size_t l = 0; l < L_; ++l) {
      if (!clamped()) {
        d_delta[l] = d_update_[l];
        continue;
      }
      const auto dtype = delta_[l].scalar_type();
      const at::Tensor &an = a_norm_[l], &dn = d_norm_[l];
      const at::Tensor slope =
          (d_update_[l] * delta_[l]).to(at::kDouble).sum(-1, true) * clamp_slope(an * dn, shape_.max_grad_norm);
      d_delta[l] = factor_[l].to(dtype) * d_update_[l] + (slope * an * an).to(dtype) * delta_[l];
      d_act_[l] += (slope * dn * dn).to(dtype) * act_in(l);
    }
    // Δ_l = H_l ⊙ σ'(Z_l), H_l = Δ_{l+1} W_{l+1}ᵀ, from the bottom layer up.
    for (size_t l = 0; l + 1 < L_; ++l) {
      const at::Tensor dH = d_delta[l] * titans_math::act_d1(z_[l], aux_[l], m);
      d_z_[l] += d_delta[l] * delta_in_[l] * titans_math::act_d2(z_[l], aux_[l], m);
      d_delta[l + 1] = at::baddbmm(d_delta[l + 1], dH, W[l + 1]);
      dW[l + 1] = at::baddbmm(dW[l + 1], tr(dH), delta_[l + 1]);
    }
    // Δ_L = 2c (Z_L − v).
    const double two_c = 2 * shape_.loss_scale;
    d_z_[L_ - 1] += two_c * d_delta[L_ - 1];
    dv = -two_c * d_delta[L_ - 1];
    // Z_l = a_l W_l, a_{l+1} = σ(Z_l), from the top layer down.
    for (size_t l = L_; l-- > 0;) {
      d_act_[l] = at::baddbmm(d_act_[l], d_z_[l], tr(W[l]));
      dW[l] = at::baddbmm(dW[l], tr(act_in(l)), d_z_[l]);
      if (l == 0) break;
      d_z_[l - 1] += d_act_[l] * titans_math::act_d1(z_[l - 1], aux_[l - 1], m);
    }
    dk = d_act_[0];
  }

  ChunkShape shape_;
  size_t L_;
  // Key pass at the anchor, per layer: inputs (act_[0] = k), pre-activations, σ's auxiliary,
  // errors Δ, Δ_{l+1} W_{l+1}ᵀ; with the clamp, the updates and the row norms (double) and factors.
  std::vector<at::Tensor> act_, z_, aux_, delta_, delta_in_, u_, a_norm_, d_norm_, factor_;
  // Query pass: inputs (query_act_[0] = q), pre-activations and auxiliary, scores M and N.
  std::vector<at::Tensor> query_act_, query_z_, query_aux_, scores_, weighted_;
  std::vector<at::Tensor> d_act_, d_update_, d_z_;
};

/// The views of the function's [B, H, nc, ...] tensors at chunk c, as [BH, ...] batches.
struct ChunkViews {
  int64_t B, H, nc, n;
  /// Rows [B, H, nc·n, w] → [BH, n, w].
  at::Tensor rows(const at::Tensor& x, int64_t c) const {
    return x.view({B, H, nc, n, x.size(3)}).select(2, c).reshape({B * H, n, x.size(3)});
  }
  Gates gates(const std::vector<at::Tensor>& g, int64_t c) const {
    auto per_row = [&](const at::Tensor& x) { return x.select(2, c).reshape({B * H, n, 1}); };
    auto per_chunk = [&](const at::Tensor& x) { return x.select(2, c).reshape({B * H, 1, 1}); };
    return {g[0].select(2, c).reshape({B * H, n, n}), per_row(g[1]), per_row(g[2]), per_row(g[3]), per_row(g[4]),
            per_chunk(g[5]), per_chunk(g[6]), per_chunk(g[7])};
  }
  /// A [BH, ...] state or its gradient into x's slice at chunk c (x: [B, H, nc, ...]).
  static void put(const at::Tensor& x, int64_t c, const at::Tensor& value) {
    at::Tensor slot = x.select(2, c);
    slot.copy_(value.reshape(slot.sizes()));
  }
};

std::vector<at::Tensor> batch_states(const std::vector<at::Tensor>& x, int64_t BH) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& s : x) out.push_back(s.reshape({BH, s.size(-2), s.size(-1)}).clone());
  return out;
}

}  // namespace

void forward(const std::vector<at::Tensor>& in, const ChunkShape& shape, at::Tensor& y,
             std::vector<at::Tensor>& W_end, std::vector<at::Tensor>& S_end, std::vector<at::Tensor>& W_starts,
             std::vector<at::Tensor>& S_starts) {
  const size_t L = shape.layers();
  const int64_t B = y.size(0), H = y.size(1), n = shape.n, nc = y.size(2) / n;
  const ChunkViews view{B, H, nc, n};
  const std::vector<at::Tensor> gates(in.begin() + kGates, in.begin() + kStates);
  const auto first_state = in.begin() + kStates;
  std::vector<at::Tensor> W = batch_states(std::vector<at::Tensor>(first_state, first_state + L), B * H);
  std::vector<at::Tensor> S = batch_states(std::vector<at::Tensor>(first_state + L, first_state + 2 * L), B * H);
  const int64_t kept = W_starts[0].size(2);  // every chunk's start, or the last one's only
  const at::Tensor y_chunks = y.view({B, H, nc, n, y.size(3)});
  ChunkBatch work(shape);
  for (int64_t c = 0; c < nc; ++c) {
    if (kept == nc || c + 1 == nc)
      for (size_t l = 0; l < L; ++l) {
        ChunkViews::put(W_starts[l], kept == nc ? c : 0, W[l]);
        ChunkViews::put(S_starts[l], kept == nc ? c : 0, S[l]);
      }
    const at::Tensor out = work.forward(view.rows(in[kQ], c), view.rows(in[kK], c), view.rows(in[kV], c),
                                        view.gates(gates, c), W, S);
    ChunkViews::put(y_chunks, c, out);
  }
  for (size_t l = 0; l < L; ++l) W_end[l].copy_(W[l].view(W_end[l].sizes())), S_end[l].copy_(S[l].view(S_end[l].sizes()));
}

void backward(const std::vector<at::Tensor>& in, const ChunkShape& shape, const std::vector<at::Tensor>& W_starts,
              const std::vector<at::Tensor>& S_starts, const at::Tensor& dy, const std::vector<at::Tensor>& dW_end,
              const std::vector<at::Tensor>& dS_end, const std::vector<at::Tensor>& dW_last,
              std::vector<at::Tensor>& grads) {
  const size_t L = shape.layers();
  const int64_t B = dy.size(0), H = dy.size(1), n = shape.n, nc = dy.size(2) / n, d = dy.size(3);
  const ChunkViews view{B, H, nc, n};
  const std::vector<at::Tensor> gates(in.begin() + kGates, in.begin() + kStates);
  std::vector<at::Tensor> dW = batch_states(dW_end, B * H), dS = batch_states(dS_end, B * H);
  auto chunked = [&](const at::Tensor& x) { return x.view({B, H, nc, n, d}); };
  ChunkBatch work(shape);
  for (int64_t c = nc; c-- > 0;) {
    std::vector<at::Tensor> W, S;
    for (size_t l = 0; l < L; ++l) {
      W.push_back(W_starts[l].select(2, c).reshape({B * H, shape.widths[l], shape.widths[l + 1]}));
      S.push_back(S_starts[l].select(2, c).reshape({B * H, shape.widths[l], shape.widths[l + 1]}));
    }
    at::Tensor dq, dk, dv;
    Gates dg;
    work.backward(view.rows(in[kQ], c), view.rows(in[kK], c), view.rows(in[kV], c), view.gates(gates, c), W, S,
                  view.rows(dy, c), dW, dS, dq, dk, dv, dg);
    ChunkViews::put(chunked(grads[kQ]), c, dq);
    ChunkViews::put(chunked(grads[kK]), c, dk);
    ChunkViews::put(chunked(grads[kV]), c, dv);
    const at::Tensor* parts[] = {&dg.query,    &dg.query_weight, &dg.query_surprise, &dg.end_weight,
                                 &dg.end_surprise, &dg.end_decay, &dg.end_mix,        &dg.end_momentum};
    for (size_t i = 0; i < 8; ++i) ChunkViews::put(grads[kGates + i], c, *parts[i]);
    if (c + 1 == nc)  // the end anchor is this chunk's start state
      for (size_t l = 0; l < L; ++l) dW[l] += dW_last[l].reshape(dW[l].sizes());
  }
  for (size_t l = 0; l < L; ++l) {
    grads[kStates + l].copy_(dW[l].view(grads[kStates + l].sizes()));
    grads[kStates + L + l].copy_(dS[l].view(grads[kStates + L + l].sizes()));
  }
}

}  // namespace attnlab::kernels::titans_batched
