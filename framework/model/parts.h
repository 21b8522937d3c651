// The parts a block is assembled from, each chosen by name from model.block in YAML
// (docs/model.md, "Blocks as data"): norms (rmsnorm, layernorm), MLPs (swiglu, gelu,
// gelu_tanh) and positional embeddings (none, learned). Each part owns its parameter init.
// Mixers are the fourth kind of part and have their own registry (framework/model/mixer.h).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "framework/model/init.h"
#include "framework/registry/registry.h"

namespace attnlab {

/// Model-level facts a part is built from.
struct PartShape {
  int64_t dim = 0;          ///< model width D
  int64_t mlp_hidden = 0;   ///< MLP hidden width (resolved)
  double norm_eps = 1e-5;
  bool bias = false;        ///< linear biases (model.block.bias)
  int64_t max_seq_len = 0;  ///< rows of a learned position table
};

/// x [..., D] -> [..., D], same dtype.
class Norm : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual void init_parameters(const InitScales& s) = 0;
};

/// x [..., D] -> [..., D]; the output projection writes into the residual stream.
class Mlp : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual void init_parameters(const InitScales& s) = 0;
};

/// positions [T] or [B, T] int64 -> embeddings [T, D] or [B, T, D], added to the token embedding.
class PositionEmbedding : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& positions) = 0;
  virtual void init_parameters(const InitScales& s) = 0;
};

template <class Part>
struct PartEntry {
  std::string description;
  /// Null for a part that is "nothing" (positions: none).
  std::shared_ptr<Part> (*create)(const PartShape& shape);
};
using NormEntry = PartEntry<Norm>;
using MlpEntry = PartEntry<Mlp>;
using PositionsEntry = PartEntry<PositionEmbedding>;

/// The registries, with the built-in parts already in them (they live in the framework library,
/// which the linker would otherwise be free to drop). More parts register with
/// Registry<NormEntry>::instance().add(...) from any linked object.
Registry<NormEntry>& norm_registry();
Registry<MlpEntry>& mlp_registry();
Registry<PositionsEntry>& positions_registry();

void register_builtin_norms(Registry<NormEntry>& r);      // framework/model/norms.cpp
void register_builtin_mlps(Registry<MlpEntry>& r);        // framework/model/mlps.cpp
void register_builtin_positions(Registry<PositionsEntry>& r);  // framework/model/learned_positions.cpp

/// x / sqrt(mean(x²) + eps) over the last dim, no gain; statistics in fp32 (fp64 stays fp64);
/// returns x's dtype. The body of RMSNorm, and SRMSNorm / per-head norms of mixers.
at::Tensor rms_normalize(const at::Tensor& x, double eps);

}  // namespace attnlab
