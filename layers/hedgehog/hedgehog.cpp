#include "layers/hedgehog/hedgehog.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/zeros.h>

#include <cmath>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "layers/common/linear_mixer.h"
#include "framework/model/token_positions.h"
#include "layers/common/rotary.h"
#include "layers/common/sharded_linear.h"
#include "layers/hedgehog/hybrid_attention.h"

namespace attnlab::layers {
namespace {
/// S [B, H, 2f, dv + 1] holds Σ φk [v, 1]ᵀ (the last column is z). The hybrid also keeps the
/// raw (post-RoPE) k, v of the last `window` tokens, [B, H, n ≤ w, d].
struct HedgehogState : MixerState {
  at::Tensor S, k_window, v_window;
};
}  // namespace

Hedgehog::Hedgehog(const HedgehogOptions& o, const MixerShape& s)
    : o_(o),
      kv_heads_(o.kv_heads ? o.kv_heads : o.heads),
      head_dim_(o.head_dim ? o.head_dim : s.dim / o.heads) {
  TORCH_CHECK(o.heads % kv_heads_ == 0, "hedgehog: heads (", o.heads,
              ") must be a multiple of kv_heads (", kv_heads_, ")");
  TORCH_CHECK(o.head_dim || s.dim % o.heads == 0, "hedgehog: dim (", s.dim,
              ") must be divisible by heads (", o.heads, ") unless head_dim is set");
  TORCH_CHECK(!o.rope || head_dim_ % 2 == 0, "hedgehog: head_dim must be even for RoPE, got ", head_dim_);
  feature_dim_ = o.feature_dim ? o.feature_dim : std::max<int64_t>(1, head_dim_ / 2);
  auto lin = [](int64_t i, int64_t n) { return torch::nn::LinearOptions(i, n).bias(false); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, o.heads * head_dim_)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(o.heads * head_dim_, s.dim)));
  q_map = register_module("q_map", HedgehogFeatureMap(o.heads, head_dim_, feature_dim_, o.feature_map));
  k_map = o.tie_qk ? q_map
                   : register_module("k_map", HedgehogFeatureMap(o.heads, head_dim_, feature_dim_, o.feature_map));
  if (o.window > 0) window_logit = register_parameter("window_logit", at::zeros({o.heads}));
  kernel_ = make_kernel_options(1.0, o.chunk_size, o.sub_chunk);
}

