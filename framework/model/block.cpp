#include "framework/model/block.h"

#include <stdexcept>

#include "framework/dist/communicator.h"
#include "framework/model/documents.h"

namespace attnlab {

BlockImpl::BlockImpl(const ModelConfig& cfg, const MixerSpec& spec, int64_t index)
    : mixer_type(spec.type), mixer_residual_(cfg.block.mixer_residual), index_(index) {
  const MixerEntry* entry = MixerRegistry::instance().find(spec.type);
  if (!entry) throw std::runtime_error(MixerRegistry::instance().unknown_message("mixer", spec.type));
  layout_ = &layout_registry().get("model.block.layout", cfg.block.layout);
  const NormEntry& norm = norm_registry().get("model.block.norm", cfg.block.norm);
  const PartShape shape = cfg.part_shape();
  // Registration order is init order (and the checkpoint's tensor order): norm, mixer, norm, mlp.
  input_layernorm = register_module("input_layernorm", norm.create(shape));
  mixer = register_module("mixer", entry->create(*spec.options, MixerShape{cfg.dim, index, cfg.layers, cfg.max_seq_len}));
  if (layout_->norms_per_block > 1) post_attention_layernorm = register_module("post_attention_layernorm", norm.create(shape));
  mlp = register_module("mlp", mlp_registry().get("model.block.mlp", cfg.block.mlp).create(shape));
}

BlockParts BlockImpl::parts() const {
  return BlockParts{input_layernorm.get(), post_attention_layernorm.get(), mlp.get(), mixer_residual_};
}

void BlockImpl::init_parameters(const InitScales& s) {
  input_layernorm->init_parameters(s);
  mixer->init_parameters(s);
  if (post_attention_layernorm) post_attention_layernorm->init_parameters(s);
  mlp->init_parameters(s);
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
  return layout_->apply(parts(), x, [&](const at::Tensor& in) {
    at::Tensor out = mix_documents(*mixer, in, use);
    if (ctx.on_mixer) ctx.on_mixer(index_, in, out);
    return out;
  });
}

at::Tensor BlockImpl::step(const at::Tensor& x_t, MixerState& state) {
  return layout_->apply(parts(), x_t, [&](const at::Tensor& in) { return mixer->step(in, state); });
}

}  // namespace attnlab
