#include "layers/common/attention_mixer.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "kernels/attention/fused_cpu.h"
#include "kernels/attention/fused_cuda.h"
#include "layers/common/attention_cp.h"
#include "kernels/attention/reference.h"
#include "framework/model/token_positions.h"
#include "layers/common/rotary.h"

namespace attnlab::layers {
namespace {

/// Keys, values, key biases and positions of the tokens seen so far. Without a window every
/// position has its slot; with one, positions < sinks keep theirs and the rest share a ring of
/// `window` slots, so the oldest non-sink key is the one overwritten (it is out of every later
/// query's window).
struct AttentionCache : MixerState {
  at::Tensor k, v, key_bias;  // [B, Hkv, slots, d], [B, Hkv, slots]
  at::Tensor pos;             // int64 [slots]
  int64_t sinks = 0, window = 0;
  int64_t slot(int64_t p) const { return window == 0 || p < sinks ? p : sinks + (p - sinks) % window; }
  int64_t filled(int64_t tokens) const { return std::min<int64_t>(tokens, pos.size(0)); }
};

}  // namespace

at::Tensor run_attention(const AttendCall& c) {
  const std::string kernel = c.ctx ? c.ctx->kernel : "auto";
  if (kernel == "reference") return kernels::attention_reference(c.q, c.k, c.v, c.key_bias, c.spec);
  if (c.q.is_cuda()) {
    // The CUDA tiles run when asked for by name, or under `auto` once a GPU run validated them.
    const bool cuda_ok = kernels::attention_cuda_compiled() && (kernel == "fused" || kernels::attention_cuda_validated());
    if (!cuda_ok) {
      TORCH_WARN_ONCE("attention: ",
                      kernels::attention_cuda_compiled() ? "the CUDA attention kernel is not validated on a GPU yet"
                                                         : "this build has no CUDA attention kernels",
                      "; kernel '", kernel, "' runs the plain-torch reference on CUDA (kernel: fused forces the "
                      "CUDA kernel; docs/kernels/attention.md)");
      return kernels::attention_reference(c.q, c.k, c.v, c.key_bias, c.spec);
    }
    if (!kernels::attention_cuda_validated()) {
      TORCH_WARN_ONCE("attention: kernel 'fused' runs the CUDA attention kernel, which has not been validated on a "
                      "GPU yet (tools/gpu/check.sh; docs/kernels/attention.md)");
    }
  }
  return kernels::attention_fused(c.q, c.k, c.v, c.key_bias, c.spec);
}

AttentionMixer::AttentionMixer(const char* name, const AttentionCoreOptions& o, const MixerShape& s)
    : name_(name),
      dim_(s.dim),
      heads_(o.heads),
      kv_heads_(o.kv_heads ? o.kv_heads : o.heads),
      head_dim_(o.head_dim ? o.head_dim : s.dim / o.heads),
      rope_base_(o.rope_base),
      qk_norm_(o.qk_norm) {
  TORCH_CHECK(heads_ % kv_heads_ == 0, name, ": heads (", heads_, ") must be a multiple of kv_heads (", kv_heads_,
              ")");
  TORCH_CHECK(o.head_dim || s.dim % heads_ == 0, name, ": dim (", s.dim, ") must be divisible by heads (", heads_,
              ") unless head_dim is set");
  TORCH_CHECK(head_dim_ % 2 == 0, name, ": head_dim must be even for RoPE, got ", head_dim_);
  auto lin = [](int64_t i, int64_t out) { return torch::nn::LinearOptions(i, out).bias(false); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, heads_ * head_dim_)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(heads_ * head_dim_, s.dim)));
  if (qk_norm_) {
    q_norm = register_module("q_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({head_dim_})));
    k_norm = register_module("k_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({head_dim_})));
  }
}

void AttentionMixer::init_parameters(const InitScales& s) {
  init_linear(q_proj, s.std);
  init_linear(k_proj, s.std);
  init_linear(v_proj, s.std);
  init_linear(o_proj, s.residual_std);
  if (q_norm) init_layer_norm(q_norm);
  if (k_norm) init_layer_norm(k_norm);
}

kernels::AttentionSpec AttentionMixer::base_spec() const {
  kernels::AttentionSpec s;
  s.scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> AttentionMixer::project(const at::Tensor& x,
                                                                       const at::Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = q_proj->forward(x).view({B, T, heads_, head_dim_});
  at::Tensor k = k_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  at::Tensor v = v_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  if (qk_norm_) q = q_norm->forward(q), k = k_norm->forward(k);
  return {apply_rotary_at(q, positions, rope_base_), apply_rotary_at(k, positions, rope_base_), v};
}

at::Tensor AttentionMixer::output(const at::Tensor& o, const at::Tensor& gates) {
  const int64_t B = o.size(0), T = o.size(1);
  at::Tensor g = gates.defined() ? o * gates.unsqueeze(-1).to(o.scalar_type()) : o;
  return o_proj->forward(g.reshape({B, T, heads_ * head_dim_}));
}

std::vector<CpStrategy> AttentionMixer::cp_strategies() const {
  // halo and ring_sum rely on the keys being visited independently, which holds for the spec
  // alone: DMA (key intervals over all keys) and SSA (block selection) have neither a window nor
  // sigmoid scores, so they get allgather_kv only.
  const kernels::AttentionSpec s = base_spec();
  std::vector<CpStrategy> out;
  if (s.window > 0) out.push_back(CpStrategy::halo);  // the default where it applies: least traffic
  out.push_back(CpStrategy::allgather_kv);
  if (s.transform == kernels::ScoreTransform::sigmoid) out.push_back(CpStrategy::ring_sum);
  return out;
}

at::Tensor AttentionMixer::forward(const at::Tensor& x, const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool sharded = ctx.cp && ctx.cp->size() > 1;
  const at::Tensor pos = call_positions(ctx, B, T, x.device(), name_);  // [T] or [B, T]
  auto [q, k, v] = project(x, pos);
  const at::Tensor gates = output_gates(x, ctx);
  ShardKeys keys{k, v, key_bias(x, v), pos, {}, {}};  // key_bias [B, T, Hkv] or undefined
  if (ctx.documents.defined()) keys.docs = ctx.documents.to(x.device(), at::kLong);
  AttendCall call;
  call.ctx = &ctx;
  call.spec = base_spec();
  call.spec.q_pos = pos;
  call.spec.q_doc = keys.docs;
  call.gates = gates;
  if (gates.defined() && skip_zero_gates()) call.spec.active_rows = gates.ne(0).transpose(1, 2);  // [B, H, T]
  call.q = q.transpose(1, 2);
  if (sharded) {
    // docs/parallelism.md: which keys reach this shard, and how (layers/common/attention_cp.h).
    const auto offered = cp_strategies();
    TORCH_CHECK(std::count(offered.begin(), offered.end(), ctx.cp_strategy), name_, ": cp_strategy ",
                to_string(ctx.cp_strategy), " is not one of this mixer's");
    Communicator& cp = *ctx.cp;
    if (ctx.cp_strategy == CpStrategy::ring_sum) {
      auto run = [this](const AttendCall& c) { return attend(c); };
      return output(ring_sum_attention(call, keys, cp, run).transpose(1, 2), gates);
    }
    keys = ctx.cp_strategy == CpStrategy::halo ? window_keys(keys, call.spec.window, call.spec.sinks, cp)
                                               : gather_all_keys(keys, cp);
  }
  call.k = keys.k.transpose(1, 2), call.v = keys.v.transpose(1, 2);
  if (keys.key_bias.defined()) call.key_bias = keys.key_bias.transpose(1, 2);
  call.spec.k_pos = keys.pos;
  call.spec.k_doc = keys.docs;
  return tie_to_graph(output(attend(call).transpose(1, 2), gates), keys.exchanged);
}

at::Tensor AttentionMixer::attention_weights(const at::Tensor& x, const MixerContext& ctx) {
  if (!plain_softmax()) return {};
  require_whole_sequence(ctx, name_);
  const at::Tensor pos = call_positions(ctx, x.size(0), x.size(1), x.device(), name_);
  auto [q, k, v] = project(x, pos);
  kernels::AttentionSpec spec = base_spec();
  spec.q_pos = spec.k_pos = pos;
  return kernels::attention_weights_reference(q.transpose(1, 2), k.transpose(1, 2), {}, spec);
}

std::unique_ptr<MixerState> AttentionMixer::init_state(int64_t batch, int64_t max_len) {
  auto c = std::make_unique<AttentionCache>();
  const kernels::AttentionSpec spec = base_spec();
  c->window = spec.window, c->sinks = spec.window ? spec.sinks : 0;
  const int64_t slots = spec.window ? std::min(max_len, spec.sinks + spec.window) : max_len;
  auto opts = q_proj->weight.options();
  c->k = at::zeros({batch, kv_heads_, slots, head_dim_}, opts);
  c->v = at::zeros({batch, kv_heads_, slots, head_dim_}, opts);
  c->pos = at::full({slots}, -1, at::TensorOptions().dtype(at::kLong));
  return c;
}

at::Tensor AttentionMixer::step(const at::Tensor& x_t, MixerState& state) {
  auto& c = static_cast<AttentionCache&>(state);
  const int64_t p = c.position, s = c.slot(p);
  TORCH_CHECK(s < c.pos.size(0), name_, ": KV cache of ", c.pos.size(0), " positions is full");
  const at::Tensor x = x_t.unsqueeze(1);  // [B, 1, D]
  auto [q, k, v] = project(x, at::full({1}, p, x_t.options().dtype(at::kLong)));
  at::Tensor kb = key_bias(x, v);
  if (kb.defined() && !c.key_bias.defined()) c.key_bias = at::zeros({x.size(0), kv_heads_, c.pos.size(0)}, kb.options());
  c.k.narrow(2, s, 1).copy_(k.transpose(1, 2));
  c.v.narrow(2, s, 1).copy_(v.transpose(1, 2));
  if (kb.defined()) c.key_bias.narrow(2, s, 1).copy_(kb.transpose(1, 2));
  c.pos[s] = p;
  c.position = p + 1;
  static const MixerContext decode = kernel_context("auto");
  const at::Tensor gates = output_gates(x, decode);
  const int64_t n = c.filled(p + 1);
  AttendCall call;
  call.ctx = &decode;
  call.spec = base_spec();
  call.spec.q_pos = at::full({1}, p, at::TensorOptions().dtype(at::kLong));
  call.spec.k_pos = c.pos.narrow(0, 0, n);
  call.gates = gates;
  if (gates.defined() && skip_zero_gates()) call.spec.active_rows = gates.ne(0).transpose(1, 2);
  call.q = q.transpose(1, 2), call.k = c.k.narrow(2, 0, n), call.v = c.v.narrow(2, 0, n);
  if (kb.defined()) call.key_bias = c.key_bias.narrow(2, 0, n);
  return output(attend(call).transpose(1, 2), gates).squeeze(1);
}

double AttentionMixer::extra_flops_per_token(int64_t seq_len) const {
  // QKᵀ and PV: 2 matmuls × 2 FLOPs × d per visible (query, key) pair: T/2 causal on average,
  // at most window + sinks with a window.
  const kernels::AttentionSpec s = base_spec();
  double pairs = seq_len / 2.0;
  if (s.window > 0) pairs = std::min<double>(pairs, s.window + s.sinks);
  return 2.0 * 2.0 * heads_ * head_dim_ * pairs;
}

}  // namespace attnlab::layers
