// Low-rank adapters (LoRA) on a model's linear layers, for stage 2 of a linearization
// (docs/conversion.md, "Linearizing"). A target linear keeps its weight W0 as the registered,
// frozen parameter (what checkpoints store); before each forward apply() points the module's
// weight at W0 + (alpha / r) · B A, so every mixer that calls the linear sees the adapted weight
// without knowing about LoRA. merge() folds the update into W0 for good.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/model/language_model.h"
#include "framework/train/hooks.h"
#include "tools/convert/linearize_config.h"

namespace attnlab::convert {

class LoraAdaptersImpl : public torch::nn::Module {
 public:
  /// Adapters on every linear of a block's mixer whose own name is in `targets` (e.g. q_proj):
  /// A [r, in] ~ U(±1/sqrt(in)) (drawn from the global generator), B [out, r] = 0, so the
  /// adapted model starts equal to the base one. Throws ConfigError if nothing matches.
  LoraAdaptersImpl(LanguageModel& model, const std::vector<std::string>& targets, int64_t rank, double alpha);
  /// Sets each target's weight to W0 + scale · B A (differentiable in A and B).
  void apply();
  /// W0 += scale · B A under no-grad and the modules' weights back to W0; the adapters are spent.
  void merge();
  size_t size() const { return adapters_.size(); }

 private:
  struct Adapter {
    std::shared_ptr<torch::nn::LinearImpl> linear;
    at::Tensor base, A, B;
  };
  std::vector<Adapter> adapters_;
  double scale_;
  bool merged_ = false;
};
TORCH_MODULE(LoraAdapters);

/// Stage 2's hooks: `start` loads the weights the stage begins from, then every parameter is
/// frozen and adapters are registered on the model as `lora` (so the stage's checkpoints hold them
/// and a resume restores them) and applied before each forward; the loss stays next-token cross
/// entropy. Validation also logs `teacher_loss` (measured once on the same batches) beside it.
class LoraFinetune : public TrainingHooks {
 public:
  LoraFinetune(LoraStage stage, std::function<void(LanguageModel&)> start, double teacher_loss)
      : stage_(std::move(stage)), start_(std::move(start)), teacher_loss_(teacher_loss) {}
  void prepare(LanguageModel& model) override;
  void before_forward(LanguageModel& model) override;
  std::map<std::string, double> validate(LanguageModel& model, const at::Tensor& inputs, const at::Tensor& targets,
                                         const MixerContext& ctx) override;
  LoraAdapters adapters() const { return adapters_; }

 private:
  LoraStage stage_;
  std::function<void(LanguageModel&)> start_;
  double teacher_loss_;
  LoraAdapters adapters_{nullptr};
};

}  // namespace attnlab::convert
