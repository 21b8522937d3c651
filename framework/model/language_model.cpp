#include "framework/model/language_model.h"

#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>

#include <algorithm>
#include <stdexcept>

#include "framework/dist/communicator.h"
#include "framework/model/documents.h"

namespace attnlab {

const char* to_string(CpStrategy s) {
  switch (s) {
    case CpStrategy::none: return "none";
    case CpStrategy::allgather_kv: return "allgather_kv";
    case CpStrategy::state_gather: return "state_gather";
    case CpStrategy::state_scan: return "state_scan";
    case CpStrategy::ring_lse: return "ring_lse";
    case CpStrategy::ring_sum: return "ring_sum";
    case CpStrategy::halo: return "halo";
    case CpStrategy::serial_state: return "serial_state";
    case CpStrategy::ulysses: return "ulysses";
  }
  return "?";
}

std::optional<CpStrategy> cp_strategy_named(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(CpStrategy::ulysses); ++i)
    if (name == to_string(static_cast<CpStrategy>(i))) return static_cast<CpStrategy>(i);
  return std::nullopt;
}

CpStrategy choose_cp_strategy(const Mixer& mixer, const std::vector<CpStrategy>& preference, int64_t ranks) {
  const std::vector<CpStrategy> offered = mixer.cp_strategies();
  for (CpStrategy p : preference)
    if (std::find(offered.begin(), offered.end(), p) != offered.end() && mixer.cp_supports(p, ranks)) return p;
  for (CpStrategy s : offered)
    if (mixer.cp_supports(s, ranks)) return s;
  return CpStrategy::none;
}

BlockImpl::BlockImpl(const ModelConfig& cfg, const MixerSpec& spec, int64_t index)
    : mixer_type(spec.type) {
  const MixerEntry* entry = MixerRegistry::instance().find(spec.type);
  if (!entry) throw std::runtime_error(MixerRegistry::instance().unknown_message("mixer", spec.type));
  MixerShape shape{cfg.dim, index, cfg.layers, cfg.max_seq_len};
  input_layernorm = register_module("input_layernorm", RMSNorm(cfg.dim, cfg.norm_eps));
  mixer = register_module("mixer", entry->create(*spec.options, shape));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(cfg.dim, cfg.norm_eps));
  mlp = register_module("mlp", SwiGLU(cfg.dim, cfg.resolved_mlp_hidden()));
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const MixerContext& ctx) {
  MixerContext sharded;  // under context parallelism: ctx with this block's strategy
  if (ctx.cp && ctx.cp->size() > 1) {
    sharded = ctx;
    sharded.cp_strategy = choose_cp_strategy(*mixer, ctx.cp_preference, ctx.cp->size());
    if (sharded.cp_strategy == CpStrategy::none)
      throw std::invalid_argument("mixer '" + mixer_type + "' has no context-parallel strategy for " +
                                  std::to_string(ctx.cp->size()) + " ranks (docs/parallelism.md lists each mixer's)");
    if (ctx.documents.defined() && !mixer->handles_documents())
      throw std::invalid_argument("mixer '" + mixer_type + "' cannot combine packed documents with context "
                                  "parallelism yet (data.pack: none, or parallel.cp: 1)");
  }
  const MixerContext& use = sharded.cp ? sharded : ctx;
  at::Tensor h = x + mix_documents(*mixer, input_layernorm->forward(x), use);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

at::Tensor BlockImpl::step(const at::Tensor& x_t, MixerState& state) {
  at::Tensor h = x_t + mixer->step(input_layernorm->forward(x_t), state);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

LanguageModelImpl::LanguageModelImpl(const ModelConfig& cfg) : cfg_(cfg) {
  if (cfg.pattern.empty()) throw std::invalid_argument("model.pattern is empty");
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(cfg.vocab_size, cfg.dim));
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < cfg.layers; ++i) {
    layers.push_back(Block(cfg, cfg.pattern[i % cfg.pattern.size()], i));
    list->push_back(layers.back());
  }
  register_module("layers", list);
  norm = register_module("norm", RMSNorm(cfg.dim, cfg.norm_eps));
  if (!cfg.tie_embeddings)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(cfg.dim, cfg.vocab_size).bias(false)));
  init_weights(cfg.init_std);
}

void LanguageModelImpl::init_weights(double std) {
  torch::NoGradGuard no_grad;
  // GPT-2 style: N(0, std) for matrices; output projections of residual branches scaled by
  // 1/sqrt(2 * layers) so the residual stream's variance does not grow with depth.
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (p.dim() < 2) {
      // Norm gains keep their ones; every bias starts at zero (torch's Linear default is
      // uniform ±1/sqrt(fan_in), which would spread GLA's initial decays). A mixer that wants
      // another value sets it in reset_special_parameters below.
      if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) p.zero_();
      continue;
    }
    double s = std;
    if (name.find("down_proj") != std::string::npos || name.find("o_proj") != std::string::npos)
      s = std / std::sqrt(2.0 * cfg_.layers);
    torch::nn::init::normal_(p, 0.0, s);
  }
  for (auto& block : layers) block->mixer->reset_special_parameters();
}

at::Tensor LanguageModelImpl::head(const at::Tensor& h) {
  at::Tensor n = norm->forward(h);
  at::Tensor w = cfg_.tie_embeddings ? embed_tokens->weight : lm_head->weight;
  // Logits in fp32 at least (bf16 autocast), fp64 for an fp64 model (train.dtype: fp64).
  return at::linear(n, w.to(n.scalar_type())).to(at::promote_types(n.scalar_type(), at::kFloat));
}

at::Tensor LanguageModelImpl::forward(const at::Tensor& tokens, const MixerContext& ctx) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [B, T], got ", tokens.sizes());
  TORCH_CHECK(tokens.size(1) <= cfg_.max_seq_len, "sequence of ", tokens.size(1),
              " tokens exceeds model.max_seq_len ", cfg_.max_seq_len);
  at::Tensor h = embed_tokens->forward(tokens);  // [B, T, D]
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
  at::Tensor h = embed_tokens->forward(tokens);  // [B, D]
  for (size_t i = 0; i < layers.size(); ++i) h = layers[i]->step(h, *state.layers[i]);
  return head(h);
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
