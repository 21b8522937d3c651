#include "tools/convert/attention_transfer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/stack.h>

#include <algorithm>

#include "framework/checkpoint/tensor_copy.h"
#include "framework/model/documents.h"
#include "framework/train/setup.h"

namespace attnlab::convert {

AttentionTransfer::AttentionTransfer(LanguageModel teacher, LanguageModel start, std::vector<std::string> trained,
                                     std::vector<int64_t> converted, double mse_factor)
    : teacher_(std::move(teacher)),
      start_(std::move(start)),
      trained_(std::move(trained)),
      converted_(std::move(converted)),
      mse_factor_(mse_factor) {
  teacher_->eval();
  for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
}

void AttentionTransfer::prepare(LanguageModel& student) {
  at::NoGradGuard no_grad;
  const NamedTensors from = named_parameters(start_);
  copy_tensors_exact(named_parameters(student), std::map<std::string, at::Tensor>(from.begin(), from.end()),
                     "the student built from the teacher");
  for (auto& [name, p] : named_parameters(student))
    p.set_requires_grad(std::count(trained_.begin(), trained_.end(), name) > 0);
  start_ = nullptr;  // the trainer's model holds the weights now
}

std::vector<at::Tensor> AttentionTransfer::layer_errors(LanguageModel& student, const at::Tensor& inputs,
                                                        const MixerContext& ctx, at::Tensor* teacher_logits) {
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> seen;  // layer -> teacher mixer (input, output)
  {
    at::NoGradGuard no_grad;
    MixerContext tctx = ctx;
    tctx.training = false;
    tctx.on_mixer = [&](int64_t layer, const at::Tensor& in, const at::Tensor& out) {
      if (std::count(converted_.begin(), converted_.end(), layer)) seen[layer] = {in, out};
    };
    at::Tensor logits = teacher_->forward(inputs, tctx);
    if (teacher_logits) *teacher_logits = logits;
  }
  std::vector<at::Tensor> errors;
  MixerContext sctx = ctx;
  sctx.on_mixer = nullptr;
  for (int64_t l : converted_) {
    const auto& [in, out] = seen.at(l);
    at::Tensor y = mix_documents(*student->layers[static_cast<size_t>(l)]->mixer, in, sctx);
    errors.push_back(at::mse_loss(y.to(out.scalar_type()), out));
  }
  return errors;
}

std::optional<MicroBatchLoss> AttentionTransfer::loss(LanguageModel& student, const at::Tensor& inputs,
                                                      const at::Tensor& /*targets*/, const MixerContext& ctx) {
  const std::vector<at::Tensor> errors = layer_errors(student, inputs, ctx);
  MicroBatchLoss out;
  out.loss = mse_factor_ * at::stack(errors).mean();
  for (size_t i = 0; i < errors.size(); ++i)
    out.terms.push_back({"mse/layer" + std::to_string(converted_[i]), errors[i].detach(), 0.0});
  return out;
}

std::map<std::string, double> AttentionTransfer::validate(LanguageModel& student, const at::Tensor& inputs,
                                                          const at::Tensor& targets, const MixerContext& ctx) {
  at::Tensor logits;
  const std::vector<at::Tensor> errors = layer_errors(student, inputs, ctx, &logits);
  std::map<std::string, double> out;
  double sum = 0;
  for (size_t i = 0; i < errors.size(); ++i) {
    const double e = errors[i].item<double>();
    out["mse/layer" + std::to_string(converted_[i])] = e;
    sum += e;
  }
  out["mse/mean"] = sum / static_cast<double>(errors.size());
  out["teacher_loss"] =
      at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1})).item<double>();
  return out;
}

}  // namespace attnlab::convert
