#include "layers/ssa/ssa.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/smooth_l1_loss.h>

#include <algorithm>

#include "layers/ssa/block_selection.h"

namespace attnlab::layers {

SparseSparseAttention::SparseSparseAttention(const SsaOptions& o, const MixerShape& s)
    : AttentionMixer("ssa", o.core, s),
      block_(o.block_size),
      count_(o.block_count),
      layers_(std::max<int64_t>(1, s.num_layers)),
      align_weight_(o.align_weight),
      full_prob_(o.full_prob),
      sparse_inference_(o.inference == "sparse") {
  g_proj = register_module("g_proj", torch::nn::Linear(torch::nn::LinearOptions(s.dim, heads_).bias(false)));
}

void SparseSparseAttention::init_parameters(const InitScales& s) {
  AttentionMixer::init_parameters(s);
  init_linear(g_proj, s.std);
}

at::Tensor SparseSparseAttention::output_gates(const at::Tensor& x, const MixerContext& /*ctx*/) {
  return at::sigmoid(g_proj->forward(x));  // [B, T, H]
}

at::Tensor SparseSparseAttention::attend(const AttendCall& call) {
  TORCH_CHECK(!call.spec.q_doc.defined(), "ssa: packed documents must reach ssa as separate rows (mix_documents)");
  const bool training = call.ctx && call.ctx->training;
  align_ = at::Tensor();
  if (!training && !sparse_inference_) return run_attention(call);
  // Query i sits at key index q_pos[i]: whole sequences and decode caches hold every position
  // from 0, and allgather_kv gathers them in order (documents never reach this mixer).
  const at::Tensor q_index = call.spec.q_pos.defined()
                                 ? call.spec.q_pos
                                 : at::arange(call.k.size(2) - call.q.size(2), call.k.size(2),
                                              at::TensorOptions().dtype(at::kLong));
  AttendCall sparse = call;
  sparse.spec.keep = select_blocks(call.q, call.k, q_index, call.spec.scale, block_, count_);
  sparse.spec.keep_block = block_;
  sparse.spec.key_tile = block_ <= 64 ? block_ : 64;
  sparse.spec.query_tile = 32;
  const at::Tensor a_sparse = run_attention(sparse);
  if (!training) return a_sparse;
  const at::Tensor a_full = run_attention(call);
  // Alignment on the gated per-head outputs, before Wo: SmoothL1 (β = 1) both ways, each with
  // the other side stopped (equal weights give the gradients of one symmetric SmoothL1).
  const at::Tensor g = call.gates.transpose(1, 2).unsqueeze(-1).to(a_full.scalar_type());  // [B, H, T, 1]
  const at::Tensor f = a_full * g, s = a_sparse * g;
  align_ = (at::smooth_l1_loss(f, s.detach()) + at::smooth_l1_loss(f.detach(), s)) / static_cast<double>(layers_);
  return at::rand({1}).item<double>() < full_prob_ ? a_full : a_sparse;
}

std::vector<AuxLoss> SparseSparseAttention::aux_losses() {
  if (!align_.defined()) return {};
  return {{"ssa_align", align_, align_weight_}};
}

double SparseSparseAttention::extra_flops_per_token(int64_t seq_len) const {
  // Training runs both streams: the full causal one and at most block_count blocks per query.
  const double full = AttentionMixer::extra_flops_per_token(seq_len);
  const double sparse = 2.0 * 2.0 * heads_ * head_dim_ * std::min<double>(seq_len / 2.0, block_ * count_);
  return full + sparse;
}

ATTNLAB_REGISTER_MIXER("ssa", SparseSparseAttention, SsaOptions,
                       "sparse-sparse attention: full and block-selected streams, alignment loss (tiled kernel)");

}  // namespace attnlab::layers
