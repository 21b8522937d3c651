// The built-in MLPs. Parameter names follow HF Llama (gate_proj, up_proj, down_proj); the GELU
// MLP uses up_proj/down_proj for GPT-2's c_fc/c_proj (the importer maps the names).
#include <ATen/ops/gelu.h>
#include <ATen/ops/silu.h>
#include <torch/nn/modules/linear.h>

#include "framework/model/parts.h"

namespace attnlab {
namespace {

torch::nn::LinearOptions linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::LinearOptions(in, out).bias(bias);
}

/// down(silu(gate(x)) ⊙ up(x)).
class SwiGlu : public Mlp {
 public:
  explicit SwiGlu(const PartShape& s) {
    gate_proj = register_module("gate_proj", torch::nn::Linear(linear(s.dim, s.mlp_hidden, s.bias)));
    up_proj = register_module("up_proj", torch::nn::Linear(linear(s.dim, s.mlp_hidden, s.bias)));
    down_proj = register_module("down_proj", torch::nn::Linear(linear(s.mlp_hidden, s.dim, s.bias)));
  }
  at::Tensor forward(const at::Tensor& x) override {
    return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
  }
  void init_parameters(const InitScales& s) override {
    init_linear(gate_proj, s.std);
    init_linear(up_proj, s.std);
    init_linear(down_proj, s.residual_std);
  }
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};

/// down(gelu(up(x))); `approximate` is "none" (erf) or "tanh" (GPT-2's gelu_new).
class GeluMlp : public Mlp {
 public:
  GeluMlp(const PartShape& s, const char* approximate) : approximate_(approximate) {
    up_proj = register_module("up_proj", torch::nn::Linear(linear(s.dim, s.mlp_hidden, s.bias)));
    down_proj = register_module("down_proj", torch::nn::Linear(linear(s.mlp_hidden, s.dim, s.bias)));
  }
  at::Tensor forward(const at::Tensor& x) override {
    return down_proj->forward(at::gelu(up_proj->forward(x), approximate_));
  }
  void init_parameters(const InitScales& s) override {
    init_linear(up_proj, s.std);
    init_linear(down_proj, s.residual_std);
  }
  torch::nn::Linear up_proj{nullptr}, down_proj{nullptr};

 private:
  const char* approximate_;
};

}  // namespace

void register_builtin_mlps(Registry<MlpEntry>& r) {
  r.add("swiglu", {"down(silu(gate(x)) * up(x)) (Llama)",
                   [](const PartShape& s) -> std::shared_ptr<Mlp> { return std::make_shared<SwiGlu>(s); }});
  r.add("gelu", {"down(gelu(up(x))), exact erf GELU",
                 [](const PartShape& s) -> std::shared_ptr<Mlp> { return std::make_shared<GeluMlp>(s, "none"); }});
  r.add("gelu_tanh", {"down(gelu(up(x))), tanh-approximated GELU (GPT-2's gelu_new)",
                      [](const PartShape& s) -> std::shared_ptr<Mlp> { return std::make_shared<GeluMlp>(s, "tanh"); }});
}

}  // namespace attnlab
