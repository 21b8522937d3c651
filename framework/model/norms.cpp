// The built-in norms. Both compute their statistics in fp32 (fp64 stays fp64) and return the
// input's dtype, so bf16 autocast runs do not lose the mean/variance to rounding.
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/zeros.h>

#include "framework/model/parts.h"

namespace attnlab {

at::Tensor rms_normalize(const at::Tensor& x, double eps) {
  at::Tensor xf = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  at::Tensor inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xf * inv).to(x.scalar_type());
}

namespace {

at::Tensor statistics_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
}

/// RMSNorm (Llama): x / rms(x) · weight; no bias.
class RmsNorm : public Norm {
 public:
  explicit RmsNorm(const PartShape& s) : eps_(s.norm_eps) { weight = register_parameter("weight", at::ones({s.dim})); }
  at::Tensor forward(const at::Tensor& x) override { return rms_normalize(x, eps_) * weight.to(x.scalar_type()); }
  void init_parameters(const InitScales&) override { init_constant(weight, 1.0); }
  at::Tensor weight;

 private:
  double eps_;
};

/// LayerNorm (GPT-2, post-norm blocks): (x − mean) / std · weight + bias.
class LayerNorm : public Norm {
 public:
  explicit LayerNorm(const PartShape& s) : dim_(s.dim), eps_(s.norm_eps) {
    weight = register_parameter("weight", at::ones({s.dim}));
    bias = register_parameter("bias", at::zeros({s.dim}));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor xf = statistics_dtype(x);
    return at::layer_norm(xf, {dim_}, weight.to(xf.scalar_type()), bias.to(xf.scalar_type()), eps_)
        .to(x.scalar_type());
  }
  void init_parameters(const InitScales&) override {
    init_constant(weight, 1.0);
    init_constant(bias, 0.0);
  }
  at::Tensor weight, bias;

 private:
  int64_t dim_;
  double eps_;
};

}  // namespace

void register_builtin_norms(Registry<NormEntry>& r) {
  r.add("rmsnorm", {"x / rms(x) * weight (Llama); fp32 statistics",
                    [](const PartShape& s) -> std::shared_ptr<Norm> { return std::make_shared<RmsNorm>(s); }});
  r.add("layernorm", {"(x - mean) / std * weight + bias (GPT-2); fp32 statistics",
                      [](const PartShape& s) -> std::shared_ptr<Norm> { return std::make_shared<LayerNorm>(s); }});
}

}  // namespace attnlab
