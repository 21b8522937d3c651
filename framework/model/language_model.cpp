#include "framework/model/language_model.h"

#include <ATen/ops/full_like.h>
#include <ATen/ops/linear.h>
#include <torch/nn/modules/container/modulelist.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "framework/model/documents.h"
#include "framework/model/token_positions.h"

namespace attnlab {

LanguageModelImpl::LanguageModelImpl(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg.pattern.empty()) throw std::invalid_argument("model.pattern is empty");
  const PartShape shape = cfg.part_shape();
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(cfg.vocab_size, cfg.dim));
  if (auto p = positions_registry().get("model.positions", cfg.positions).create(shape))
    embed_positions = register_module("embed_positions", p);
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < cfg.layers; ++i) {
    layers.push_back(Block(cfg, cfg.pattern[i % cfg.pattern.size()], i));
    list->push_back(layers.back());
  }
  register_module("layers", list);
  if (layout_registry().get("model.block.layout", cfg.block.layout).final_norm)
    norm = register_module("norm", norm_registry().get("model.block.norm", cfg.block.norm).create(shape));
  if (!cfg.tie_embeddings)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(cfg.dim, cfg.vocab_size).bias(false)));
  init_parameters();
}

void LanguageModelImpl::init_parameters() {
  // GPT-2 style: N(0, std) for matrices; output projections of residual branches scaled by
  // 1/sqrt(2 * layers) so the residual stream's variance does not grow with depth. Each part
  // knows which of its matrices those are; the draws happen in registration order.
  const InitScales s{cfg_.init_std, cfg_.init_std / std::sqrt(2.0 * cfg_.layers)};
  init_normal(embed_tokens->weight, s.std);
  if (embed_positions) embed_positions->init_parameters(s);
  for (auto& block : layers) block->init_parameters(s);
  if (norm) norm->init_parameters(s);
  if (lm_head) init_linear(lm_head, s.std);
}

at::Tensor LanguageModelImpl::embed(const at::Tensor& tokens, const at::Tensor& positions) {
  at::Tensor h = embed_tokens->forward(tokens);
  return embed_positions ? h + embed_positions->forward(positions).to(h.scalar_type()) : h;
}

at::Tensor LanguageModelImpl::head(const at::Tensor& h) {
  at::Tensor n = norm ? norm->forward(h) : h;
  at::Tensor w = cfg_.tie_embeddings ? embed_tokens->weight : lm_head->weight;
  // Logits in fp32 at least (bf16 autocast), fp64 for an fp64 model (train.dtype: fp64).
  return at::linear(n, w.to(n.scalar_type())).to(at::promote_types(n.scalar_type(), at::kFloat));
}

at::Tensor LanguageModelImpl::forward(const at::Tensor& tokens, const MixerContext& ctx) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [B, T], got ", tokens.sizes());
  TORCH_CHECK(tokens.size(1) <= cfg_.max_seq_len, "sequence of ", tokens.size(1),
              " tokens exceeds model.max_seq_len ", cfg_.max_seq_len);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  at::Tensor h = embed(tokens, embed_positions ? call_positions(ctx, B, T, tokens.device(), "model.positions")
                                               : at::Tensor());  // [B, T, D]
  if (!ctx.documents.defined() || ctx.document_rows) {
    for (auto& block : layers) h = block->forward(h, ctx);
    return head(h);
  }
  // The documents' row layout, once for all blocks (one host round trip per forward).
  MixerContext with_rows = ctx;
  with_rows.document_rows = std::make_shared<const DocumentRows>(document_rows(ctx.documents));
  for (auto& block : layers) h = block->forward(h, with_rows);
  return head(h);
}

std::vector<AuxLoss> LanguageModelImpl::aux_losses() {
  std::vector<AuxLoss> out;  // one entry per name, summed over blocks, in first-seen order
  for (auto& block : layers)
    for (AuxLoss& a : block->mixer->aux_losses()) {
      auto same = std::find_if(out.begin(), out.end(), [&](const AuxLoss& o) { return o.name == a.name; });
      if (same == out.end()) out.push_back(std::move(a));
      else same->value = same->value + a.value;
    }
  return out;
}

ModelState LanguageModelImpl::init_state(int64_t batch, int64_t max_len) {
  ModelState s;
  for (auto& block : layers) s.layers.push_back(block->mixer->init_state(batch, max_len));
  return s;
}

at::Tensor LanguageModelImpl::step(const at::Tensor& tokens, ModelState& state) {
  at::Tensor h = embed(tokens, embed_positions ? at::full_like(tokens, state.position, at::kLong) : at::Tensor());
  for (size_t i = 0; i < layers.size(); ++i) h = layers[i]->step(h, *state.layers[i]);
  ++state.position;
  return head(h);  // [B, V]
}

int64_t LanguageModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

double LanguageModelImpl::train_flops_per_token(int64_t seq_len) const {
  // 6 FLOPs per parameter per token (fwd 2 + bwd 4), embedding lookup excluded but the head
  // matmul included, plus 3x each mixer's forward extra (scores etc).
  double n = static_cast<double>(num_parameters());
  if (!cfg_.tie_embeddings) n -= static_cast<double>(cfg_.vocab_size * cfg_.dim);
  double flops = 6.0 * n;
  for (const auto& block : layers) flops += 3.0 * block->mixer->extra_flops_per_token(seq_len);
  return flops;
}

}  // namespace attnlab
