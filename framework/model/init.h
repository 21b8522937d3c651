// Parameter init (docs/model.md, "Parameter init"). Every part of the model (embedding, norms,
// MLPs, positions, mixers) initialises its own parameters through these helpers, in the order it
// registered them, so a model's init is the sequence of its parts' inits and nothing is chosen by
// matching parameter names.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

namespace attnlab {

/// The scales a part draws from (GPT-2 style).
struct InitScales {
  double std = 0.02;           ///< N(0, std) for every matrix that reads the residual stream
  double residual_std = 0.02;  ///< output projections writing into it: std / sqrt(2 · layers)
};

/// w ~ N(0, std) in place (no autograd).
void init_normal(const at::Tensor& w, double std);
/// weight ~ N(0, std); bias, if any, zero.
void init_linear(const torch::nn::Linear& l, double std);
/// weight ones, bias (if any) zero.
void init_layer_norm(const torch::nn::LayerNorm& n);
/// Fill `t` with `value` in place (no autograd).
void init_constant(const at::Tensor& t, double value);

}  // namespace attnlab
