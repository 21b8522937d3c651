#include "layers/titans/titans.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>

#include "framework/dist/sequence_collectives.h"
#include "framework/model/parts.h"
#include "kernels/titans/fused.h"
#include "kernels/titans/reference.h"
#include "layers/swa/swa.h"
#include "layers/titans/memory_cp.h"
#include "layers/titans/short_conv.h"
#include "layers/titans/state.h"

namespace attnlab::layers {

namespace {

at::Tensor l2_normalize(const at::Tensor& x) { return x * at::rsqrt(x.pow(2).sum(-1, true) + 1e-12); }

}  // namespace

Titans::Titans(const TitansOptions& o, const MixerShape& s) : o_(o), dim_(s.dim) {
  head_dim_ = o.head_dim ? o.head_dim : s.dim / o.heads;
  TORCH_CHECK(o.head_dim || s.dim % o.heads == 0, "titans: dim (", s.dim, ") must be divisible by heads (", o.heads,
              ") unless head_dim is set");
  spec_.chunk = o.chunk, spec_.read_after_write = o.read == "after", spec_.max_grad_norm = o.max_grad_norm;
  spec_.loss_scale = o.loss_scale > 0 ? o.loss_scale : 1.0 / static_cast<double>(head_dim_);
  spec_.activation = o.activation == "silu" ? kernels::MemoryActivation::silu : kernels::MemoryActivation::gelu_tanh;
  const int64_t H = o.heads, d = head_dim_, width = H * d, hidden = o.expansion * d;
  auto lin = [](int64_t i, int64_t n, bool bias = false) { return torch::nn::LinearOptions(i, n).bias(bias); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, width)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, width)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, width)));
  conv_q = register_parameter("conv_q", at::zeros({width, o.conv}));
  conv_k = register_parameter("conv_k", at::zeros({width, o.conv}));
  conv_v = register_parameter("conv_v", at::zeros({width, o.conv}));
  theta_proj = register_module("theta_proj", torch::nn::Linear(lin(s.dim, H, true)));
  alpha_proj = register_module("alpha_proj", torch::nn::Linear(lin(s.dim, H, true)));
  eta_proj = register_module("eta_proj", torch::nn::Linear(lin(s.dim, H, true)));
  for (int64_t l = 0; l < o.memory_layers; ++l) {
    const int64_t a = l == 0 ? d : hidden, b = l + 1 == o.memory_layers ? d : hidden;
    memory_init.push_back(register_parameter("memory_" + std::to_string(l), at::zeros({H, a, b})));
  }
  out_norm = register_parameter("out_norm", at::ones({d}));
  gate_proj = register_module("gate_proj", torch::nn::Linear(lin(s.dim, width)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(width, s.dim)));
  if (o.architecture != "lmm") {
    SwaOptions a;
    a.core.heads = o.attention_heads, a.window = o.window, a.sinks = o.persistent;  // P: visible to every query
    if (o.architecture == "mac") a.window = o.persistent + 2 * o.segment, a.sinks = 0;  // all of [P; h; S]
    attention = register_module("attention", std::make_shared<SlidingWindowAttention>(a, s));
    if (o.architecture == "mag" || o.architecture == "mac") {
      attn_norm = register_parameter("attn_norm", at::ones({s.dim}));
      mem_norm = register_parameter("mem_norm", at::ones({s.dim}));
    }
  }
  if (o.persistent > 0) persistent = register_parameter("persistent", at::zeros({o.persistent, s.dim}));
  // A usable module straight away (an all-zero MLP memory would never learn); the model
  // initialises again with its own scales.
  init_parameters(InitScales{});
}

void Titans::init_parameters(const InitScales& s) {
  init_linear(q_proj, s.std);
  init_linear(k_proj, s.std);
  init_linear(v_proj, s.std);
  // The short convs start as the identity (tap 0 on the current token), so they begin as no-ops.
  for (const at::Tensor& w : {conv_q, conv_k, conv_v}) {
    init_constant(w, 0.0);
    at::NoGradGuard g;
    w.select(1, 0).fill_(1.0);
  }
  // Gate biases (docs/mixers/titans.md): θ ≈ 0.12 θ_max, α ≈ 0.007 (slow forgetting), η ≈ 0.88.
  init_linear(theta_proj, s.std), init_constant(theta_proj->bias, -2.0);
  init_linear(alpha_proj, s.std), init_constant(alpha_proj->bias, -5.0);
  init_linear(eta_proj, s.std), init_constant(eta_proj->bias, 2.0);
  // W_0 ~ N(0, 1/fan_in): a non-zero start (a zero MLP memory never learns, σ(0) = 0).
  for (const at::Tensor& w : memory_init) init_normal(w, 1.0 / std::sqrt(static_cast<double>(w.size(1))));
  init_constant(out_norm, 1.0);
  init_linear(gate_proj, s.std);
  init_linear(o_proj, s.residual_std);
  if (attention) attention->init_parameters(s);
  if (attn_norm.defined()) init_constant(attn_norm, 1.0), init_constant(mem_norm, 1.0);
  // P lives where the normalised layer input does (unit RMS), so N(0, 1) rather than s.std.
  if (persistent.defined()) init_normal(persistent, 1.0);
}

