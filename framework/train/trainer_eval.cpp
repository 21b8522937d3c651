// Trainer's validation: the loss over eval.batches fixed batches, answer accuracy for task
// sources, and the hooks' extra values; every world size gives the same numbers.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>

#include <cmath>

#include "framework/train/trainer.h"

namespace attnlab {

double Trainer::evaluate() {
  at::NoGradGuard no_grad;
  // Global batch b is windows [b·B·W, (b+1)·B·W); rank r evaluates its slice r, and the mean
  // over all slices is the same for every world size (equal slice sizes).
  const int64_t W = mesh_.dp, B = cfg_.train.batch_size;
  last_validation_.clear();
  if (opts_.hooks) opts_.hooks->before_forward(model_);
  const bool answers = val_data_->answers_only();
  // Sums over this rank's batches, kept on the device (one sync below): loss means, correct
  // answers, scored answers.
  at::Tensor sums = at::zeros({3}, at::TensorOptions().dtype(at::kDouble).device(device_));
  for (int64_t b = 0; b < cfg_.eval.batches; ++b) {
    const Shard batch = my_shard(val_data_->sequential((b * W + mesh_.dp_rank) * B, B).to(device_), false);
    at::Tensor logits = model_->forward(batch.inputs, batch.ctx);
    at::Tensor flat = logits.reshape({-1, logits.size(-1)}), targets = batch.targets.reshape({-1});
    const at::Tensor loss = at::cross_entropy_loss(flat, targets).to(at::kDouble);
    if (answers) {
      const at::Tensor scored = targets.ne(kIgnoreTarget);
      sums += at::stack({loss, flat.argmax(-1).eq(targets).logical_and(scored).sum().to(at::kDouble),
                         scored.sum().to(at::kDouble)});
    } else {
      sums[0] += loss;
    }
    if (opts_.hooks)  // single process only (the linearization stages); summed here, mean below
      for (const auto& [name, value] : opts_.hooks->validate(model_, batch.inputs, batch.targets, batch.ctx))
        last_validation_[name] += value / static_cast<double>(cfg_.eval.batches);
  }
  if (dp_) dp_->comm().all_reduce(sums);
  const at::Tensor host = sums.to(at::kCPU);
  const double* v = host.const_data_ptr<double>();
  if (answers) last_validation_["accuracy"] = v[2] > 0 ? v[1] / v[2] : 0.0;
  // Every rank's mean over its (equal) share of tokens, averaged over all of them.
  return v[0] / static_cast<double>(cfg_.eval.batches * world_.world_size);
}

void Trainer::evaluate_and_log() {
  const double vl = evaluate();
  std::map<std::string, double> values = {{"val/loss", vl}, {"val/perplexity", std::exp(vl)}};
  std::string extra;
  for (const auto& [name, value] : last_validation_) {
    values["val/" + name] = value;
    extra += fmt::format(" | {} {:.4g}", name, value);
  }
  metrics_->log(step_, values);
  say(fmt::format("eval step {} | val loss {:.4f} | val ppl {:.2f}{}\n", step_, vl, std::exp(vl), extra));
}

}  // namespace attnlab
