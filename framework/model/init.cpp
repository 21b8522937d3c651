#include "framework/model/init.h"

#include <torch/nn/init.h>

namespace attnlab {

void init_normal(const at::Tensor& w, double std) {
  at::NoGradGuard no_grad;
  torch::nn::init::normal_(w, 0.0, std);
}

void init_linear(const torch::nn::Linear& l, double std) {
  init_normal(l->weight, std);
  if (l->bias.defined()) init_constant(l->bias, 0.0);
}

void init_layer_norm(const torch::nn::LayerNorm& n) {
  if (n->weight.defined()) init_constant(n->weight, 1.0);
  if (n->bias.defined()) init_constant(n->bias, 0.0);
}

void init_constant(const at::Tensor& t, double value) {
  at::NoGradGuard no_grad;
  t.fill_(value);
}

}  // namespace attnlab