std::vector<CpStrategy> Titans::cp_strategies() const {
  if (o_.architecture == "mac") return o_.retrieval == "causal" ? std::vector{CpStrategy::serial_state}
                                                                 : std::vector<CpStrategy>{};
  if (o_.persistent > 0) return {};
  return {CpStrategy::serial_state};
}

at::Tensor Titans::persistent_prefix(int64_t batch, at::ScalarType dtype) const {
  return persistent.to(dtype).unsqueeze(0).expand({batch, o_.persistent, dim_});
}

double Titans::extra_flops_per_token(int64_t seq_len) const {
  // Per head and token (docs/mixers/titans.md, "Cost"): key pass, query pass and hand-off cost
  // about 5.5 MLP forwards, plus the n×n products over a chunk of b: per layer, b·w_{l−1} for the
  // query-key scores and b·w_l for their product with the updates.
  double macs = 0, widths = 0;
  for (const at::Tensor& w : memory_init)
    macs += static_cast<double>(w.size(1) * w.size(2)), widths += static_cast<double>(w.size(1) + w.size(2));
  const double per_head = 5.5 * macs + static_cast<double>(o_.chunk) * widths;
  const double memory = 2.0 * per_head * o_.heads;
  if (o_.architecture != "mac") return memory + (attention ? attention->extra_flops_per_token(seq_len) : 0.0);
  // mac: the retrieval h is one more MLP forward per head; attention runs over two rows per
  // token (h and the token) inside [P; h; S], so about twice its cost at that length.
  const double context = static_cast<double>(std::min(seq_len, o_.segment)) * 2 + o_.persistent;
  return memory + 2.0 * macs * o_.heads + 2.0 * attention->extra_flops_per_token(static_cast<int64_t>(context));
}

kernels::MemoryState Titans::memory_start(int64_t batch, at::ScalarType dtype) const {
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;  // the state in fp32 at least
  return kernels::initial_memory_state(memory_init, batch, acc);
}

at::Tensor Titans::raw_projections(const at::Tensor& x) {
  return at::cat({q_proj->forward(x), k_proj->forward(x), v_proj->forward(x)}, -1);
}

Titans::Projected Titans::project(const at::Tensor& x, const at::Tensor& raw, const at::Tensor& conv_tail) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.heads, d = head_dim_;
  const at::Tensor conv = at::silu(causal_short_conv(raw, at::cat({conv_q, conv_k, conv_v}, 0), conv_tail));
  auto heads = [&](const at::Tensor& t) { return t.view({B, T, H, d}).transpose(1, 2); };
  auto chunks = conv.chunk(3, -1);
  auto gate = [&](torch::nn::Linear& l) { return at::sigmoid(l->forward(x)).transpose(1, 2); };  // [B, H, T]
  return {heads(l2_normalize(chunks[0].reshape({B, T, H, d}))).contiguous(),
          heads(l2_normalize(chunks[1].reshape({B, T, H, d}))).contiguous(), heads(chunks[2]).contiguous(),
          o_.theta_max * gate(theta_proj), gate(alpha_proj), gate(eta_proj)};
}

at::Tensor Titans::retrieval_queries(const at::Tensor& q_raw, const at::Tensor& q_tail) {
  const int64_t B = q_raw.size(0), T = q_raw.size(1);
  const at::Tensor q = at::silu(causal_short_conv(q_raw, conv_q, q_tail)).view({B, T, o_.heads, head_dim_});
  return l2_normalize(q).transpose(1, 2).contiguous();
}

at::Tensor Titans::readout(const at::Tensor& y, const at::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  const at::Tensor normed = rms_normalize(y, 1e-6) * out_norm.to(y.scalar_type());  // [B, H, T, d]
  return o_proj->forward(normed.transpose(1, 2).reshape({B, T, o_.heads * head_dim_}) * at::silu(gate_proj->forward(x)));
}

