#include "layers/softmax/softmax_attention.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/zeros.h>

#include <cmath>

#include "framework/dist/communicator.h"
#include "framework/dist/sequence_collectives.h"
#include "framework/model/documents.h"
#include "kernels/attention/fused_cpu.h"
#include "kernels/attention/fused_cuda.h"
#include "kernels/attention/reference.h"
#include "framework/model/token_positions.h"
#include "layers/common/rotary.h"
#include "layers/softmax/ring_attention.h"

namespace attnlab::layers {
namespace {

struct KVCache : MixerState {
  at::Tensor k, v;  // [B, Hkv, max_len, d]
};
}  // namespace

SoftmaxAttention::SoftmaxAttention(const SoftmaxOptions& o, const MixerShape& s)
    : heads_(o.heads),
      kv_heads_(o.kv_heads ? o.kv_heads : o.heads),
      head_dim_(o.head_dim ? o.head_dim : s.dim / o.heads),
      rotary_(o.rope == "rotary") {
  rope_.base = o.rope_base, rope_.scaling = o.rope_scaling, rope_.factor = o.rope_factor;
  rope_.low_freq_factor = o.rope_low_freq_factor, rope_.high_freq_factor = o.rope_high_freq_factor;
  rope_.original_max_len = o.rope_original_max_len;
  TORCH_CHECK(o.rope_scaling != "llama3" || o.rope_high_freq_factor > o.rope_low_freq_factor,
              "softmax: rope_high_freq_factor (", o.rope_high_freq_factor, ") must exceed rope_low_freq_factor (",
              o.rope_low_freq_factor, ")");
  TORCH_CHECK(heads_ % kv_heads_ == 0, "softmax: heads (", heads_, ") must be a multiple of kv_heads (",
              kv_heads_, ")");
  TORCH_CHECK(o.head_dim || s.dim % heads_ == 0, "softmax: dim (", s.dim,
              ") must be divisible by heads (", heads_, ") unless head_dim is set");
  TORCH_CHECK(!rotary_ || head_dim_ % 2 == 0, "softmax: head_dim must be even for RoPE, got ", head_dim_);
  auto lin = [&](int64_t i, int64_t n) { return torch::nn::LinearOptions(i, n).bias(o.bias); };
  q_proj = register_module("q_proj", torch::nn::Linear(lin(s.dim, heads_ * head_dim_)));
  k_proj = register_module("k_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  v_proj = register_module("v_proj", torch::nn::Linear(lin(s.dim, kv_heads_ * head_dim_)));
  o_proj = register_module("o_proj", torch::nn::Linear(lin(heads_ * head_dim_, s.dim)));
}

void SoftmaxAttention::init_parameters(const InitScales& s) {
  init_linear(q_proj, s.std);
  init_linear(k_proj, s.std);
  init_linear(v_proj, s.std);
  init_linear(o_proj, s.residual_std);  // init_linear zeroes the biases
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> SoftmaxAttention::project(const at::Tensor& x,
                                                                         const at::Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = q_proj->forward(x).view({B, T, heads_, head_dim_});
  at::Tensor k = k_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  at::Tensor v = v_proj->forward(x).view({B, T, kv_heads_, head_dim_});
  if (!rotary_) return {q, k, v};
  return {apply_rotary_at(q, positions, rope_), apply_rotary_at(k, positions, rope_), v};
}

at::Tensor SoftmaxAttention::forward(const at::Tensor& x, const MixerContext& ctx) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool sharded = ctx.cp && ctx.cp->size() > 1;
  // A whole sequence of packed documents runs fastest as rows of the causal kernel; a shard
  // masks documents itself.
  if (ctx.documents.defined() && !sharded) return mix_as_document_rows(*this, x, ctx);
  const bool explicit_positions = ctx.positions.defined() || sharded;
  const at::Tensor pos = call_positions(ctx, B, T, x.device(), "softmax");  // [T] or [B, T]
  auto [q, k, v] = project(x, pos);
  if (sharded && ctx.cp_strategy == CpStrategy::ulysses)
    return o_proj->forward(attend_by_heads(q, k, v, ctx).reshape({B, T, heads_ * head_dim_}));
  q = q.transpose(1, 2), k = k.transpose(1, 2), v = v.transpose(1, 2);  // [B, H*, T, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  at::Tensor o;
  if (sharded && ctx.cp_strategy == CpStrategy::ring_lse) {
    o = ring_attention(q, k, v, pos, ctx.documents, scale, *ctx.cp);
  } else if (explicit_positions) {
    // allgather_kv (docs/parallelism.md): every rank gathers the whole sequence's keys and values
    // (autograd reduce-scatters their gradients back) and masks by position and document.
    at::Tensor key_pos = pos, key_doc = ctx.documents;
    if (sharded) {
      k = gather_sequence(k, *ctx.cp, 2), v = gather_sequence(v, *ctx.cp, 2);
      key_pos = gather_sequence(pos, *ctx.cp, pos.dim() - 1);  // int64: no gradient
      if (key_doc.defined()) key_doc = gather_sequence(ctx.documents.to(x.device(), at::kLong).contiguous(), *ctx.cp, 1);
    }
    if (!q.is_cuda() && ctx.kernel != "reference") {
      // The tiled kernel takes the positions and documents as they are and skips the tiles they
      // hide; SDPA needs them as an explicit mask and then computes every pair (measured:
      // docs/benchmarks.md, "Context parallelism").
      kernels::AttentionSpec spec;
      spec.scale = scale, spec.q_pos = pos, spec.k_pos = key_pos;
      if (key_doc.defined()) spec.q_doc = ctx.documents.to(x.device(), at::kLong), spec.k_doc = key_doc.to(at::kLong);
      o = kernels::attention_fused(q, k, v, {}, spec);
    } else {
      at::Tensor visible = key_pos.unsqueeze(-2).le(pos.unsqueeze(-1));  // [(B,) T, T_all]
      if (key_doc.defined())  // same document only (positions are then within the document)
        visible = visible.logical_and(key_doc.to(x.device()).unsqueeze(1).eq(ctx.documents.to(x.device()).unsqueeze(2)));
      if (visible.dim() == 3) visible = visible.unsqueeze(1);  // per row: [B, 1, T, T_all]
      o = at::scaled_dot_product_attention(q, k, v, visible, /*dropout_p=*/0.0, /*is_causal=*/false, scale,
                                           /*enable_gqa=*/kv_heads_ != heads_);
    }
  } else {
    o = causal(q, k, v, ctx.kernel);
  }
  return o_proj->forward(o.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

at::Tensor SoftmaxAttention::causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const std::string& kernel) const {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  if (kernel == "reference") return kernels::causal_attention_reference(q, k, v, scale);
  // On CUDA `fused` is asked for by name only: `auto` keeps SDPA's flash kernel there.
  if (kernel == "fused" && (!q.is_cuda() || kernels::attention_cuda_compiled()))
    return kernels::causal_attention_fused(q, k, v, scale);
  if (kernel == "fused") {
    TORCH_WARN_ONCE("softmax: kernel 'fused': this build has no CUDA attention kernels; using SDPA "
                    "(docs/kernels/attention.md)");
  }
  // enable_gqa only when needed: with it set, CPU SDPA leaves the flash kernel for the slower
  // math path (measured: docs/benchmarks.md).
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true, scale,
                                          /*enable_gqa=*/q.size(1) != k.size(1));
}

at::Tensor SoftmaxAttention::attend_by_heads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                             const MixerContext& ctx) {
  Communicator& cp = *ctx.cp;
  const int64_t P = cp.size();
  TORCH_CHECK(heads_ % P == 0 && kv_heads_ % P == 0, "softmax: cp_strategy ulysses needs parallel.cp (", P,
              ") to divide heads (", heads_, ") and kv_heads (", kv_heads_, "); use allgather_kv");
  // Ulysses (docs/parallelism.md): the whole sequence for H/P heads, causal by index (the
  // shards are contiguous), RoPE already applied at each shard's positions.
  at::Tensor qh = sequence_to_heads(q, cp), kh = sequence_to_heads(k, cp), vh = sequence_to_heads(v, cp);
  DocumentRows rows;
  if (ctx.documents.defined()) {  // each document of the whole sequence as a row
    rows = document_rows(gather_sequence(ctx.documents.to(q.device(), at::kLong).contiguous(), cp, 1));
    qh = to_rows(qh, rows), kh = to_rows(kh, rows), vh = to_rows(vh, rows);
  }
  at::Tensor o = causal(qh.transpose(1, 2), kh.transpose(1, 2), vh.transpose(1, 2), ctx.kernel).transpose(1, 2);
  if (ctx.documents.defined()) o = from_rows(o, rows);
  return heads_to_sequence(o.contiguous(), cp);  // [B, S, H, d]
}

at::Tensor SoftmaxAttention::attention_weights(const at::Tensor& x, const MixerContext& ctx) {
  require_whole_sequence(ctx, "softmax");
  const at::Tensor pos = call_positions(ctx, x.size(0), x.size(1), x.device(), "softmax");
  auto [q, k, v] = project(x, pos);
  kernels::AttentionSpec spec;
  spec.scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  spec.q_pos = spec.k_pos = pos;
  return kernels::attention_weights_reference(q.transpose(1, 2), k.transpose(1, 2), {}, spec);
}

std::unique_ptr<MixerState> SoftmaxAttention::init_state(int64_t batch, int64_t max_len) {
  auto s = std::make_unique<KVCache>();
  auto opts = q_proj->weight.options();
  s->k = at::zeros({batch, kv_heads_, max_len, head_dim_}, opts);
  s->v = at::zeros({batch, kv_heads_, max_len, head_dim_}, opts);
  return s;
}

at::Tensor SoftmaxAttention::step(const at::Tensor& x_t, MixerState& state) {
  auto& cache = static_cast<KVCache&>(state);
  const int64_t B = x_t.size(0), p = cache.position;
  TORCH_CHECK(p < cache.k.size(2), "softmax: KV cache of ", cache.k.size(2), " positions is full");
  auto [q, k, v] = project(x_t.unsqueeze(1), at::full({1}, p, x_t.options().dtype(at::kLong)));  // [B, 1, H*, d]
  cache.k.narrow(2, p, 1).copy_(k.transpose(1, 2));
  cache.v.narrow(2, p, 1).copy_(v.transpose(1, 2));
  cache.position = p + 1;
  at::Tensor o = kernels::causal_attention_reference(
      q.transpose(1, 2), cache.k.narrow(2, 0, p + 1), cache.v.narrow(2, 0, p + 1),
      1.0 / std::sqrt(static_cast<double>(head_dim_)));  // [B, H, 1, d]
  return o_proj->forward(o.reshape({B, heads_ * head_dim_}));
}

double SoftmaxAttention::extra_flops_per_token(int64_t seq_len) const {
  // QK^T and PV: 2 matmuls * 2 FLOPs * d per (query, key) pair; causal halves the pairs.
  return 2.0 * 2.0 * heads_ * head_dim_ * seq_len / 2.0;
}

ATTNLAB_REGISTER_MIXER("softmax", SoftmaxAttention, SoftmaxOptions,
                       "causal multi-head attention with RoPE and GQA (SDPA; KV-cache decode)");

}  // namespace attnlab::layers
