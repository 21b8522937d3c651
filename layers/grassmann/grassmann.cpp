#include "layers/grassmann/grassmann.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/sigmoid.h>

#include <algorithm>
#include <set>

#include "framework/dist/sequence_collectives.h"
#include "kernels/grassmann/collapsed.h"
#include "kernels/grassmann/reference.h"

namespace attnlab::layers {
namespace {

/// Decoding state: the reduced states of the last `reach` tokens [B, ≤ reach, r].
struct GrassmannState : MixerState {
  at::Tensor history;
};

kernels::PluckerNorm plucker_norm(const std::string& name) {
  if (name == "clamp") return kernels::PluckerNorm::clamp;
  if (name == "none") return kernels::PluckerNorm::none;
  return kernels::PluckerNorm::smooth;
}

}  // namespace

Grassmann::Grassmann(const GrassmannOptions& o, const MixerShape& s) {
  std::vector<int64_t> offsets = o.offsets;
  if (!o.schedule.empty()) offsets = {o.schedule[static_cast<size_t>(s.layer_index) % o.schedule.size()]};
  TORCH_CHECK(!offsets.empty(), "grassmann: offsets is empty (give at least one offset Δ >= 1)");
  for (int64_t d : offsets)
    TORCH_CHECK(d >= 1, "grassmann: offsets and schedule must be >= 1, got ", d);
  TORCH_CHECK(std::set<int64_t>(offsets.begin(), offsets.end()).size() == offsets.size(),
              "grassmann: offsets must be distinct (a repeated Δ would count twice in the average)");
  spec_.offsets = offsets;
  spec_.norm = plucker_norm(o.norm);
  spec_.eps = o.eps;
  spec_.future = o.pairing == "future";
  reach_ = *std::max_element(offsets.begin(), offsets.end());
  const int64_t pairs = o.rank * (o.rank - 1) / 2;
  reduce = register_module("reduce", torch::nn::Linear(torch::nn::LinearOptions(s.dim, o.rank)));
  plucker_proj = register_module("plucker_proj", torch::nn::Linear(torch::nn::LinearOptions(pairs, s.dim)));
  gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(2 * s.dim, s.dim)));
}

void Grassmann::init_parameters(const InitScales& s) {
  // Matrices N(0, std), biases zero: the gate starts at α = σ(small) ≈ 1/2, an even blend.
  init_linear(reduce, s.std);
  init_linear(plucker_proj, s.std);
  init_linear(gate, s.std);
}

std::vector<CpStrategy> Grassmann::cp_strategies() const {
  if (spec_.future) return {};  // a future halo would be needed, and the mode leaks anyway
  return {CpStrategy::halo};
}

double Grassmann::extra_flops_per_token(int64_t /*seq_len*/) const {
  // Per offset: two dots and a norm (≈ 6r) and the w update (2r); then the Plücker vector (3 per
  // entry). The projections are parameter matmuls, counted by 6N.
  const double r = static_cast<double>(reduce->weight.size(0));
  return static_cast<double>(spec_.offsets.size()) * 8.0 * r + 1.5 * r * (r - 1);
}

at::Tensor Grassmann::mix(const at::Tensor& z, const at::Tensor& documents, int64_t context,
                          const std::string& kernel) const {
  kernels::GrassmannSpec spec = spec_;
  spec.context = context;
  const at::Tensor& W = plucker_proj->weight;
  const at::Tensor& b = plucker_proj->bias;
  return kernel == "reference" ? kernels::grassmann_mix_reference(z, W, b, documents, spec)
                               : kernels::grassmann_mix_collapsed(z, W, b, documents, spec);
}

at::Tensor Grassmann::mixing_feature(const at::Tensor& x, const MixerContext& ctx) {
  const at::Tensor z = reduce->forward(x);  // [B, S, r]
  if (!ctx.cp || ctx.cp->size() == 1) return mix(z, ctx.documents, 0, ctx.kernel);
  TORCH_CHECK(ctx.cp_strategy == CpStrategy::halo, "grassmann: context parallelism needs the halo strategy");
  // halo: the reduced states of the `reach` tokens before this shard (docs/parallelism.md).
  // Every rank takes part in the exchange, rank 0 included, whose halo is empty.
  const ShardHalo zh = tokens_before_shard(z, *ctx.cp, reach_, 1);
  const at::Tensor& halo = zh.before;
  at::Tensor docs;
  if (ctx.documents.defined()) {
    const at::Tensor d = ctx.documents.to(z.device(), at::kLong);
    const at::Tensor halo_docs = tokens_before_shard(d, *ctx.cp, reach_, 1).before;
    docs = halo_docs.defined() ? at::cat({halo_docs, d}, 1) : d;
  }
  if (!halo.defined()) return tie_to_graph(mix(z, docs, 0, ctx.kernel), zh.exchanged);
  return mix(at::cat({halo.to(z.scalar_type()), z}, 1), docs, halo.size(1), ctx.kernel);
}

at::Tensor Grassmann::blend(const at::Tensor& x, const at::Tensor& g) {
  const at::Tensor alpha = at::sigmoid(gate->forward(at::cat({x, g}, -1)));
  return alpha * x + (1 - alpha) * g;
}

at::Tensor Grassmann::forward(const at::Tensor& x, const MixerContext& ctx) {
  return blend(x, mixing_feature(x, ctx));
}

std::unique_ptr<MixerState> Grassmann::init_state(int64_t /*batch*/, int64_t /*max_len*/) {
  TORCH_CHECK(!spec_.future, "grassmann: pairing: future pairs each token with later ones and cannot decode");
  return std::make_unique<GrassmannState>();
}

at::Tensor Grassmann::step(const at::Tensor& x_t, MixerState& state) {
  auto& s = static_cast<GrassmannState&>(state);
  const at::Tensor z = reduce->forward(x_t).unsqueeze(1);  // [B, 1, r]
  const int64_t n = s.history.defined() ? s.history.size(1) : 0;
  const at::Tensor ext = n ? at::cat({s.history, z}, 1) : z;
  const at::Tensor g = mix(ext, at::Tensor(), n, "auto").squeeze(1);
  s.history = ext.narrow(1, std::max<int64_t>(0, n + 1 - reach_), std::min(n + 1, reach_));
  ++s.position;
  return blend(x_t, g);
}

ATTNLAB_REGISTER_MIXER("grassmann", Grassmann, GrassmannOptions,
                       "causal Grassmann mixing: Plücker coordinates of token pairs at fixed offsets, convex gate");

}  // namespace attnlab::layers
