#include "framework/train/adamw.h"

#include "framework/checkpoint/tensor_copy.h"

#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <stdexcept>

namespace attnlab {

bool decays_by_default(const std::string& name, const at::Tensor& param, const OptimConfig& cfg) {
  const bool no_decay = param.dim() < 2 || name.find("embed") != std::string::npos;
  return cfg.decay_norms_and_embeddings || !no_decay;
}

AdamW::AdamW(const NamedTensors& params, const OptimConfig& cfg) : cfg_(cfg) {
  for (const auto& [name, p] : params)
    slots_.push_back({name, p, at::zeros_like(p), at::zeros_like(p), decays_by_default(name, p, cfg)});
}

AdamW::AdamW(std::vector<AdamWTarget> targets, const OptimConfig& cfg) : cfg_(cfg) {
  for (auto& t : targets)
    slots_.push_back({t.name, t.param, at::zeros_like(t.param), at::zeros_like(t.param), t.decay});
}

bool AdamW::decays(const std::string& name) const {
  for (const auto& s : slots_)
    if (s.name == name) return s.decay;
  throw std::out_of_range("AdamW: no parameter " + name);
}

void AdamW::step(double lr) {
  std::vector<at::Tensor> grads;
  for (const auto& s : slots_) grads.push_back(s.param.grad());
  step(lr, grads);
}

void AdamW::step(double lr, const std::vector<at::Tensor>& grads) {
  if (grads.size() != slots_.size())
    throw std::invalid_argument("AdamW::step: " + std::to_string(grads.size()) + " gradients for " +
                                std::to_string(slots_.size()) + " slots");
  ++steps_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, steps_);
  const double bc2 = 1.0 - std::pow(cfg_.beta2, steps_);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    const at::Tensor& g = grads[i];
    if (!g.defined()) continue;
    s.exp_avg.mul_(cfg_.beta1).add_(g, 1.0 - cfg_.beta1);
    s.exp_avg_sq.mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    if (s.decay && cfg_.weight_decay > 0) s.param.mul_(1.0 - lr * cfg_.weight_decay);
    at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    s.param.addcdiv_(s.exp_avg, denom, -lr / bc1);
  }
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (const auto& s : slots_)
    n += (s.exp_avg.numel() + s.exp_avg_sq.numel()) * static_cast<int64_t>(s.exp_avg.element_size());
  return n;
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (const auto& s : slots_) {
    out.emplace_back("exp_avg." + s.name, s.exp_avg);
    out.emplace_back("exp_avg_sq." + s.name, s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                       const std::string& origin) {
  copy_tensors_exact(state(), tensors, origin);
  steps_ = steps;
}

double learning_rate(const OptimConfig& cfg, int64_t step, int64_t total_steps) {
  const double peak = cfg.lr, floor = cfg.lr * cfg.min_lr_ratio;
  const int64_t warmup = std::min(cfg.warmup_steps, total_steps);
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (cfg.schedule == "constant") return peak;
  const double span = std::max<int64_t>(1, total_steps - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  if (cfg.schedule == "cosine") return floor + (peak - floor) * 0.5 * (1 + std::cos(M_PI * progress));
  // wsd: hold the peak, then decay linearly to the floor over the last decay_fraction of steps.
  const double decay_start = 1.0 - cfg.decay_fraction;
  if (progress <= decay_start || cfg.decay_fraction <= 0) return peak;
  return peak + (floor - peak) * (progress - decay_start) / cfg.decay_fraction;
}

}  // namespace attnlab