void Hedgehog::init_parameters(const InitScales& s) {
  init_linear(q_proj, s.std);
  init_linear(k_proj, s.std);
  init_linear(v_proj, s.std);
  init_linear(o_proj, s.residual_std);
  // The feature maps start as the identity (docs/mixers/hedgehog.md); the window mix at
  // window_factor_init.
  q_map->reset_to_identity();
  k_map->reset_to_identity();
  if (window_logit.defined())
    init_constant(window_logit, std::log(o_.window_factor_init / (1.0 - o_.window_factor_init)));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> Hedgehog::project(const at::Tensor& x, const at::Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.heads;
  at::Tensor q = q_proj->forward(x).view({B, T, H, head_dim_});
  at::Tensor k = k_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  at::Tensor v = v_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  if (o_.rope) q = apply_rotary_at(q, positions, o_.rope_base), k = apply_rotary_at(k, positions, o_.rope_base);
  return {q.transpose(1, 2), to_heads(k, H), to_heads(v, H)};
}

std::vector<CpStrategy> Hedgehog::cp_strategies() const { return linear_cp_strategies(); }

std::pair<WindowHalo, at::Tensor> Hedgehog::halo(const at::Tensor& k, const at::Tensor& v,
                                                  const MixerContext& ctx) {
  if (!ctx.cp || ctx.cp->size() == 1) return {};
  // The w tokens before this shard (framework/dist/sequence_collectives.h); k and v in one message.
  const int64_t w = o_.window, d = k.size(3);
  const ShardHalo kv = tokens_before_shard(at::cat({k, v}, -1), *ctx.cp, w, 2);
  const at::Tensor& before = kv.before;
  WindowHalo h;
  if (ctx.documents.defined())
    h.documents = tokens_before_shard(ctx.documents.to(k.device(), at::kLong), *ctx.cp, w, 1).before;
  if (!before.defined()) return {WindowHalo{}, kv.exchanged};
  h.k = before.narrow(-1, 0, d), h.v = before.narrow(-1, d, d), h.phi_k = k_map->forward(h.k);
  return {h, kv.exchanged};
}

at::Tensor Hedgehog::forward(const at::Tensor& x, const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  // Packed documents: the window masks them, the linear sums reset at them (also across shards).
  auto [q, k, v] = project(x, call_positions(ctx, B, T, x.device(), "hedgehog"));
  at::Tensor phi_q = q_map->forward(q), phi_k = k_map->forward(k);  // [B, H, T, 2f]
  LinearRunner linear = [&](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& vv) {
    return linear_attention_in_context(fq, fk, vv, {}, {}, kernel_, ctx).out;  // kernel_: scale 1
  };
  at::Tensor y;
  if (o_.window > 0) {
    auto [window_halo, exchanged] = halo(k, v, ctx);
    y = sliding_window_hybrid_attention(q, k, v, phi_q, phi_k, at::sigmoid(window_logit), o_.window, linear,
                                        window_halo, ctx.documents);
    y = tie_to_graph(y, exchanged);  // rank 0 uses none of it
  } else {
    y = normalized_linear_attention(phi_q, phi_k, v, o_.eps, linear);
  }
  return o_proj->forward(y.transpose(1, 2).reshape({B, T, o_.heads * head_dim_}));
}

at::Tensor Hedgehog::attention_weights(const at::Tensor& x, const MixerContext& ctx) {
  require_whole_sequence(ctx, "hedgehog");
  auto [q, k, v] = project(x, call_positions(ctx, x.size(0), x.size(1), x.device(), "hedgehog"));
  const at::Tensor phi_q = q_map->forward(q), phi_k = k_map->forward(k);
  if (o_.window > 0) return sliding_window_hybrid_weights(q, k, phi_q, phi_k, at::sigmoid(window_logit), o_.window);
  return normalized_linear_weights(phi_q, phi_k, o_.eps);
}

std::unique_ptr<MixerState> Hedgehog::init_state(int64_t batch, int64_t /*max_len*/) {
  auto s = std::make_unique<HedgehogState>();
  auto opts = q_proj->weight.options().dtype(kernels::linear_state_dtype(q_proj->weight.scalar_type()));
  s->S = at::zeros({batch, o_.heads, 2 * feature_dim_, head_dim_ + 1}, opts);
  s->k_window = at::zeros({batch, o_.heads, 0, head_dim_}, q_proj->weight.options());
  s->v_window = s->k_window;
  return s;
}

at::Tensor Hedgehog::step(const at::Tensor& x_t, MixerState& state) {
  auto& st = static_cast<HedgehogState&>(state);
  const int64_t B = x_t.size(0);
  auto [q, k, v] = project(x_t.unsqueeze(1), at::full({1}, st.position, x_t.options().dtype(at::kLong)));  // [B, H, 1, d]
  const auto acc = st.S.scalar_type();
  auto with_one = [&](const at::Tensor& t) {
    return at::cat({t.to(acc), at::ones({B, o_.heads, t.size(2), 1}, st.S.options())}, -1);
  };
  auto absorb = [&](const at::Tensor& keys, const at::Tensor& vals) {  // S += φk(k)ᵀ [v, 1]
    st.S = st.S + at::matmul(k_map->forward(keys).to(acc).transpose(2, 3), with_one(vals));
  };
  if (o_.window == 0) {
    absorb(k, v);
  } else {
    if (st.k_window.size(2) == o_.window) {  // evict the oldest token into the linear state
      absorb(st.k_window.narrow(2, 0, 1), st.v_window.narrow(2, 0, 1));
      st.k_window = st.k_window.narrow(2, 1, o_.window - 1), st.v_window = st.v_window.narrow(2, 1, o_.window - 1);
    }
    st.k_window = at::cat({st.k_window, k}, 2), st.v_window = at::cat({st.v_window, v}, 2);
  }
  st.position += 1;
  at::Tensor lin = at::matmul(q_map->forward(q).to(acc), st.S);  // [B, H, 1, dv + 1]
  at::Tensor num = lin.narrow(-1, 0, head_dim_), den = lin.narrow(-1, head_dim_, 1);
  at::Tensor y;
  if (o_.window == 0) {
    y = num / (den + o_.eps);
  } else {
    at::Tensor s = at::matmul(q.to(acc), st.k_window.to(acc).transpose(2, 3)) /
                   std::sqrt(static_cast<double>(head_dim_));  // [B, H, 1, n]
    at::Tensor p = at::exp(s - at::amax(s, {-1}, true));
    at::Tensor g = at::sigmoid(window_logit).to(acc).view({1, o_.heads, 1, 1});
    y = (g * at::matmul(p, st.v_window.to(acc)) + num) / (g * p.sum(-1, true) + den);
  }
  return o_proj->forward(y.to(x_t.scalar_type()).reshape({B, o_.heads * head_dim_}));
}

double Hedgehog::extra_flops_per_token(int64_t /*seq_len*/) const {
  // The kernel runs on φ (width 2f) with v plus the normaliser's ones column; the feature maps
  // cost two d×f matmuls per head; the hybrid adds QKᵀ and PV over the window.
  const double d = static_cast<double>(head_dim_);
  const double linear = linear_attention_flops_per_token(o_.heads, 2 * feature_dim_, head_dim_ + 1, o_.chunk_size);
  const double window = o_.window > 0 ? 2.0 * 2.0 * d * o_.window : 0.0;
  return linear + o_.heads * (window + 2.0 * 2.0 * d * feature_dim_ * 2);
}

ATTNLAB_REGISTER_MIXER("hedgehog", Hedgehog, HedgehogOptions,
                       "normalised linear attention with learned feature maps (+ LoLCATs window hybrid)");

}  // namespace attnlab::layers