at::Tensor Titans::memory_branch(const at::Tensor& x, const MixerContext& ctx) {
  auto run = [&](const Projected& p, const kernels::MemoryState& from) {
    return kernels::memory_kernel(ctx.kernel, x.is_cuda())(p.q, p.k, p.v, p.theta, p.alpha, p.eta, from, spec_);
  };
  if (!ctx.cp || ctx.cp->size() == 1) {
    const Projected p = project(x, raw_projections(x), at::Tensor());
    return readout(run(p, memory_start(x.size(0), x.scalar_type())).first, x);
  }
  // serial_state (docs/parallelism.md): the conv halo from the previous rank, then the memory
  // state handed from rank to rank.
  TORCH_CHECK(ctx.cp_strategy == CpStrategy::serial_state, "titans: context parallelism needs serial_state");
  const at::Tensor raw = raw_projections(x);
  ShardHalo halo;  // the conv's κ − 1 rows before the shard; none without a conv
  if (o_.conv > 1) halo = tokens_before_shard(raw, *ctx.cp, o_.conv - 1, 1);
  const Projected p = project(x, raw, halo.before);
  auto shard = [&](const kernels::MemoryState& from) { return run(p, from); };
  const at::Tensor y =
      serial_memory(shard, memory_start(x.size(0), x.scalar_type()), spec_.chunk, x.size(1), *ctx.cp, halo.exchanged);
  return readout(y, x);
}

at::Tensor Titans::combine(const at::Tensor& x, const at::Tensor& memory,
                           const std::function<at::Tensor(const at::Tensor&)>& swa) {
  if (o_.architecture == "lmm") return memory;
  if (o_.architecture == "mal") return memory + swa(x + memory);
  return gate_by_memory(swa(x), memory);
}

at::Tensor Titans::gate_by_memory(const at::Tensor& attention_out, const at::Tensor& memory) const {
  const auto dtype = attention_out.scalar_type();
  const at::Tensor a = rms_normalize(attention_out, 1e-6) * attn_norm.to(dtype);
  return a * at::sigmoid(rms_normalize(memory, 1e-6) * mem_norm.to(dtype));
}

at::Tensor Titans::forward(const at::Tensor& x, const MixerContext& ctx) {
  if (o_.architecture == "mac") return mac_forward(x, ctx);
  MixerContext attn_ctx = ctx;
  if (ctx.cp && ctx.cp->size() > 1) attn_ctx.cp_strategy = CpStrategy::allgather_kv;
  auto swa = [&](const at::Tensor& in) { return attention->forward(in, attn_ctx); };
  if (o_.persistent == 0) return combine(x, memory_branch(x, ctx), swa);
  // [P; x]: the memory reads P first and the attention sees it from every query (as sinks).
  TORCH_CHECK(!ctx.cp || ctx.cp->size() == 1, "titans: persistent tokens have no context-parallel strategy");
  TORCH_CHECK(!ctx.positions.defined(), "titans: persistent tokens take the positions 0..N_p-1 themselves");
  const at::Tensor prefixed = at::cat({persistent_prefix(x.size(0), x.scalar_type()), x}, 1);
  return combine(prefixed, memory_branch(prefixed, ctx), swa).narrow(1, o_.persistent, x.size(1));
}

std::unique_ptr<MixerState> Titans::init_state(int64_t batch, int64_t max_len) {
  auto s = std::make_unique<TitansState>();
  s->batch = batch;
  s->memory = memory_start(batch, memory_init[0].scalar_type());
  if (o_.architecture == "mac") return s;  // the attention cache starts with each segment
  if (attention) s->attention = attention->init_state(batch, max_len + o_.persistent);
  if (o_.persistent > 0) {
    at::NoGradGuard no_grad;
    const at::Tensor p = persistent_prefix(batch, persistent.scalar_type());
    for (int64_t i = 0; i < o_.persistent; ++i) step_tokens(p.select(1, i), *s);
    s->position = 0;
  }
  return s;
}

at::Tensor Titans::step(const at::Tensor& x_t, MixerState& state) {
  auto& s = static_cast<TitansState&>(state);
  return o_.architecture == "mac" ? mac_step(x_t, s) : step_tokens(x_t, s);
}

at::Tensor Titans::step_tokens(const at::Tensor& x_t, TitansState& s) {
  const at::Tensor x = x_t.unsqueeze(1);
  const at::Tensor raw = raw_projections(x);
  const Projected p = project(x, raw, s.conv_tail);
  s.conv_tail = next_conv_tail(raw, s.conv_tail, o_.conv);
  auto [y, next] = kernels::memory_reference(p.q, p.k, p.v, p.theta, p.alpha, p.eta, s.memory, spec_);
  s.memory = std::move(next);
  ++s.position;
  const at::Tensor memory = readout(y, x).squeeze(1);
  return combine(x_t, memory, [&](const at::Tensor& in) { return attention->step(in, *s.attention); });
}

ATTNLAB_REGISTER_MIXER("titans", Titans, TitansOptions,
                       "Titans neural long-term memory (lmm, mag, mal, mac): test-time MLP memory, chunked dual form");

}  // namespace attnlab::layers
