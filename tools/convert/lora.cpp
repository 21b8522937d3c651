#include "tools/convert/lora.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "framework/config/config_error.h"

namespace attnlab::convert {

LoraAdaptersImpl::LoraAdaptersImpl(LanguageModel& model, const std::vector<std::string>& targets, int64_t rank,
                                   double alpha)
    : scale_(alpha / static_cast<double>(rank)) {
  at::NoGradGuard no_grad;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();  // e.g. layers.3.mixer.q_proj
    const std::string own = name.substr(name.rfind('.') + 1);
    auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(item.value());
    if (!linear || name.find(".mixer.") == std::string::npos ||
        std::find(targets.begin(), targets.end(), own) == targets.end())
      continue;
    const at::Tensor& w = linear->weight;  // [out, in]
    const int64_t out = w.size(0), in = w.size(1);
    std::string key = name;
    std::replace(key.begin(), key.end(), '.', '_');
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor A = register_parameter(key + "_A", at::empty({rank, in}, w.options()).uniform_(-bound, bound));
    at::Tensor B = register_parameter(key + "_B", at::zeros({out, rank}, w.options()));
    adapters_.push_back({linear, w, A, B});
  }
  if (adapters_.empty())
    throw ConfigError({fmt::format("convert.lora.targets [{}]: no linear layer of a mixer has one of these names",
                                   fmt::join(targets, ", "))});
}

void LoraAdaptersImpl::apply() {
  if (merged_) return;
  for (Adapter& a : adapters_) a.linear->weight = a.base + scale_ * at::mm(a.B, a.A);
}

void LoraAdaptersImpl::merge() {
  at::NoGradGuard no_grad;
  for (Adapter& a : adapters_) {
    if (!merged_) a.base.add_(at::mm(a.B, a.A), scale_);
    a.linear->weight = a.base;
  }
  merged_ = true;
}

void LoraFinetune::prepare(LanguageModel& model) {
  if (start_) start_(model);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  adapters_ = LoraAdapters(model, stage_.targets, stage_.rank, stage_.alpha);
  model->register_module("lora", adapters_);
}

void LoraFinetune::before_forward(LanguageModel& /*model*/) { adapters_->apply(); }

std::map<std::string, double> LoraFinetune::validate(LanguageModel& /*model*/, const at::Tensor& /*inputs*/,
                                                     const at::Tensor& /*targets*/, const MixerContext& /*ctx*/) {
  return {{"teacher_loss", teacher_loss_}};
}

}  // namespace attnlab::convert
